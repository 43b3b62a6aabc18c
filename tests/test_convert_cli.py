"""python -m tfmobile.convert as a user runs it: artifacts, reports and bad input."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from converters import litert
from tfmobile_core import records

SMALL = ["--alpha", "0.25", "--input_size", "96", "--num_classes", "10",
         "--calibration_samples", "24", "--eval_samples", "12"]


def convert(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "tfmobile.convert", "--output_dir", str(tmp_path), *args],
        capture_output=True, text=True, timeout=600,
    )


@pytest.mark.slow
def test_int8_writes_a_fully_integer_model_and_its_report(tmp_path, photo_batch):
    result = convert(tmp_path, "--model", "fd_mobilenet", "--int8", *SMALL)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # converter logging hidden; no progress bar off a terminal
    lines = result.stdout.strip().splitlines()
    warned = [line.strip().removeprefix("WARNING: ") for line in lines
              if line.strip().startswith("WARNING: ")]
    assert len(lines) - len(warned) <= 6  # one short summary, and the warnings it calls for
    # The name is the ArtifactId's: network, width, size, classes (when not 1000), mode.
    tflite = tmp_path / "fd_mobilenet_0.25_96_c10_int8.tflite"
    report = json.loads((tmp_path / "fd_mobilenet_0.25_96_c10_int8.json").read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == [tflite.with_suffix(".json").name, tflite.name]

    content = tflite.read_bytes()
    art = report["artifact"]
    assert art["file_bytes"] == len(content) and len(art["sha256"]) == 64
    assert art["fully_integer"] and set(art["tensor_types"]) <= {"INT8", "INT32"}
    assert art["io"]["input"]["dtype"] == "int8" and art["io"]["input"]["scale"] > 0
    assert report["model"]["macs"] > 0 and report["model"]["params"] > 0
    assert report["calibration"]["samples"] == 24 and report["calibration"]["source"] == "embedded"
    assert report["fidelity"]["samples"] == 12 and report["fidelity"]["held_out"]["images"] >= 1
    assert 0 <= report["fidelity"]["top1_agreement"] <= 1 and report["fidelity"]["cosine"] > 0.9
    assert report["preprocessing"]["input_size"] == 96
    assert report["versions"]["ai-edge-litert"] and report["conversion"]["seconds"] > 0
    assert report["conversion"]["quantization"]["ops_set"] == "TFLITE_BUILTINS_INT8"
    assert report["schema_version"] == records.SCHEMA_VERSION
    # The report reads back as its typed record, and the model carries its own ArtifactId.
    typed = records.ConversionReport.read(tmp_path / "fd_mobilenet_0.25_96_c10_int8.json")
    assert typed.artifact_id.stem() == tflite.stem
    embedded = litert.read_metadata(content, records.METADATA_NAME)
    assert records.ArtifactId.from_json(embedded) == typed.artifact_id
    # It loads, allocates and runs in LiteRT.
    logits = litert.run(litert.load(content), photo_batch(96)[:2])
    assert logits.shape == (2, 10) and np.isfinite(logits).all()
    check_fidelity_warnings(typed)
    # The random draw is seeded, so this is one report; whatever its fidelity, the summary's
    # warnings are exactly those the report calls for.
    from tfmobile.convert import fidelity_warnings

    assert warned == fidelity_warnings(typed)


@pytest.mark.slow
@pytest.mark.parametrize(
    "args,input_dtype,integer",
    [
        (["--float16"], "float32", False),
        (["--dynamic"], "float32", False),
        ([], "float32", False),
        (["--int8", "--io_type", "uint8", "--per_tensor"], "uint8", True),
    ],
)
def test_other_modes(tmp_path, args, input_dtype, integer):
    result = convert(tmp_path, "--model", "mobilenet_v2", *SMALL, *args)
    assert result.returncode == 0, result.stderr
    (report_path,) = tmp_path.glob("*.json")
    report = json.loads(report_path.read_text())
    assert report["artifact"]["io"]["input"]["dtype"] == input_dtype
    assert report["artifact"]["fully_integer"] is integer
    assert report["fidelity"]["top1_agreement"] >= 0.5
    run = report["artifact"]["execution"]
    assert run["partitions"] == 1
    # uint8 in and out: the two QUANTIZE ops to and from int8 stay outside XNNPACK.
    assert run["ops_outside_delegate"] == ({"QUANTIZE": 2} if input_dtype == "uint8" else {})
    if "--dynamic" in args:
        assert report["conversion"]["quantization"]["depthwise_filters_in_float32"] > 0


@pytest.mark.slow
def test_denylist_and_debug_quantization(tmp_path):
    result = convert(tmp_path, "--model", "mobilenet_v3_small", "--int8", "--denylist", "HARD_SWISH",
                     "--debug_quantization", *SMALL)
    assert result.returncode == 0, result.stderr
    assert "worst layers by SQNR" in result.stdout
    (report_path,) = tmp_path.glob("*.json")
    report = json.loads(report_path.read_text())
    kept = report["conversion"]["quantization"]["kept_in_float"]
    assert {k["op"] for k in kept} >= {"HARD_SWISH"} and not report["artifact"]["fully_integer"]
    errors = report["layer_errors"]
    finite = [e["sqnr_db"] for e in errors if e["sqnr_db"] is not None]  # None: exact (inf)
    assert finite and all(db > 0 for db in finite)
    assert [e["sqnr_db"] for e in errors] == sorted(finite) + [None] * (len(errors) - len(finite))


def test_a_layer_int8_reproduces_exactly_is_written_as_null_and_sorts_last():
    """The debugger's infinite SQNR (no error at all) crashed the report's JSON writer."""
    from converters import quantize
    from tfmobile_core import atomic

    def row(name, sqnr, scale="0.5"):
        return {"op_name": "CONV_2D", "tensor_name": name, "num_elements": "8", "scale": scale,
                "zero_point": "0", "mean_error": "0", "max_abs_error": "0",
                "mean_squared_error": "0.01", "sqnr_db": sqnr}

    table = quantize.layer_table([row("exact", "inf"), row("worst", "12.5"),
                                  row("no scale", "30", scale="0")])
    assert [r["tensor"] for r in table] == ["worst", "no scale", "exact"]
    assert table[-1]["sqnr_db"] is None and table[1]["rmse_per_scale"] is None
    assert json.loads(atomic.json_bytes(table))[-1]["sqnr_db"] is None


@pytest.mark.slow
def test_calibration_directory_is_used(tmp_path, photos):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    for i, p in enumerate(photos[:6]):
        Image.fromarray(p).save(images / f"{i}.jpg")
    (images / "corrupt.png").write_bytes(b"\x89PNG nope")
    out = tmp_path / "out"
    result = convert(out, "--model", "fd_mobilenet", "--int8", "--calibration", str(images), *SMALL)
    assert result.returncode == 0, result.stderr
    report = json.loads(next(out.glob("*.json")).read_text())
    assert report["calibration"]["kind"] == "directory" and report["calibration"]["skipped"] == 1
    assert report["calibration"]["calibration_images"] == 5  # every 4th image held out
    assert report["fidelity"]["held_out"]["images"] == 1


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model", "fd_mobilenet_v9", "--int8"], "unknown model 'fd_mobilenet_v9'; choose one of"),
        (["--model", "fd_mobilenet", "--alpha", "0"], "alpha (width multiplier) must be a positive"),
        (["--model", "fd_mobilenet", "--input_size", "20"], "input_size must be an integer of at least 32"),
        (["--model", "shufflenet_v1", "--groups", "7"], "groups must be one of 3, 1, 2, 4, 8"),
        (["--model", "fd_mobilenet", "--int8", "--calibration", "/no/such/dir"], "does not exist"),
        (["--model", "fd_mobilenet", "--int8", "--float16"], "choose one mode"),
        (["--model", "fd_mobilenet", "--io_type", "uint8"], "--io_type applies to --int8 models only"),
        (["--model", "fd_mobilenet", "--weights", "/no/such.weights.h5"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_file(tmp_path, args, message):
    out = tmp_path / "out"
    result = convert(out, *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_empty_calibration_directory_and_unwritable_output(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = convert(tmp_path / "out", "--model", "fd_mobilenet", "--int8", "--calibration", str(empty))
    assert result.returncode == 2 and "holds no decodable image" in result.stderr
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")
    result = convert(blocker / "sub", "--model", "fd_mobilenet")
    assert result.returncode == 2 and "cannot create --output_dir" in result.stderr


def test_a_converter_failure_exits_1_and_leaves_no_model(tmp_path, monkeypatch, capsys):
    """The converter failing inside (here: calibration raising) is reported, not a traceback."""
    from absl import flags

    from converters import quantize
    from tfmobile import convert as convert_cli

    def broken(*_args, **_kwargs):
        raise RuntimeError("Quantization not yet supported for op: 'FAKE_OP'")

    monkeypatch.setattr(quantize, "calibrate_tflite", broken)
    flags.FLAGS(["convert", "--model", "fd_mobilenet", "--int8", "--output_dir", str(tmp_path), *SMALL])
    try:
        assert convert_cli.main([]) == 1
    finally:
        flags.FLAGS.unparse_flags()
    assert "conversion failed: Quantization not yet supported for op: 'FAKE_OP'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_options_that_change_the_graph_change_the_name(tmp_path):
    """Per-tensor and per-channel int8 of one network are two models: neither overwrites the
    other (both were once named ..._int8)."""
    for extra in ([], ["--per_tensor"]):
        result = convert(tmp_path, "--model", "fd_mobilenet", "--int8", *SMALL, *extra)
        assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in tmp_path.glob("*.tflite"))
    assert names == ["fd_mobilenet_0.25_96_c10_int8.tflite",
                     "fd_mobilenet_0.25_96_c10_int8_per_tensor.tflite"]


def _convert_in_process(tmp_path, *args):
    """tfmobile.convert's main in this process, so a fault can be put at the OS boundary."""
    from absl import flags

    from tfmobile import convert as convert_cli
    from tfmobile_core import cli

    flags.FLAGS(["convert", "--output_dir", str(tmp_path), *args])
    try:
        return convert_cli.main([])
    except cli.Failure as err:
        return f"Failure: {err}"
    finally:
        flags.FLAGS.unparse_flags()


def _write_old_pair(tmp_path):
    old = {tmp_path / "fd_mobilenet_0.25_96_c10_float32.tflite": b"old model",
           tmp_path / "fd_mobilenet_0.25_96_c10_float32.json": b"old report"}
    for path, data in old.items():
        path.write_bytes(data)
    return old


def test_a_full_disk_writes_neither_the_model_nor_its_report(tmp_path, monkeypatch):
    """The report's write fails (ENOSPC) after the model's succeeded: no new model beside the
    old report, the old pair untouched, no temporary file left, one line."""
    import errno
    import pathlib

    old = _write_old_pair(tmp_path)
    real_write = pathlib.Path.write_bytes

    def disk_full_for_reports(self, data):
        if self.name.endswith(".json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", disk_full_for_reports)
    outcome = _convert_in_process(tmp_path, "--model", "fd_mobilenet", *SMALL)
    monkeypatch.undo()
    assert isinstance(outcome, str) and "No space left on device" in outcome
    assert "nothing was written" in outcome and "\n" not in outcome
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == old


def test_a_refused_rename_puts_the_old_files_back(tmp_path, monkeypatch):
    """A directory that passes os.access but refuses the second rename (a read-only bind,
    an immutable file): the model renamed first is rolled back to the old one."""
    import errno
    import os

    from tfmobile_core import atomic

    old = _write_old_pair(tmp_path)
    real_replace, renamed = os.replace, []

    def refuse_the_report(src, dst):
        if str(dst).endswith(".json") and not str(src).endswith(".old.json"):
            raise PermissionError(errno.EPERM, "Operation not permitted", str(dst))
        renamed.append(dst)
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", refuse_the_report)
    outcome = _convert_in_process(tmp_path, "--model", "fd_mobilenet", *SMALL)
    monkeypatch.undo()
    assert renamed, "the model was renamed into place before the report failed"
    assert isinstance(outcome, str) and "Operation not permitted" in outcome
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == old


@pytest.mark.slow
def test_trained_weights_carry_their_class_order_into_the_model(tmp_path):
    """--weights with a .classes.json beside them: --num_classes defaults to its length, and
    the class names travel inside the .tflite (tfmobile.evaluate reads them there)."""
    from tfmobile import models

    weights = tmp_path / "fd.weights.h5"
    models.build("fd_mobilenet", alpha=0.25, input_size=96, num_classes=3).save_weights(weights)
    (tmp_path / "fd.classes.json").write_text(json.dumps(["cat", "dog", "emu"]))
    out = tmp_path / "out"
    result = convert(out, "--model", "fd_mobilenet", "--alpha", "0.25", "--input_size", "96",
                     "--weights", str(weights), "--calibration_samples", "8",
                     "--eval_samples", "4")
    assert result.returncode == 0, result.stderr
    (tflite,) = out.glob("*.tflite")
    assert tflite.name == "fd_mobilenet_0.25_96_c3_float32.tflite"
    stored = records.ArtifactId.from_json(
        litert.read_metadata(tflite.read_bytes(), records.METADATA_NAME))
    assert stored.model.class_names == ("cat", "dog", "emu")
    assert stored.model.weights == str(weights)

    mismatch = convert(out, "--model", "fd_mobilenet", "--alpha", "0.25", "--input_size", "96",
                       "--weights", str(weights), "--num_classes", "5")
    assert mismatch.returncode == 2
    assert "trained on 3 classes" in mismatch.stderr and len(mismatch.stderr.splitlines()) == 1


def check_fidelity_warnings(report):
    """The summary warns on poor fidelity: low SQNR always, low top-1 agreement for trained
    weights only (an untrained network's top two scores are nearly equal)."""
    from tfmobile.convert import fidelity_warnings

    def judged(weights, agreement, sqnr):
        return fidelity_warnings(dataclasses.replace(
            report, model=dataclasses.replace(report.model, weights=weights),
            fidelity=dataclasses.replace(report.fidelity, top1_agreement=agreement, sqnr_db=sqnr)))

    assert judged(records.RANDOM_INIT, 0.5, 31.0) == []
    assert judged(records.RANDOM_INIT, 1.0, 12.0)[0].startswith("poor fidelity")
    assert any("random weights" in line for line in judged(records.RANDOM_INIT, 1.0, 12.0))
    trained = judged("trained.weights.h5", 0.5, 31.0)
    assert trained[0].startswith("poor fidelity") and "50%" in trained[0]
    assert not any("random weights" in line for line in trained)
    assert "its error outweighs its signal" in judged("trained.weights.h5", 0.9, -2.0)[0]
    assert judged("trained.weights.h5", 0.9, 20.0) == []
