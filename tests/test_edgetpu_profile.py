"""`tfmobile.convert --edgetpu`: the profile, the offline analysis in the report, and the compiler
step. edgetpu_compiler cannot be installed here (x86-64 Debian from Coral's apt repository only),
so tests/standins/edgetpu_compiler, which speaks its command line and writes its outputs, stands
in for it on PATH."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from converters import edgetpu_compiler, litert
from tfmobile_core import records
from tfmobile import models

LOGS = pathlib.Path(__file__).parent / "data" / "edgetpu"
SMALL = ["--input_size", "64", "--num_classes", "10", "--calibration_samples", "16",
         "--eval_samples", "8"]


@pytest.fixture
def convert(standin_bin):
    """`python -m tfmobile.convert` with the stand-in compiler first on PATH (or, with
    compiler=False, a PATH holding only the interpreter's directory: no edgetpu_compiler)."""
    def run(out_dir, *args, compiler=True, env=None):
        path = f"{standin_bin}{os.pathsep}{os.environ['PATH']}" if compiler \
            else os.path.dirname(sys.executable)
        return subprocess.run(
            [sys.executable, "-m", "tfmobile.convert", "--output_dir", str(out_dir), *args],
            capture_output=True, text=True, timeout=600,
            env={**os.environ, "PATH": path, **(env or {})})

    return run


@pytest.mark.slow
def test_profile_builds_the_mapping_variant_compiles_and_agrees(tmp_path, convert):
    result = convert(tmp_path, "--model", "shufflenet_v1", "--alpha", "0.5", "--edgetpu", *SMALL)
    assert result.returncode == 0, result.stderr
    stem = "shufflenet_v1_0.5_64_groups3_split_groups_c10_int8_uint8_io"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"{stem}.json", f"{stem}.tflite", f"{stem}_edgetpu.log", f"{stem}_edgetpu.tflite"]
    report = json.loads((tmp_path / f"{stem}.json").read_text())
    assert report["model"]["variants"]["split_groups"] is True  # the profile's variant
    assert report["conversion"]["edgetpu"] is True
    io = report["artifact"]["io"]
    assert io["input"]["dtype"] == io["output"]["dtype"] == "uint8"
    assert report["artifact"]["fully_integer"]
    assert io["input"]["shape"] == [1, 64, 64, 3]  # batch 1, static
    section = report["edgetpu"]
    analysis = section["analysis"]
    assert analysis["fully_mapped"] and analysis["ops"] == []
    assert analysis["edgetpu_operations"] == analysis["total_operations"] > 100
    compiler = section["compiler"]
    assert compiler["ran"] and compiler["compiled"] and compiler["version"] == "16.0.384591198"
    assert compiler["log"]["edgetpu_operations"] == analysis["edgetpu_operations"]
    assert compiler["model"] == str(tmp_path / f"{stem}_edgetpu.tflite")
    assert section["analysis_vs_compiler"] == []
    # The compiler drops metadata; the converter puts the model's record back.
    compiled = (tmp_path / f"{stem}_edgetpu.tflite").read_bytes()
    carried = records.ArtifactId.from_json(litert.read_metadata(compiled, records.METADATA_NAME))
    assert carried == records.ConversionReport.read(tmp_path / f"{stem}.json").artifact_id
    assert "agrees with the analysis" in result.stdout
    assert "Edge TPU (offline analysis): " in result.stdout and "all of them" in result.stdout


@pytest.mark.slow
def test_compiler_disagreeing_with_the_analysis_is_reported(tmp_path, convert):
    """A real published log handed back (EfficientNet-EdgeTPU-M): every row differs."""
    result = convert(tmp_path, "--model", "mobilenet_v3_small", "--alpha", "0.75", "--edgetpu",
                     *SMALL, env={"EDGETPU_COMPILER_STANDIN_REPLAY":
                                  str(LOGS / "efficientnet-edgetpu-M_quant_edgetpu.log")})
    assert result.returncode == 0, result.stderr
    report = json.loads(next(tmp_path.glob("*_minimalistic_c10_int8_uint8_io.json")).read_text())
    differs = report["edgetpu"]["analysis_vs_compiler"]
    assert {"what": "SOFTMAX: Mapped to Edge TPU", "analysis": 0, "log": 1} in differs  # logits here
    assert any(d["what"] == "total_operations" for d in differs)
    assert f"differs from the analysis in {len(differs)} row(s)" in result.stdout


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
    """A model with run-time shapes: the compiler refuses it whole; its reason is kept and no
    `_edgetpu` file is left behind."""
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), tf.keras.layers.Flatten(),
                                 tf.keras.layers.Dense(4)])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.representative_dataset = lambda: (
        [np.random.default_rng(i).uniform(size=(1, 8, 8, 1)).astype(np.float32)] for i in range(4))
    path = tmp_path / "dynamic.tflite"
    path.write_bytes(converter.convert())
    monkeypatch.setenv("PATH", f"{standin_bin}{os.pathsep}{os.environ['PATH']}")
    outcome = edgetpu_compiler.compile_model(path)
    assert outcome["ran"] and not outcome["compiled"] and outcome["exit_code"] == 1
    assert outcome["reason"] == "Compilation failed!"
    assert outcome["log"]["compiled"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dynamic.tflite"]


@pytest.mark.parametrize("args,message", [
    (["--model", "fd_mobilenet", "--edgetpu", "--float16"], "the Edge TPU runs no --float16 model"),
    (["--model", "fd_mobilenet", "--edgetpu", "--io_type", "int8"], "drop --io_type int8"),
    (["--model", "fd_mobilenet", "--edgetpu", "--denylist", "CONV_2D"], "cannot keep ops in float"),
    (["--model", "mobilenet_v3_large", "--edgetpu", "--nominimalistic", "--noexpand_hard_swish"],
     "keeps HARD_SWISH, which the Edge TPU does not run"),
    (["--model", "fd_mobilenet_v9", "--edgetpu"], "unknown model 'fd_mobilenet_v9'"),
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
