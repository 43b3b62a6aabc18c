"""The edgetpu_compiler stand-in (tests/standins/edgetpu_compiler) replays recorded real
compilations (tests/data/edgetpu/replay/recordings.json) and refuses anything else: it never
works out a placement itself, so a test comparing it with the offline analysis compares the
analysis with the real compiler."""

import json
import pathlib
import re
import subprocess
import tempfile

import numpy as np
import pytest
import tensorflow as tf

from helpers import mnist_cnn, nrf20_graph
from standins import edgetpu_recordings as recordings

RECORDED = {entry["name"]: entry for entry in recordings.recordings()}
MNIST4 = RECORDED["nrf20 mnist4 (float I/O, int8 inside)"]
MNIST9 = RECORDED["nrf20 mnist9 (uint8 I/O)"]
REFUSAL = re.compile(r"edgetpu_compiler \(stand-in\): no recorded compilation of (.+) \(graph "
                     r"([0-9a-f]{12}(?:, [0-9a-f]{12})*), flags (.+)\); recorded compilations "
                     r"are listed in tests/data/edgetpu/replay/recordings\.json")


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    """The nrf20 graphs rebuilt: {"mnist4": float I/O, "mnist9": uint8 I/O}."""
    directory = tmp_path_factory.mktemp("nrf20")
    return {"mnist4": nrf20_graph(directory, None), "mnist9": nrf20_graph(directory, tf.uint8)}


@pytest.fixture(scope="module")
def unrecorded():
    """A graph no recording holds: x * 2 + 1 on a float [1, 4] input."""
    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    def f(x):
        return x * 2.0 + 1.0

    return tf.lite.TFLiteConverter.from_concrete_functions(
        [f.get_concrete_function()], f).convert()


def compiler(standin_bin, cwd, *args):
    return subprocess.run([str(standin_bin / "edgetpu_compiler"), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


def files(directory: pathlib.Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_the_rebuilt_graphs_are_the_published_ones(rebuilt):
    """Other weights, quantization parameters and a newer converter (newer op versions):
    the same graph, so the same fingerprint as the published model's."""
    assert recordings.fingerprint(rebuilt["mnist4"]) == MNIST4["models"][0]["fingerprint"]
    assert recordings.fingerprint(rebuilt["mnist9"]) == MNIST9["models"][0]["fingerprint"]


def test_a_recorded_graph_is_replayed(tmp_path, standin_bin, rebuilt):
    model = tmp_path / "digits.tflite"
    model.write_bytes(rebuilt["mnist9"])
    out = tmp_path / "out"
    out.mkdir()
    result = compiler(standin_bin, tmp_path, "-o", out, model)
    assert result.returncode == 0, result.stderr
    assert files(out) == ["digits_edgetpu.log", "digits_edgetpu.tflite"]
    recorded = recordings.file_of("mnist9_edgetpu.log").read_text().splitlines()
    written = (out / "digits_edgetpu.log").read_text().splitlines()
    assert written[1:3] == [f"Input: {model}", f"Output: {out / 'digits_edgetpu.tflite'}"]
    assert written[0] == recorded[0] and written[3:] == recorded[3:]  # the recorded table
    assert "Edge TPU Compiler version 15.0.340273435" in result.stdout  # the recording's
    assert "Total number of operations: 10" in result.stdout
    assert f"Operation log: {out / 'digits_edgetpu.log'}" in result.stdout
    assert "not all operations are supported" not in result.stdout  # all 10 mapped


def test_a_recorded_partial_mapping_prints_the_recorded_counts(tmp_path, standin_bin, rebuilt):
    (tmp_path / "m.tflite").write_bytes(rebuilt["mnist4"])
    result = compiler(standin_bin, tmp_path, "m.tflite")
    assert result.returncode == 0, result.stderr
    assert "Number of operations that will run on Edge TPU: 8" in result.stdout
    assert "Number of operations that will run on CPU: 2" in result.stdout
    assert "Output model: m_edgetpu.tflite" in result.stdout
    assert files(tmp_path) == ["m.tflite", "m_edgetpu.log", "m_edgetpu.tflite"]


def test_the_compiled_model_keeps_no_metadata_but_the_runtime_version(tmp_path, standin_bin,
                                                                     rebuilt):
    from ai_edge_litert import schema_py_generated as schema

    (tmp_path / "m.tflite").write_bytes(rebuilt["mnist9"])
    assert compiler(standin_bin, tmp_path, "m.tflite").returncode == 0
    source = schema.ModelT.InitFromPackedBuf(bytearray(rebuilt["mnist9"]), 0)
    compiled = schema.ModelT.InitFromPackedBuf(
        bytearray((tmp_path / "m_edgetpu.tflite").read_bytes()), 0)
    assert {m.name for m in source.metadata or []} > {b"min_runtime_version"}
    assert [m.name for m in compiled.metadata] == [b"min_runtime_version"]


def test_an_unrecorded_graph_is_refused_and_nothing_is_written(tmp_path, standin_bin,
                                                              unrecorded):
    (tmp_path / "other.tflite").write_bytes(unrecorded)
    result = compiler(standin_bin, tmp_path, "-s", "other.tflite")
    assert result.returncode == 3 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    match = REFUSAL.fullmatch(lines[0])
    assert match and match[1] == "other.tflite" and match[3] == "none", lines[0]
    assert match[2] == recordings.fingerprint(unrecorded)[:12]
    assert files(tmp_path) == ["other.tflite"]


def test_co_compiling_a_recorded_and_an_unrecorded_graph_is_refused(tmp_path, standin_bin,
                                                                    rebuilt, unrecorded):
    (tmp_path / "digits.tflite").write_bytes(rebuilt["mnist9"])
    (tmp_path / "other.tflite").write_bytes(unrecorded)
    result = compiler(standin_bin, tmp_path, "digits.tflite", "other.tflite")
    assert result.returncode == 3
    match = REFUSAL.fullmatch(result.stderr.strip())
    assert match and match[1] == "digits.tflite + other.tflite", result.stderr
    assert files(tmp_path) == ["digits.tflite", "other.tflite"]


@pytest.mark.parametrize("args", [
    ["-a", "-d", "-k", "3", "-i", "t1,t2", "-m", "13", "-n", "2", "-o", "out", "-s", "-t", "60"],
    ["--enable_multiple_subgraphs", "--search_delegate", "--delegate_search_step", "3",
     "--intermediate_tensors", "t1,t2", "--min_runtime_version", "13", "--num_segments", "2",
     "--out_dir", "out", "--show_operations", "--timeout_sec", "60"],
    ["--delegate_search_step=3", "--min_runtime_version=13", "--out_dir=out",
     "--timeout_sec=60"],
])
def test_every_documented_flag_is_accepted(tmp_path, standin_bin, unrecorded, args):
    (tmp_path / "out").mkdir()
    (tmp_path / "other.tflite").write_bytes(unrecorded)
    result = compiler(standin_bin, tmp_path, *args, "other.tflite")
    assert result.returncode == 3 and REFUSAL.fullmatch(result.stderr.strip()), result.stderr
    assert "unrecognized" not in result.stderr


@pytest.mark.parametrize("args,replayed", [
    ([], True),
    (["-s"], True),
    (["-d", "-k", "5", "-t", "30", "-o", "."], True),
    (["-a"], False),
    (["-m", "13"], False),
    (["-n", "2"], False),
    (["-i", "some_tensor"], False),
])
def test_only_placement_flags_are_part_of_the_key(tmp_path, standin_bin, rebuilt, args,
                                                  replayed):
    (tmp_path / "m.tflite").write_bytes(rebuilt["mnist9"])
    result = compiler(standin_bin, tmp_path, *args, "m.tflite")
    if replayed:
        assert result.returncode == 0, result.stderr
        assert ("Operator                       Count      Status" in result.stdout) \
            == ("-s" in args)
    else:
        assert result.returncode == 3
        match = REFUSAL.fullmatch(result.stderr.strip())
        assert match and match[3] == " ".join(args), result.stderr
        assert files(tmp_path) == ["m.tflite"]


def test_version_and_help(tmp_path, standin_bin):
    result = compiler(standin_bin, tmp_path, "-v")
    assert result.returncode == 0 and result.stdout == "Edge TPU Compiler version 16.0.384591198\n"
    assert compiler(standin_bin, tmp_path, "--version").stdout == result.stdout
    result = compiler(standin_bin, tmp_path, "-h")
    assert result.returncode == 0 and "--enable_multiple_subgraphs" in result.stdout


def test_the_manifest_holds_published_recordings_only():
    for entry in recordings.recordings():
        assert {"name", "source", "compiler_version", "models", "flags", "stdout",
                "exit_code"} <= entry.keys(), entry["name"]
        assert entry["source"]["log"].startswith("https://github.com/"), entry["name"]
        assert re.fullmatch(r"\d+\.\d+\.\d+", entry["compiler_version"])
        assert entry["flags"] == recordings.key_flags(
            "-a" in entry["flags"], *(entry["flags"][entry["flags"].index(f) + 1]
                                      if f in entry["flags"] else None
                                      for f in ("-i", "-m", "-n"))), entry["name"]
        for model in entry["models"]:
            assert model["fingerprint"] is None or re.fullmatch(r"[0-9a-f]{64}",
                                                                model["fingerprint"])
            if model["log"]:
                log = recordings.file_of(model["log"]).read_text()
                assert log.startswith(f"Edge TPU Compiler version {entry['compiler_version']}")
        if entry["stdout"]:
            recordings.file_of(entry["stdout"])
        assert entry["exit_code"] == 0 or entry["stdout"], "a failure is replayed by its stdout"
    assert json.loads(recordings.MANIFEST.read_text())  # valid JSON, not empty


def test_the_pipeline_mnist_differs_from_the_published_graph_only_in_its_batch_signature(
        rebuilt):
    """converters.quantize's batch-1 model carries no shape signature; the published model's
    tensors say -1 for the batch (shape 1). Nothing shows the compiler ignores that, so the
    fingerprints stay different and the pipeline's model is not a recorded graph."""
    from converters import quantize, tflite

    model = mnist_cnn()
    samples = np.random.default_rng(0).uniform(0, 1, (4, 28, 28, 1)).astype(np.float32)
    with tempfile.TemporaryDirectory() as saved_model:
        tflite.export_saved_model(model, saved_model)
        ranges = quantize.calibrate(saved_model, lambda: iter(samples))
    ours = quantize.quantize(ranges, io_type="uint8")
    # The rebuilt nrf20 graph has the published model's fingerprint (test above), so its lines
    # are the published model's.
    published = recordings.describe(rebuilt["mnist9"])
    assert recordings.describe(ours) != published
    assert [line.replace("[-1x", "[1x") for line in published] == recordings.describe(ours)
    assert recordings.fingerprint(ours) != MNIST9["models"][0]["fingerprint"]
