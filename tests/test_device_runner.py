"""The single-file device runner, run as a board runs it: a subprocess, outside the repository."""

from __future__ import annotations

import ast
import json
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

RUNNER = pathlib.Path(__file__).resolve().parents[1] / "android_bench" / "device_runner.py"


def run(*args, cwd, env=None):
    proc = subprocess.run([sys.executable, str(RUNNER), *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300)
    lines = proc.stdout.splitlines()
    return proc, (json.loads(lines[0]) if lines else None), lines


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """MobileNet V3 Small (hard-swish) at 64 px, via the converter: float, int8, and int8 with
    its HARD_SWISH ops kept."""
    from calibration import sources
    from converters import pipeline
    from tfmobile import models as zoo

    out = tmp_path_factory.mktemp("models")
    model = zoo.build("mobilenet_v3_small", input_size=64, num_classes=10, classifier_activation=None)
    requests = {"float32": pipeline.Request(mode="float32", eval_samples=4),
                "int8": pipeline.Request(mode="int8", calibration_samples=16, eval_samples=4),
                "int8_hard_swish": pipeline.Request(mode="int8", calibration_samples=16,
                                                    eval_samples=4, expand_hard_swish=False)}
    paths = {}
    for name, request in requests.items():
        paths[name] = out / f"v3s_{name}.tflite"
        paths[name].write_bytes(pipeline.convert(model, sources.load(None), request).content)
    return paths


def test_times_a_float_model_in_one_xnnpack_partition(models, tmp_path):
    proc, result, lines = run(models["float32"], "--runs", 7, "--warmup", 2, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(lines) == 1  # one JSON line, whatever the runtime prints
    assert result["status"] == "ok" and result["runs"] == 7
    latency = result["latency_ms"]
    assert 0 < latency["min"] <= latency["median"] <= latency["p90"] <= latency["max"]
    assert result["init_ms"] > 0 and result["first_ms"] > 0 and result["peak_rss_mb"] > 10
    assert result["runtime"]["package"] == "ai_edge_litert"
    assert result["partitions"] == 1 and result["ops_outside_delegate"] == {}
    assert result["inputs"][0]["shape"] == [1, 64, 64, 3]


def test_cpu_delegate_runs_every_op_on_the_plain_kernels(models, tmp_path):
    proc, result, _ = run(models["float32"], "--runs", 2, "--delegate", "cpu", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert result["partitions"] == 0
    assert result["ops_outside_delegate"]["CONV_2D"] > 10


def test_int8_hard_swish_is_left_outside_xnnpack_unless_expanded(models, tmp_path):
    proc, result, _ = run(models["int8_hard_swish"], "--runs", 2, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    outside = result["ops_outside_delegate"]
    assert set(outside) == {"HARD_SWISH"} and result["partitions"] == outside["HARD_SWISH"] + 1
    proc, result, _ = run(models["int8"], "--runs", 2, cwd=tmp_path)
    assert result["partitions"] == 1 and result["ops_outside_delegate"] == {}


def test_checks_outputs_against_host_references(models, tmp_path):
    from converters import litert

    interpreter = litert.load(str(models["int8"]))
    detail = interpreter.get_input_details()[0]
    image = np.random.default_rng(1).integers(-128, 128, detail["shape"], dtype=np.int8)
    interpreter.set_tensor(detail["index"], image)
    interpreter.invoke()
    reference = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.savez(tmp_path / "inputs.npz", image)
    np.savez(tmp_path / "expected.npz", reference)
    proc, result, _ = run(models["int8"], "--runs", 1, "--inputs", "inputs.npz",
                          "--expect", "expected.npz", "--save_outputs", "saved.npz", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert result["check"]["passed"] and result["check"]["max_abs_diff"] <= 1
    np.testing.assert_array_equal(np.load(tmp_path / "saved.npz")["arr_0"], reference)

    perturbed = reference.astype(np.int16) + 5
    np.savez(tmp_path / "wrong.npz", np.clip(perturbed, -128, 127).astype(np.int8))
    proc, result, _ = run(models["int8"], "--runs", 1, "--inputs", "inputs.npz",
                          "--expect", "wrong.npz", cwd=tmp_path)
    assert proc.returncode == 1
    assert result["status"] == "failed" and not result["check"]["passed"]


def test_edgetpu_without_the_runtime_says_what_to_install(models, tmp_path):
    proc, result, _ = run(models["int8"], "--delegate", "edgetpu", cwd=tmp_path)
    assert proc.returncode == 1
    assert "libedgetpu.so.1" in result["reason"] and "libedgetpu1-std" in result["reason"]
    assert "Traceback" not in proc.stderr


def test_bad_model_and_bad_flags(tmp_path):
    proc, result, _ = run(tmp_path / "missing.tflite", cwd=tmp_path)
    assert proc.returncode == 1 and "does not exist" in result["reason"]
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"not a model at all" * 10)
    proc, result, _ = run(corrupt, cwd=tmp_path)
    assert proc.returncode == 1 and result["reason"].startswith("the model does not load")
    assert "Traceback" not in proc.stderr
    proc, _, _ = run(corrupt, "--delegate", "gpu", cwd=tmp_path)
    assert proc.returncode == 2


def test_runs_where_only_tflite_runtime_is_installed(models, tmp_path):
    # A board image with tflite_runtime and no ai_edge_litert: a path hook hides the one and a
    # shim package provides the other (re-exporting the same interpreter, the only one here).
    shim = tmp_path / "shim"
    (shim / "tflite_runtime").mkdir(parents=True)
    (shim / "tflite_runtime" / "__init__.py").write_text("__version__ = '2.14.0'\n")
    (shim / "tflite_runtime" / "interpreter.py").write_text(textwrap.dedent("""
        import sys
        hider = next(f for f in sys.meta_path if type(f).__name__ == "HideLiteRT")
        hider.hiding = False
        from ai_edge_litert.interpreter import Interpreter, load_delegate, OpResolverType
        hider.hiding = True
    """))
    (shim / "sitecustomize.py").write_text(textwrap.dedent("""
        import sys
        class HideLiteRT:
            hiding = True
            def find_spec(self, name, path=None, target=None):
                if self.hiding and name.split(".")[0] == "ai_edge_litert":
                    raise ImportError("ai_edge_litert is not installed on this board")
        sys.meta_path.insert(0, HideLiteRT())
    """))
    env = {"PYTHONPATH": str(shim), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", "import ai_edge_litert"], env=env,
                          capture_output=True, cwd=tmp_path)
    assert proc.returncode != 0  # the simulation holds
    proc, result, _ = run(models["float32"], "--runs", 2, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert result["runtime"] == {"package": "tflite_runtime", "version": "2.14.0"}


def test_the_file_is_python_3_7():
    ast.parse(RUNNER.read_text(), feature_version=(3, 7))
