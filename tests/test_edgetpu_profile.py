"""`tfmobile.convert --edgetpu`: the profile, the offline analysis in the report, and the compiler
step. edgetpu_compiler cannot be installed here (x86-64 Debian from Coral's apt repository only),
so tests/standins/edgetpu_compiler stands in for it on PATH. The stand-in decides nothing: it
replays published real compilations of recorded graphs (tests/data/edgetpu/replay/
recordings.json) and refuses any other model in one line on stderr, exit code 3, writing nothing.
So a comparison of the analysis with the compiler here is one with the real compiler's output,
and a model no recording holds (the zoo models converted here) shows the compiler step failing
honestly."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from converters import edgetpu, edgetpu_compiler, litert
from standins import edgetpu_recordings as recordings
from tfmobile import models
from tfmobile_core import records

SMALL = ["--input_size", "64", "--num_classes", "10", "--calibration_samples", "16",
         "--eval_samples", "8"]
NO_RECORDING = "edgetpu_compiler (stand-in): no recorded compilation of "


def refusal(model: pathlib.Path, content: bytes) -> str:
    """The stand-in's one line for a model no recording holds, compiled with no placement flag."""
    return (f"{NO_RECORDING}{model} (graph {recordings.fingerprint(content)[:12]}, flags none); "
            "recorded compilations are listed in tests/data/edgetpu/replay/recordings.json")


@pytest.fixture
def convert(standin_bin):
    """`python -m tfmobile.convert` with the stand-in compiler first on PATH (or, with
    compiler=False, a PATH holding only the interpreter's directory: no edgetpu_compiler)."""
    def run(out_dir, *args, compiler=True):
        path = f"{standin_bin}{os.pathsep}{os.environ['PATH']}" if compiler \
            else os.path.dirname(sys.executable)
        return subprocess.run(
            [sys.executable, "-m", "tfmobile.convert", "--output_dir", str(out_dir), *args],
            capture_output=True, text=True, timeout=600,
            env={**os.environ, "PATH": path})

    return run


@pytest.mark.slow
def test_profile_builds_the_mapping_variant_and_reports_the_failed_compile(tmp_path, convert):
    """The zoo model maps fully by the analysis; no recording holds its graph, so the compiler
    step fails, and the conversion says so: exit code 1, the stand-in's line as the reason, the
    .tflite and .json kept, no `_edgetpu` file, and the "compiled" row differing."""
    result = convert(tmp_path, "--model", "shufflenet_v1", "--alpha", "0.5", "--edgetpu", *SMALL,
                     "--edgetpu_compiler_flags", "-d -k 10")
    assert result.returncode == 1, result.stderr
    stem = "shufflenet_v1_0.5_64_groups3_split_groups_c10_int8_uint8_io"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{stem}.json", f"{stem}.tflite"]
    report = json.loads((tmp_path / f"{stem}.json").read_text())
    assert report["model"]["variants"]["split_groups"] is True  # the profile's variant
    assert report["conversion"]["edgetpu"] is True
    io = report["artifact"]["io"]
    assert io["input"]["dtype"] == io["output"]["dtype"] == "uint8"
    assert report["artifact"]["fully_integer"]
    assert io["input"]["shape"] == [1, 64, 64, 3]  # batch 1, static
    section = report["edgetpu"]
    analysis = section["analysis"]
    assert analysis["verdict"]["outcome"] == "maps fully"
    assert analysis["fully_mapped"] and analysis["ops"] == [] and analysis["refusal"] is None
    assert analysis["edgetpu_operations"] == analysis["total_operations"] > 100
    assert analysis["compiler_flags"] == {"search_delegate": True}  # -k alone moves no op
    compiler = section["compiler"]
    assert compiler["ran"] and not compiler["compiled"] and compiler["exit_code"] == 3
    assert compiler["arguments"] == ["-d", "-k", "10"]  # passed through as written
    model = tmp_path / f"{stem}.tflite"
    assert compiler["reason"].startswith(NO_RECORDING)
    assert compiler["reason"] == refusal(model, model.read_bytes())
    assert compiler["models"] == [] and "model" not in compiler
    assert section["analysis_vs_compiler"] == [
        {"what": "compiled", "analysis": True, "log": False}]
    assert (f"  Edge TPU (offline analysis): {analysis['total_operations']} of "
            f"{analysis['total_operations']} ops map; {analysis['verdict']['text']}\n"
            in result.stdout)
    assert analysis["verdict"]["text"].startswith("maps fully")
    assert f"  Edge TPU compiler: FAILED: {compiler['reason']}\n" in result.stdout


def test_the_comparison_is_with_the_compiler_not_with_the_analysis(tmp_path, monkeypatch,
                                                                  standin_bin):
    """A recorded graph (the published nrf20 MNIST CNN, uint8 I/O: mnist9) is compiled by
    replaying the real compiler's log, which maps all 10 ops, as the analysis does. Made wrong,
    the analysis disagrees; the stand-in, which does not consult it, answers as before."""
    import tensorflow as tf
    from helpers import nrf20_graph

    # The converter's record is carried into the compiled model (the compiler drops metadata);
    # the fingerprint ignores metadata, so the graph is still the recorded one.
    record = {"stands": "for the ArtifactId tfmobile.convert embeds"}
    content = litert.with_metadata(nrf20_graph(tmp_path, tf.uint8), records.METADATA_NAME, record)
    path = tmp_path / "digits.tflite"
    path.write_bytes(content)
    monkeypatch.setenv("PATH", f"{standin_bin}{os.pathsep}{os.environ['PATH']}")

    section = edgetpu_compiler.edgetpu_report(path, content)
    compiler = section["compiler"]
    assert compiler["ran"] and compiler["compiled"] and compiler["exit_code"] == 0
    assert compiler["version"] == "15.0.340273435"  # the recording's compiler, replayed
    assert compiler["model"] == str(tmp_path / "digits_edgetpu.tflite")
    assert compiler["log_file"] == str(tmp_path / "digits_edgetpu.log")
    recorded = recordings.file_of("mnist9_edgetpu.log").read_text().splitlines()
    written = (tmp_path / "digits_edgetpu.log").read_text().splitlines()
    assert written[0] == recorded[0] and written[3:] == recorded[3:]  # mnist9's real table
    log = edgetpu_compiler.model_log(compiler)
    assert (log["edgetpu_operations"], log["cpu_operations"]) == (10, 0)
    assert section["analysis"]["verdict"] == {"outcome": "maps fully",
                                              "text": "maps fully (10 ops)"}
    assert section["analysis_vs_compiler"] == []
    compiled = (tmp_path / "digits_edgetpu.tflite").read_bytes()
    assert litert.read_metadata(compiled, records.METADATA_NAME) == record

    monkeypatch.delitem(edgetpu.SUPPORTED, "MAX_POOL_2D")  # the analysis, made wrong
    section = edgetpu_compiler.edgetpu_report(path, content)
    assert section["analysis"]["verdict"]["outcome"] == "maps up to"
    assert section["analysis"]["edgetpu_operations"] == 2  # QUANTIZE, CONV_2D before the pool
    again = edgetpu_compiler.model_log(section["compiler"])
    assert section["compiler"]["compiled"]
    assert (again["edgetpu_operations"], again["cpu_operations"]) == (10, 0)  # unchanged
    assert again["operators"] == log["operators"]
    differs = section["analysis_vs_compiler"]
    assert {"what": "edgetpu_operations", "analysis": 2, "log": 10} in differs
    assert {"what": "cpu_operations", "analysis": 8, "log": 0} in differs
    assert {"what": "MAX_POOL_2D: Mapped to Edge TPU", "analysis": 0, "log": 2} in differs
    assert {"what": "MAX_POOL_2D: Operation not supported", "analysis": 2, "log": 0} in differs
    assert not any(d["what"] in ("total_operations", "compiled") for d in differs)


@pytest.mark.slow
def test_without_the_compiler_the_report_says_how_to_install_it(tmp_path, convert):
    result = convert(tmp_path, "--model", "mobilenet_edgetpu", "--alpha", "0.25", "--edgetpu",
                     *SMALL, compiler=False)
    assert result.returncode == 0, result.stderr
    assert not list(tmp_path.glob("*_edgetpu.*"))
    report = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert report["edgetpu"]["compiler"] == {"ran": False, "reason": edgetpu_compiler.INSTALL}
    assert report["edgetpu"]["analysis"]["fully_mapped"]
    assert "Edge TPU compiler: not run: edgetpu_compiler is not on PATH" in result.stdout


def test_a_failed_compilation_keeps_nothing_of_the_compiler(tmp_path, monkeypatch, standin_bin):
    """A model with run-time shapes, which the analysis says the compiler refuses whole. No
    recording holds it, so the stand-in refuses it too (exit code 3, one line, nothing written);
    its line is kept as the reason and no `_edgetpu` file is left behind."""
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), tf.keras.layers.Flatten(),
                                 tf.keras.layers.Dense(4)])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.representative_dataset = lambda: (
        [np.random.default_rng(i).uniform(size=(1, 8, 8, 1)).astype(np.float32)] for i in range(4))
    content = converter.convert()
    path = tmp_path / "dynamic.tflite"
    path.write_bytes(content)
    assert edgetpu.analyze(content).outcome()[0] == "refused"
    monkeypatch.setenv("PATH", f"{standin_bin}{os.pathsep}{os.environ['PATH']}")
    outcome = edgetpu_compiler.compile_models([path])
    assert outcome["ran"] and not outcome["compiled"] and outcome["exit_code"] == 3
    assert outcome["reason"] == refusal(path, content)
    assert outcome["models"] == [] and outcome["version"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dynamic.tflite"]
    # Refused by the analysis, not compiled by the compiler: they agree.
    assert edgetpu_compiler.edgetpu_report(path, content)["analysis_vs_compiler"] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dynamic.tflite"]


@pytest.mark.parametrize("args,message", [
    (["--model", "fd_mobilenet", "--edgetpu", "--float16"], "the Edge TPU runs no --float16 model"),
    (["--model", "fd_mobilenet", "--edgetpu", "--io_type", "int8"], "drop --io_type int8"),
    (["--model", "fd_mobilenet", "--edgetpu", "--denylist", "CONV_2D"], "cannot keep ops in float"),
    (["--model", "mobilenet_v3_large", "--edgetpu", "--nominimalistic", "--noexpand_hard_swish"],
     "keeps HARD_SWISH, which the Edge TPU does not run"),
    (["--model", "fd_mobilenet_v9", "--edgetpu"], "unknown model 'fd_mobilenet_v9'"),
    (["--model", "fd_mobilenet", "--edgetpu", "--edgetpu_compiler_flags=-x"], "has no option"),
    (["--model", "fd_mobilenet", "--edgetpu", "--edgetpu_compiler_flags=-o /tmp"],
     "drop -o/--out_dir"),
    (["--model", "fd_mobilenet", "--edgetpu_compiler_flags=-a"], "applies to --edgetpu"),
])
def test_options_that_cannot_map_are_refused(tmp_path, args, message, convert):
    result = convert(tmp_path / "out", *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_split_groups_is_the_same_function_and_takes_grouped_weights(tmp_path):
    """ShuffleNet V1's Edge TPU variant: SPLIT + one conv per group + CONCATENATION, fed from
    weights trained with grouped convs, computes what the grouped network computes."""
    args = dict(input_size=64, num_classes=10, groups=4, classifier_activation=None)
    grouped = models.build("shufflenet_v1", **args)
    weights = tmp_path / "grouped.weights.h5"
    grouped.save_weights(weights)
    split = models.build("shufflenet_v1", split_groups=True, weights=str(weights), **args)
    assert split.count_params() == grouped.count_params()
    x = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(split(x), grouped(x), rtol=1e-5, atol=1e-5)
    kinds = {type(layer).__name__ for layer in split.layers}
    assert "ChannelSplit" in kinds and all(
        layer.groups == 1 for layer in split.layers if type(layer).__name__ == "Conv2D")
