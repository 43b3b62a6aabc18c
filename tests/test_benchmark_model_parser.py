"""benchmark_model: its log parsed from real published outputs (tests/data/benchmark_model, see
SOURCES.md there), its command line, and the stand-in binary the stand-in phone runs."""

import ast
import ctypes
import math
import os
import pathlib
import subprocess
import sys

import pytest

from android_bench import benchmark_model
from android_bench.benchmark_model import BenchmarkOutputError, flags, parse_output

HERE = pathlib.Path(__file__).parent
DATA = HERE / "data" / "benchmark_model"
STANDIN = HERE / "standins" / "benchmark_model"


def sample(name):
    return parse_output((DATA / name).read_text())


# --- real logs ---------------------------------------------------------------------------------

def test_current_tool_percentiles_exponents_and_memory():
    result = sample("ti_am62x_cpu.txt")
    assert (result["init_us"], result["first_us"], result["warmup_avg_us"], result["avg_us"]) == \
        (5579, 1357602, 1.3576e06, 1.24027e06)
    assert result["run_stats"] == {"count": 50, "first": 1249964, "curr": 1240143,
                                   "min": 1238588, "max": 1252566, "avg": 1.24027e06,
                                   "std": 2565, "p5": 1238753, "median": 1239807, "p95": 1247415}
    # A one-run phase prints count and curr only: that one run is also its first, min, max, avg.
    assert result["warmup_stats"] == {"count": 1, "first": 1357602, "curr": 1357602,
                                      "min": 1357602, "max": 1357602, "avg": 1357602, "std": 0,
                                      "p5": 1357602, "median": 1357602, "p95": 1357602}
    assert (result["std_us"], result["median_us"]) == (2565, 1239807)
    assert (result["init_mb"], result["overall_mb"], result["peak_mb"]) == (6.36328, 109.832, None)
    assert result["delegates"] is None


def test_explicitly_applied_xnnpack_partially_delegated():
    result = sample("ti_am62x_xnnpack.txt")
    assert result["delegates"] == {"XNNPACK": benchmark_model.PARTIAL}
    assert (result["init_us"], result["avg_us"], result["median_us"]) == (614333, 899641, 899281)
    assert result["run_stats"]["count"] == 50 and result["warmup_stats"]["count"] == 1
    assert (result["init_mb"], result["overall_mb"]) == (146.363, 150.141)


def test_tflite_1_12_no_stats_line():
    result = sample("tflite_1_12_no_stats.txt")
    assert (result["warmup_avg_us"], result["init_us"], result["avg_us"]) == (146161, 4452, 137722)
    assert result["first_us"] is None  # that form never printed it
    assert result["run_stats"] == {"count": 50, "first": 137789, "curr": 137254, "min": 137079,
                                   "max": 143416, "avg": 137722, "std": 896}
    assert result["warmup_stats"]["avg"] == 146161 and result["std_us"] == 896
    assert result["init_mb"] is None


def test_readme_sample_old_average_line_and_the_op_profiler_is_not_the_runs():
    result = sample("tf_readme_op_profiling.txt")
    assert (result["warmup_avg_us"], result["init_us"], result["avg_us"]) == (83235, 38467, 79760.9)
    assert result["first_us"] is None
    # "Timings (microseconds): count=50 ... avg=79732" sums the profiled ops; not the tool's line.
    assert result["run_stats"] is None and result["std_us"] is None


def test_exponents_and_op_profiling_after_the_summary():
    result = sample("mobilenet_v1_exponents.txt")
    assert (result["init_us"], result["first_us"]) == (17187, 3512391)
    assert (result["warmup_avg_us"], result["avg_us"]) == (3.51239e06, 2.95034e06)
    assert result["run_stats"]["avg"] == 2.95034e06 and result["std_us"] == 109798  # not 109770
    assert result["warmup_stats"]["count"] == 1 and result["median_us"] is None
    assert (result["init_mb"], result["overall_mb"]) == (4.21094, 46.0859)


def test_tf_2_4_peak_memory_name_and_a_log_cut_to_its_last_lines():
    result = sample("yolov5s_android_peak_memory.txt")
    assert (result["init_us"], result["first_us"], result["warmup_avg_us"], result["avg_us"]) == \
        (16242, 360262, 304586, 249684)
    assert result["run_stats"] == {"count": 50, "first": 249042, "curr": 250889, "min": 247067,
                                   "max": 254474, "avg": 249684, "std": 1442}
    assert result["warmup_stats"] is None
    assert (result["init_mb"], result["overall_mb"]) == (4.92969, 138.809)


def test_unprefixed_tool_lines_among_the_runtimes_info_lines():
    result = sample("gpu_opencl_mixed_prefixes.txt")
    assert result["delegates"] == {"GPU": benchmark_model.COMPLETE}
    assert (result["init_us"], result["first_us"], result["warmup_avg_us"], result["avg_us"]) == \
        (870557, 130565, 122373, 119375)
    assert (result["warmup_stats"]["count"], result["run_stats"]["count"]) == (4, 50)
    assert result["std_us"] == 1948


def test_android_logcat_lines():
    result = sample("logcat_nnapi_partial.txt")
    assert result["delegates"] == {"NNAPI": benchmark_model.PARTIAL}
    assert (result["init_us"], result["first_us"], result["warmup_avg_us"], result["avg_us"]) == \
        (126059, 32942, 12581.9, 12167.6)
    # 50 runs were asked for; the default min_secs=1 kept the tool going (flags() sets it to 0).
    assert (result["warmup_stats"]["count"], result["run_stats"]["count"]) == (40, 75)
    assert result["run_stats"]["std"] == 325


def test_logcat_as_the_guide_abbreviates_it():
    result = sample("litert_guide_logcat.txt")
    assert (result["init_us"], result["first_us"], result["warmup_avg_us"], result["avg_us"]) == \
        (5685, 18535, 14462.3, 14575.2)
    assert result["run_stats"] is None


def test_a_failed_nnapi_delegate_is_an_error_quoting_the_tail():
    with pytest.raises(BenchmarkOutputError) as err:
        sample("yolov5s_nnapi_dsp_failure.txt")
    assert "Failed to apply NNAPI delegate." in str(err.value)
    assert "Benchmarking failed." in str(err.value)
    assert "ANEURALNETWORKS_BAD_DATA" in str(err.value)


def test_a_gpu_that_cannot_build_its_program_is_an_error_quoting_the_tail():
    with pytest.raises(BenchmarkOutputError, match="no timings") as err:
        sample("gpu_coral_build_failure.txt")
    assert "conversion between different vector types not allowed" in str(err.value)
    assert "GPU delegate created." in str(err.value)
    assert isinstance(err.value, ValueError)


# --- synthetic variations ----------------------------------------------------------------------

CURRENT_LOG = """\
STARTING!
Loaded model /data/local/tmp/m.tflite
Initialized session in 12.5ms.
Running benchmark for at least 2 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
count=2 first=900 curr=700 min=700 max=900 avg=800 std=100 p5=700 median=900 p95=900

Running benchmark for at least 4 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
count=4 first=610 curr=590 min=580 max=620 avg=1.2e+03 std=15 p5=580 median=600 p95=620

Inference timings in us: Init: 12500, First inference: 900, Warmup (avg): 800, Inference (avg): 1.2e+03
Memory footprint delta from the start of the tool (MB): init=1.5 overall=3.25
Overall peak memory footprint (MB) via periodic monitoring: 40.5
"""


@pytest.mark.parametrize("prefix", [
    "",
    "INFO: ",
    "   INFO: ",                                          # indented, as a docs page quotes it
    "11-22 10:41:07.512  8125  8143 I tflite  : ",        # adb logcat (threadtime)
    "I/tflite  ( 8125): ",                                 # adb logcat -v brief
    "... tflite  : ",                                      # as the docs abbreviate logcat
])
def test_any_line_prefix(prefix):
    text = "".join(prefix + line + "\n" for line in CURRENT_LOG.splitlines())
    result = parse_output(text)
    assert (result["init_us"], result["first_us"], result["warmup_avg_us"], result["avg_us"]) == \
        (12500, 900, 800, 1200)
    assert (result["warmup_stats"]["count"], result["run_stats"]["count"]) == (2, 4)
    assert (result["std_us"], result["median_us"]) == (15, 600)
    assert (result["init_mb"], result["overall_mb"], result["peak_mb"]) == (1.5, 3.25, 40.5)


def test_statistics_alone_are_enough():
    result = parse_output("count=20 first=5 curr=4 min=3 max=6 avg=4.25 std=0.5\n")
    assert (result["avg_us"], result["std_us"], result["run_stats"]["count"]) == (4.25, 0.5, 20)
    assert result["init_us"] is None and result["warmup_stats"] is None  # not printed


def test_runs_that_all_took_the_same_time():
    result = parse_output("count=5 curr=100(all same) p5=100 median=100 p95=100\n")
    assert result["run_stats"] == {"count": 5, "first": 100, "curr": 100, "min": 100, "max": 100,
                                   "avg": 100, "std": 0, "p5": 100, "median": 100, "p95": 100}
    assert result["avg_us"] == 100


def test_no_warm_up_runs_print_nan():
    text = ("count=0 p5=0 median=0 p95=0\ncount=3 first=9 curr=8 min=8 max=9 avg=8.33 std=0\n"
            "Inference timings in us: Init: 10, First inference: 0, Warmup (avg): nan, "
            "Inference (avg): 8.33\n")
    result = parse_output(text)
    assert math.isnan(result["warmup_avg_us"]) and result["avg_us"] == 8.33
    assert result["warmup_stats"] == {"count": 0, "p5": 0, "median": 0, "p95": 0}


def test_delegates_the_tool_went_on_without():
    text = ("WARN: GPU acceleration is unsupported on this platform.\n"
            "INFO: Unable to load external delegate from : libedgetpu.so.1 (libedgetpu.so.1: "
            "cannot open shared object file: No such file or directory)\n"
            "INFO: Though NNAPI delegate is explicitly applied, the model graph will not be "
            "executed by the delegate.\n"
            "INFO: Inference timings in us: Init: 1, First inference: 2, Warmup (avg): 3, "
            "Inference (avg): 4\n")
    assert parse_output(text)["delegates"] == {"GPU": "unavailable", "EXTERNAL": "unavailable",
                                               "NNAPI": "unused"}


def test_a_benchmark_that_died_in_its_warm_up_has_no_timings():
    text = ("INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but "
            "terminate if exceeding 150 seconds.\n"
            "INFO: count=1 curr=5000 p5=5000 median=5000 p95=5000\n\n"
            "ERROR: Node number 3 (CONV_2D) failed to invoke.\n")
    with pytest.raises(BenchmarkOutputError, match="failed to invoke") as err:
        parse_output(text)
    assert "count=1 curr=5000" in str(err.value)


def test_timings_from_a_run_that_then_failed_are_not_taken():
    text = CURRENT_LOG + "ERROR: Benchmarking failed.\n"
    with pytest.raises(BenchmarkOutputError, match="failed"):
        parse_output(text)


def test_the_error_quotes_only_the_last_lines():
    text = "\n".join(f"INFO: line {i}" for i in range(20)) + "\n\n"
    with pytest.raises(BenchmarkOutputError) as err:
        parse_output(text)
    assert "line 19" in str(err.value) and "line 15" in str(err.value)
    assert "line 14" not in str(err.value)
    with pytest.raises(BenchmarkOutputError, match=r"\(nothing\)"):
        parse_output("")


# --- the command line --------------------------------------------------------------------------

def test_flags():
    assert flags("/data/local/tmp/m.tflite", num_threads=4, warmup_runs=3, num_runs=20,
                 delegate="xnnpack") == [
        "--graph=/data/local/tmp/m.tflite", "--num_threads=4", "--warmup_runs=3",
        "--num_runs=20", "--min_secs=0", "--warmup_min_secs=0", "--use_xnnpack=true"]


@pytest.mark.parametrize("delegate,flag", [
    ("cpu", "--use_xnnpack=false"), ("xnnpack", "--use_xnnpack=true"), ("gpu", "--use_gpu=true"),
    ("nnapi", "--use_nnapi=true"), ("edgetpu", "--external_delegate_path=libedgetpu.so.1"),
])
def test_delegate_flags(delegate, flag):
    assert flags("m", num_threads=1, warmup_runs=1, num_runs=1, delegate=delegate)[-1] == flag


def test_extra_flags_and_their_mistakes():
    args = flags("m", num_threads=1, warmup_runs=1, num_runs=1, delegate="gpu",
                 extra={"gpu_precision_loss_allowed": False, "max_secs": 600})
    assert args[-2:] == ["--gpu_precision_loss_allowed=false", "--max_secs=600"]
    with pytest.raises(ValueError, match="num_runs"):  # the tool would ignore the second one
        flags("m", num_threads=1, warmup_runs=1, num_runs=1, delegate="cpu",
              extra={"num_runs": 5})
    with pytest.raises(ValueError, match="cpu, xnnpack, gpu, nnapi, edgetpu"):
        flags("m", num_threads=1, warmup_runs=1, num_runs=1, delegate="tpu")


# --- the stand-in binary -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A small float model; a convolution so that each invoke takes measurable microseconds."""
    import keras

    from converters import tflite

    net = keras.Sequential([keras.Input((32, 32, 3)),
                            keras.layers.Conv2D(16, 3, activation="relu"),
                            keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    path = tmp_path_factory.mktemp("model") / "small.tflite"
    path.write_bytes(tflite.convert_float(net))
    return str(path)


def standin(*args):
    """The stand-in under this test run's interpreter (its shebang would take PATH's python3)."""
    return subprocess.run([sys.executable, str(STANDIN), *args], capture_output=True, text=True,
                          timeout=120, check=False)


def run_standin(model, delegate, **kwargs):
    options = dict(num_threads=1, warmup_runs=2, num_runs=7, delegate=delegate, **kwargs)
    return standin(*flags(model, **options))


def test_standin_is_an_executable_python_3_7_script():
    assert os.access(STANDIN, os.X_OK)
    assert STANDIN.read_text().startswith("#!/usr/bin/env python3\n")
    ast.parse(STANDIN.read_text(), feature_version=(3, 7))


def test_standin_log_parses_with_the_counts_asked_for(model):
    proc = run_standin(model, "xnnpack")
    assert proc.returncode == 0, proc.stderr
    result = parse_output(proc.stdout + proc.stderr)
    assert result["avg_us"] > 0 and result["init_us"] > 0 and result["first_us"] > 0
    assert (result["warmup_stats"]["count"], result["run_stats"]["count"]) == (2, 7)
    assert result["run_stats"]["min"] <= result["median_us"] <= result["run_stats"]["max"]
    assert result["init_mb"] is not None and result["overall_mb"] >= result["init_mb"]
    assert "INFO: The input model file size (MB): " in proc.stdout


def test_xnnpack_off_really_runs_the_plain_kernels(model):
    on, off = run_standin(model, "xnnpack"), run_standin(model, "cpu")
    assert on.returncode == off.returncode == 0, on.stderr + off.stderr
    # The runtime itself says when it creates XNNPACK; the tool says whether it took the graph.
    assert "Created TensorFlow Lite XNNPACK delegate for CPU." in on.stderr
    assert parse_output(on.stdout + on.stderr)["delegates"] == {"XNNPACK": "complete"}
    assert "XNNPACK" not in off.stdout + off.stderr
    assert "INFO: Use xnnpack: [0]" in off.stdout
    assert parse_output(off.stdout + off.stderr)["delegates"] is None


def test_standin_gpu_fails_as_the_tool_does_without_one(model):
    proc = run_standin(model, "gpu")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-2:] == ["ERROR: Failed to apply GPU delegate.",
                                             "ERROR: Benchmarking failed."]
    with pytest.raises(BenchmarkOutputError, match="Failed to apply GPU delegate"):
        parse_output(proc.stdout + proc.stderr)


def test_standin_nnapi_falls_back_to_the_cpu_as_the_tool_does(model):
    proc = run_standin(model, "nnapi")
    assert proc.returncode == 0, proc.stderr
    result = parse_output(proc.stdout + proc.stderr)
    assert result["delegates"] == {"NNAPI": "unused"} and result["run_stats"]["count"] == 7


def test_standin_without_the_edge_tpu_runtime_goes_on_on_the_cpu(model):
    try:
        ctypes.CDLL("libedgetpu.so.1")
        pytest.skip("this machine has the Edge TPU runtime")
    except OSError:
        pass
    proc = run_standin(model, "edgetpu")
    assert proc.returncode == 0, proc.stderr
    assert "Unable to load external delegate from : libedgetpu.so.1 (" in proc.stderr
    assert parse_output(proc.stdout + proc.stderr)["delegates"] == {"EXTERNAL": "unavailable"}


def test_standin_peak_memory_monitoring(model):
    proc = run_standin(model, "xnnpack", extra={"report_peak_memory_footprint": True})
    result = parse_output(proc.stdout + proc.stderr)
    assert result["peak_mb"] > result["overall_mb"]  # the whole process, not the delta


def test_standin_missing_graph(tmp_path):
    missing = str(tmp_path / "nope.tflite")
    proc = standin(f"--graph={missing}")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"ERROR: Could not open '{missing}'.",
                                        f"ERROR: Failed to load model {missing}",
                                        "ERROR: Benchmarking failed."]


def test_standin_flags_it_does_not_take_or_cannot_read(model):
    proc = standin(f"--graph={model}", "--num_runs=3", "--min_secs=0", "--warmup_min_secs=0",
                   "--frobnicate=1", "extra")
    assert proc.returncode == 0, proc.stderr
    assert "WARN: Unconsumed cmdline flags: --frobnicate=1 extra" in proc.stdout
    bad = standin(f"--graph={model}", "--num_runs=many")
    assert bad.returncode == 1
    assert "ERROR: Failed to parse flag 'num_runs' against argv '--num_runs=many'" in bad.stderr
