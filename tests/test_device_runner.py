"""The single-file device runner, run as a board runs it: a subprocess, outside the repository."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import pathlib
import platform
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from helpers import as_compiled_for_edgetpu

RUNNER = pathlib.Path(__file__).resolve().parents[1] / "android_bench" / "device_runner.py"

# Its tests share an expensive module fixture: one xdist worker runs them all.
pytestmark = pytest.mark.xdist_group("device_runner_models")


def run(*args, cwd, env=None):
    """(process, parsed JSON) of one run; stdout must hold the JSON line and nothing else."""
    proc = subprocess.run([sys.executable, str(RUNNER), *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300, check=False)
    lines = proc.stdout.splitlines()
    if proc.returncode == 2:  # a usage error: argparse's message, no JSON
        return proc, None
    assert len(lines) == 1, (proc.stdout, proc.stderr)
    return proc, json.loads(lines[0])


def runner_module():
    """The runner imported from its file, for its pure functions."""
    spec = importlib.util.spec_from_file_location("device_runner_under_test", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A MobileNet-like CNN with hard-swish, as float32 and as full int8 (int8 input and
    output). XNNPACK runs float HARD_SWISH but not int8 HARD_SWISH, so the same network gives
    one partition in float and is split at every hard-swish in int8."""
    import keras
    import tensorflow as tf
    from keras import layers

    keras.utils.set_random_seed(0)
    x = image = keras.Input((64, 64, 3))
    x = layers.Conv2D(16, 3, strides=2, padding="same")(x)
    x = layers.Activation("hard_swish")(layers.BatchNormalization()(x))
    for filters in (24, 32):
        x = layers.DepthwiseConv2D(3, padding="same")(x)
        x = layers.Activation("hard_swish")(layers.BatchNormalization()(x))
        x = layers.ReLU(6.0)(layers.BatchNormalization()(layers.Conv2D(filters, 1)(x)))
    logits = layers.Dense(10)(layers.GlobalAveragePooling2D()(x))
    model = keras.Model(image, logits)

    def representative():
        rng = np.random.default_rng(0)
        for _ in range(8):
            yield [rng.uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)]

    out = tmp_path_factory.mktemp("models")
    paths = {"float32": out / "cnn_float32.tflite", "int8": out / "cnn_int8.tflite"}
    paths["float32"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    with warnings.catch_warnings():  # "Statistics for quantized inputs were expected": none are
        warnings.simplefilter("ignore", UserWarning)
        paths["int8"].write_bytes(converter.convert())
    return paths


def host_outputs(model, inputs):
    """The outputs of this machine's ai_edge_litert (XNNPACK) for one set of inputs."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model), num_threads=1)
    interpreter.allocate_tensors()
    for detail, array in zip(interpreter.get_input_details(), inputs, strict=True):
        interpreter.set_tensor(detail["index"], array)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def test_times_a_float_model_in_one_xnnpack_partition(models, tmp_path):
    proc, result = run(models["float32"], "--runs", 7, "--warmup", 2, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    content = models["float32"].read_bytes()
    assert result["status"] == "ok" and "reason" not in result
    assert (result["sha256"], result["size_bytes"]) == (hashlib.sha256(content).hexdigest(),
                                                        len(content))
    assert result["runtime"]["package"] == "ai_edge_litert" and result["runtime"]["version"]
    assert result["python"] == platform.python_version()
    assert result["platform"]["system"] == platform.system()
    assert (result["delegate"], result["threads"], result["runs"]) == ("xnnpack", 1, 7)
    latency = result["latency_ms"]
    assert 0 < latency["min"] <= latency["median"] <= latency["p90"] <= latency["max"]
    assert latency["std"] >= 0 and latency["min"] <= latency["mean"] <= latency["max"]
    assert min(result["init_ms"], result["first_ms"], result["warmup_avg_ms"]) > 0
    assert result["peak_rss_mb"] > 10 and result["vm_hwm_mb"] > 10
    assert result["inputs"][0]["shape"] == [1, 64, 64, 3]
    assert result["inputs"][0]["dtype"] == result["outputs"][0]["dtype"] == "float32"
    assert result["outputs"][0]["shape"] == [1, 10]
    assert result["partitions"] == 1 and result["ops_outside_delegate"] == {}
    assert result["edgetpu_ops"] == 0 and result["input_source"] == "random, seed 0"


def test_cpu_delegate_runs_every_op_on_the_builtin_kernels(models, tmp_path):
    proc, result = run(models["float32"], "--runs", 2, "--delegate", "cpu", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert result["partitions"] == 0 and result["delegate"] == "cpu"
    assert result["ops_outside_delegate"]["CONV_2D"] == 3
    assert result["ops_outside_delegate"]["HARD_SWISH"] == 3


def test_int8_hard_swish_splits_the_xnnpack_partition(models, tmp_path):
    proc, result = run(models["int8"], "--runs", 2, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert result["ops_outside_delegate"] == {"HARD_SWISH": 3}
    assert result["partitions"] == 4  # before, between and after the three HARD_SWISH


def test_int8_check_against_host_references(models, tmp_path):
    model = models["int8"]
    proc, result = run(model, "--runs", 1, "--seed", 3, "--save_inputs", "inputs.npz",
                       "--save_outputs", "saved.npz", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    image = np.load(tmp_path / "inputs.npz")["arr_0"]
    assert image.dtype == np.int8 and image.shape == (1, 64, 64, 3)
    assert image.min() == -128 and image.max() == 127  # the whole range, 12k draws
    reference = host_outputs(model, [image])[0]
    np.testing.assert_array_equal(np.load(tmp_path / "saved.npz")["arr_0"], reference)
    np.savez(tmp_path / "expected.npz", reference)

    # The same seed gives the same inputs: no input file needs to travel to the board.
    proc, result = run(model, "--runs", 1, "--seed", 3, "--expect", "expected.npz", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    check = result["check"]
    assert check["passed"] and check["max_abs_diff"] <= 1 and check["atol"] == 1
    assert check["outputs"][0]["unit"] == "quantization steps"

    wrong = np.clip(reference.astype(np.int16) + 5, -128, 127).astype(np.int8)
    np.savez(tmp_path / "wrong.npz", wrong)
    proc, result = run(model, "--runs", 1, "--inputs", "inputs.npz", "--expect", "wrong.npz",
                       cwd=tmp_path)
    assert proc.returncode == 1 and result["status"] == "failed"
    assert "differ from the reference" in result["reason"]
    assert not result["check"]["passed"] and result["check"]["max_abs_diff"] >= 5
    assert result["latency_ms"]["median"] > 0  # the timing is still reported


def test_float_check_is_relative_to_the_output_scale(models, tmp_path):
    model = models["float32"]
    detail = {"dtype": np.float32, "shape": [1, 64, 64, 3]}
    image = runner_module().random_inputs([detail], seed=0)[0]
    reference = host_outputs(model, [image])[0]
    np.savez(tmp_path / "inputs.npz", image)
    np.savez(tmp_path / "expected.npz", reference.astype(np.float64))  # float64 is fine
    np.savez(tmp_path / "wrong.npz", reference + 0.01)
    proc, result = run(model, "--runs", 1, "--inputs", "inputs.npz", "--expect", "expected.npz",
                       cwd=tmp_path)
    assert proc.returncode == 0 and result["check"]["passed"], result
    assert result["check"]["outputs"][0]["unit"] == "absolute"
    proc, result = run(model, "--runs", 1, "--inputs", "inputs.npz", "--expect", "wrong.npz",
                       cwd=tmp_path)
    assert proc.returncode == 1 and not result["check"]["passed"]
    assert result["check"]["max_abs_diff"] == pytest.approx(0.01, rel=1e-3)


def test_unusable_inputs_or_references_are_reasons_not_tracebacks(models, tmp_path):
    np.savez(tmp_path / "float_image.npz", np.zeros((1, 64, 64, 3), np.float32))
    np.savez(tmp_path / "short.npz", np.zeros((1, 5), np.int8))
    (tmp_path / "garbage.npz").write_bytes(b"PK not really a zip")
    cases = [(["--inputs", "float_image.npz"], "quantize it first"),
             (["--expect", "short.npz"], "has shape [1, 5], the output [1, 10]"),
             (["--expect", "garbage.npz"], "cannot read output garbage.npz")]
    for flags, reason in cases:
        proc, result = run(models["int8"], "--runs", 1, *flags, cwd=tmp_path)
        assert proc.returncode == 1 and reason in result["reason"], result["reason"]
        assert "Traceback" not in proc.stderr


def test_random_inputs_fit_each_dtype_and_follow_the_seed():
    random_inputs = runner_module().random_inputs
    shape = [4, 1000]
    details = [{"dtype": dtype, "shape": shape}
               for dtype in (np.int8, np.uint8, np.int16, np.int32, np.bool_, np.float32)]
    arrays = random_inputs(details, seed=7)
    assert [a.dtype for a in arrays] == [d["dtype"] for d in details]
    ranges = [(int(a.min()), int(a.max())) for a in arrays[:5]]
    assert ranges[:2] == [(-128, 127), (0, 255)]
    assert ranges[2][0] < -30000 and ranges[2][1] > 30000  # int16: the whole range too
    assert ranges[3:] == [(0, 9), (0, 1)]  # wider integers are indices: small and valid
    assert -1 <= arrays[5].min() < -0.99 and 0.99 < arrays[5].max() <= 1
    again, other = random_inputs(details, seed=7), random_inputs(details, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(arrays, again, strict=True))
    assert not np.array_equal(arrays[0], other[0])


def test_edgetpu_without_the_runtime_says_what_to_install(models, tmp_path):
    proc, result = run(models["int8"], "--delegate", "edgetpu", cwd=tmp_path)
    assert proc.returncode == 1 and result["status"] == "failed"
    assert "libedgetpu.so.1 is missing" in result["reason"]
    assert "libedgetpu1-std" in result["reason"]
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    assert result["runtime"]["package"] == "ai_edge_litert"  # what was learnt is kept


@pytest.fixture(scope="module")
def edgetpu_model(models, tmp_path_factory):
    """The int8 model as edgetpu_compiler leaves one (tests/helpers.py)."""
    path = tmp_path_factory.mktemp("edgetpu") / "cnn_int8_edgetpu.tflite"
    path.write_bytes(as_compiled_for_edgetpu(models["int8"].read_bytes()))
    return path


def test_an_edge_tpu_model_without_the_delegate_says_to_use_it(edgetpu_model, tmp_path):
    proc, result = run(edgetpu_model, cwd=tmp_path)
    assert proc.returncode == 1
    assert result["reason"].startswith("the model does not load: ")
    assert "unresolved custom op: edgetpu-custom-op" in result["reason"]
    assert result["reason"].endswith("run it with --delegate edgetpu)")


# What ai_edge_litert 2.3 lists for an Edge TPU model (an edgetpu-custom-op, then
# FULLY_CONNECTED and SOFTMAX on the CPU) with a stand-in libedgetpu that, like the real one
# (tflite/edgetpu_delegate_for_custom_op.cc), replaces each edgetpu-custom-op with a delegate
# kernel of its own. The default XNNPACK delegate, applied after it, took FULLY_CONNECTED.
EDGETPU_MODEL_NODES = [
    {"index": 0, "op_name": "edgetpu-custom-op", "inputs": [0], "outputs": [18]},
    {"index": 1, "op_name": "FULLY_CONNECTED", "inputs": [18, 2, -1], "outputs": [19]},
    {"index": 2, "op_name": "SOFTMAX", "inputs": [19], "outputs": [20]},
    {"index": 3, "op_name": "DELEGATE", "inputs": [0], "outputs": [18]},
    {"index": 4, "op_name": "DELEGATE", "inputs": [2, 18], "outputs": [19]},
]


def test_edge_tpu_ops_are_counted_inside_their_partitions():
    class Listing:
        def _get_ops_details(self):
            return [{**node, "inputs": np.array(node["inputs"], np.int32),
                     "outputs": np.array(node["outputs"], np.int32)}
                    for node in EDGETPU_MODEL_NODES]

    assert runner_module().execution(Listing()) == {
        "partitions": 2, "ops_outside_delegate": {"SOFTMAX": 1}, "edgetpu_ops": 1}


def test_bad_model_and_bad_flags(tmp_path):
    proc, result = run(tmp_path / "missing.tflite", cwd=tmp_path)
    assert proc.returncode == 1 and "does not exist" in result["reason"]
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"not a model at all" * 10)
    proc, result = run(corrupt, cwd=tmp_path)
    assert proc.returncode == 1 and result["reason"].startswith("the model does not load: ")
    assert "\n" not in result["reason"] and "Traceback" not in proc.stderr
    for flags in (["--delegate", "gpu"], ["--runs", "0"], ["--threads", "two"]):
        proc, _ = run(corrupt, *flags, cwd=tmp_path)
        assert proc.returncode == 2 and "usage:" in proc.stderr


# A board image with tflite_runtime and no ai_edge_litert: sitecustomize installs an import
# hook that hides ai_edge_litert, and a shim tflite_runtime package re-exports its interpreter
# (the only one here). The shim's invoke() also writes to file descriptor 1, as native code can.
HIDE_LITERT = """
    import sys
    class HideLiteRT:
        hiding = True
        def find_spec(self, name, path=None, target=None):
            if self.hiding and name.split(".")[0] == "ai_edge_litert":
                raise ImportError("ai_edge_litert is not installed on this board")
    sys.meta_path.insert(0, HideLiteRT())
"""
SHIM_INTERPRETER = """
    import os, sys
    hider = next(f for f in sys.meta_path if type(f).__name__ == "HideLiteRT")
    hider.hiding = False
    from ai_edge_litert.interpreter import {names}
    from ai_edge_litert.interpreter import Interpreter as _Interpreter
    hider.hiding = True

    class Interpreter(_Interpreter):
        def invoke(self):
            os.write(1, b"native chatter on stdout\\n")
            print("python chatter on stdout")
            return super().invoke()
"""


@pytest.mark.parametrize("has_resolver_types", [True, False], ids=["2.5+", "pre-2.5"])
def test_runs_where_only_tflite_runtime_is_installed(models, tmp_path, has_resolver_types):
    shim = tmp_path / "shim"
    (shim / "tflite_runtime").mkdir(parents=True)
    (shim / "tflite_runtime" / "__init__.py").write_text("__version__ = '2.14.0'\n")
    names = "load_delegate, OpResolverType" if has_resolver_types else "load_delegate"
    (shim / "tflite_runtime" / "interpreter.py").write_text(
        textwrap.dedent(SHIM_INTERPRETER).format(names=names))
    (shim / "sitecustomize.py").write_text(textwrap.dedent(HIDE_LITERT))
    env = {"PYTHONPATH": str(shim), "PATH": "/usr/bin:/bin"}
    hidden = subprocess.run([sys.executable, "-c", "import ai_edge_litert"], env=env,
                            capture_output=True, cwd=tmp_path, check=False)
    assert hidden.returncode != 0  # the simulation holds

    proc, result = run(models["float32"], "--runs", 2, "--delegate", "cpu", cwd=tmp_path,
                       env=env)
    assert result["runtime"] == {"package": "tflite_runtime", "version": "2.14.0",
                                 "api": "Interpreter"}
    if has_resolver_types:
        assert proc.returncode == 0, proc.stderr
        assert result["partitions"] == 0
        assert "chatter" in proc.stderr  # moved off stdout, which holds only the JSON line
    else:  # this runtime applies XNNPACK and has no way to turn it off: refuse to mislabel
        assert proc.returncode == 1 and "OpResolverType" in result["reason"]


def test_the_file_is_python_3_7():
    ast.parse(RUNNER.read_text(), feature_version=(3, 7))


# --- The check's verdict, sustained runs, the CompiledModel API, full delegation ------------


def check_of(outputs, references, runtime=None, atol=None):
    """compare() on arrays, with output details named after their position, for references
    made by `runtime` ("package==version") on a board running ai_edge_litert 2.3.0."""
    module = runner_module()
    details = [{"name": f"out{i}"} for i in range(len(outputs))]
    here = {"package": "ai_edge_litert", "version": "2.3.0"}
    return module.compare(outputs, references, details, atol, module.check_rule(here, runtime))


def logits(seed=0, size=40):
    """int8 outputs spread like a classifier's (std about 30 steps)."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0, 30, (1, size)), -128, 127).astype(np.int8)


def test_int8_matches_the_same_runtime_to_a_step_and_tracks_another():
    reference = logits()
    two_steps = reference.copy()
    two_steps[0, :12] = np.clip(two_steps[0, :12].astype(int) + 2, -128, 127)
    same = check_of([two_steps], [reference], runtime="ai_edge_litert==2.3.0")
    assert not same["passed"] and same["outputs"][0]["tolerance"] == 1
    assert same["outputs"][0]["differing"] == 12 and same["outputs"][0]["values"] == 40
    assert "the same runtime as the references'" in same["int8_tolerance_from"]
    assert "the outputs track the host's, as when kernels round differently" in same["verdict"]
    assert "by up to 2 steps in 12 of 40 values of out0 (SQNR" in same["verdict"]
    # tflite_runtime 2.14 against ai_edge_litert 2.3 on an untrained MobileNet V2: up to 17
    # steps, SQNR 16 dB (test_arm64_board): tracking, so passing.
    rng = np.random.default_rng(1)
    drifted = np.clip(reference + rng.normal(0, 5, reference.shape).round(), -128, 127)
    other = check_of([drifted.astype(np.int8)], [reference], runtime="tflite_runtime==2.14.0")
    assert other["passed"] and other["outputs"][0]["tolerance"] is None
    assert 10 <= other["outputs"][0]["sqnr_db"] < 20 and other["max_abs_diff"] > 4
    assert "tflite_runtime==2.14.0 there" in other["int8_tolerance_from"]
    assert other["verdict"] == "within the tolerance of the host's outputs"
    exact = check_of([reference.copy()], [reference])
    assert exact["verdict"] == "identical to the host's outputs" and exact["atol"] == 1
    # --atol wins over the rule, and says so.
    strict = check_of([two_steps], [reference], runtime="tflite_runtime==2.14.0", atol=1)
    assert not strict["passed"] and strict["int8_tolerance_from"] == "--atol"


def test_outputs_that_no_longer_track_the_references_are_not_rounding():
    reference = logits()
    scrambled = logits(seed=7)  # XNNPACK's int8 kernels on qemu's SME CPU: 0.4 dB, -11.8 dB
    for runtime in ("ai_edge_litert==2.3.0", "tflite_runtime==2.14.0"):
        check = check_of([scrambled], [reference], runtime=runtime)
        assert not check["passed"] and check["outputs"][0]["sqnr_db"] < 10
        assert "no longer track the host's" in check["verdict"]
    float_reference = np.linspace(-5, 5, 10, dtype=np.float32).reshape(1, 10)
    drifted = float_reference + np.float32(5e-3)  # kernels summing in another order
    assert "track the host's, as when" in check_of([drifted], [float_reference])["verdict"]
    wrong = float_reference[:, ::-1].copy()
    assert "no longer track" in check_of([wrong], [float_reference])["verdict"]
    nan = float_reference.copy()
    nan[0, 0] = np.nan
    assert "no longer track" in check_of([nan], [float_reference])["verdict"]


def test_a_broken_delegate_is_told_from_a_broken_model_by_the_builtin_kernels(models, tmp_path):
    """References that XNNPACK cannot meet but the builtin kernels can stand for XNNPACK
    kernels gone wrong on a CPU (what SME under qemu gives, test_arm64_board); references
    neither meets stand for a broken model."""
    model = models["int8"]
    proc, _ = run(model, "--runs", 1, "--delegate", "cpu", "--save_inputs", "in.npz",
                  "--save_outputs", "builtin.npz", cwd=tmp_path)
    assert proc.returncode == 0
    builtin = np.load(tmp_path / "builtin.npz")["arr_0"]
    # References 60 steps from what either kernel gives: a broken model (or file).
    far = np.where(builtin >= 0, builtin.astype(np.int16) - 60, builtin.astype(np.int16) + 60)
    np.savez(tmp_path / "far.npz", far.astype(np.int8))
    proc, result = run(model, "--runs", 1, "--inputs", "in.npz", "--expect", "far.npz",
                       cwd=tmp_path)
    assert proc.returncode == 1
    check = result["check"]
    assert check["builtin_kernels"]["tracks"] is False
    assert "the builtin kernels do not track them either" in check["verdict"]
    assert check["outputs"][0]["sqnr_db"] < 10
    # The builtin kernels' own outputs as references: XNNPACK's on this machine agree with
    # them within a step, so the cross-check is not even needed.
    proc, result = run(model, "--runs", 1, "--inputs", "in.npz", "--expect", "builtin.npz",
                       cwd=tmp_path)
    assert proc.returncode == 0 and "builtin_kernels" not in result["check"]


def test_throttling_is_latency_up_or_frequency_down_past_the_threshold():
    throttling = runner_module().throttling

    def samples(latencies, khz=None):
        return [{"t_s": i, "median_ms": ms, "mean_khz": (khz or [None] * len(latencies))[i]}
                for i, ms in enumerate(latencies)]

    steady = throttling(samples([10, 10.2, 9.9, 10.1, 10.0, 10.3, 10.1, 10.2]), 0.1)
    assert not steady["throttled"] and steady["settled_ms"] == pytest.approx(10.15)
    hot = throttling(samples([10, 10, 10, 11, 12, 13, 13, 13]), 0.1)
    assert hot["throttled"] and hot["latency_rise"] == pytest.approx(0.3)
    slow_clock = throttling(samples([10] * 8, khz=[2_800_000] * 4 + [2_000_000] * 4), 0.1)
    assert slow_clock["throttled"] and slow_clock["frequency_drop"] == pytest.approx(0.2857, abs=1e-3)


def test_a_sustained_run_samples_over_time_and_reports_the_settled_latency(models, tmp_path):
    proc, result = run(models["float32"], "--warmup", 1, "--duration_s", 1.2, "--sample_s", 0.2,
                       cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_facts = result["sustained"]
    samples = run_facts["samples"]
    assert len(samples) >= 6 and samples[-1]["t_s"] >= 1.2
    assert [s["t_s"] for s in samples] == sorted(s["t_s"] for s in samples)
    assert all(s["runs"] >= 1 and s["median_ms"] > 0 for s in samples)
    assert set(run_facts) >= {"cold_ms", "settled_ms", "latency_rise", "throttled", "threshold"}
    # the runs reported are the last quarter's, not the whole run's
    assert 0 < result["runs"] < sum(s["runs"] for s in samples)


def test_the_compiled_model_api_gives_the_interpreters_outputs(models, tmp_path):
    model = models["int8"]
    proc, result = run(model, "--runs", 1, "--save_inputs", "in.npz", "--save_outputs",
                       "ref.npz", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc, result = run(model, "--runs", 2, "--runtime", "compiled_model", "--inputs", "in.npz",
                       "--expect", "ref.npz", "--atol", 0, cwd=tmp_path)
    assert proc.returncode == 0, result.get("reason")
    assert result["runtime"]["api"] == "CompiledModel"
    assert result["check"]["verdict"] == "identical to the host's outputs"
    proc, result = run(model, "--runs", 1, "--runtime", "compiled_model", "--delegate", "cpu",
                       cwd=tmp_path)
    assert proc.returncode == 1 and "--runtime interpreter" in result["reason"]


def test_require_full_delegation_fails_a_split_graph(models, tmp_path):
    proc, result = run(models["int8"], "--runs", 1, "--require_full_delegation", cwd=tmp_path)
    assert proc.returncode == 1
    assert result["reason"].startswith("--require_full_delegation: xnnpack left ops to the "
                                       "builtin CPU kernels (HARD_SWISH 3) in 4 partition(s)")
    proc, result = run(models["float32"], "--runs", 1, "--require_full_delegation", cwd=tmp_path)
    assert proc.returncode == 0 and result["partitions"] == 1


def test_describe_reports_the_runtime_and_the_cpu(tmp_path):
    proc = subprocess.run([sys.executable, str(RUNNER), "--describe"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120, check=True)
    facts = json.loads(proc.stdout)
    assert facts["runtime"]["package"] == "ai_edge_litert"
    assert facts["runtime"]["apis"] == ["Interpreter", "CompiledModel"]
    assert facts["platform"]["machine"] == platform.machine()
    assert facts["numpy"] == np.__version__
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f
                      if line.startswith(("flags", "Features"))), [])
    assert set(facts["cpu"]["features"]) <= set(flags) and facts["cpu"]["features"]


def test_arm64_features_come_from_the_auxiliary_vector_bits():
    module = runner_module()
    # bit 1 asimd, bit 20 asimddp (AT_HWCAP); bit 13 i8mm, bit 23 sme (AT_HWCAP2)
    assert module.ARM64_HWCAP[1] == "asimd" and module.ARM64_HWCAP[20] == "asimddp"
    assert module.ARM64_HWCAP2[13] == "i8mm" and module.ARM64_HWCAP2[23] == "sme"
    assert module.ARM64_HWCAP2[37] == "sme2"
