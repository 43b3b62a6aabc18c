"""benchmark_model's log, parsed from real published outputs (tests/data/benchmark_model)."""

import pathlib

import pytest

from android_bench import benchmark_model

DATA = pathlib.Path(__file__).parent / "data" / "benchmark_model"


def parse(name):
    return benchmark_model.parse_output((DATA / name).read_text())


def test_current_tool_with_percentiles_exponents_and_memory():
    result = parse("ti_am62x_cpu.txt")
    assert result["init_us"] == 5579 and result["first_us"] == 1357602
    assert result["warmup_avg_us"] == 1.3576e06 and result["avg_us"] == 1.24027e06
    assert result["run_stats"] == {"count": 50, "first": 1249964, "curr": 1240143, "min": 1238588,
                                   "max": 1252566, "avg": 1.24027e06, "std": 2565,
                                   "p5": 1238753, "median": 1239807, "p95": 1247415}
    assert result["warmup_stats"]["count"] == 1
    assert result["median_us"] == 1239807 and result["std_us"] == 2565
    assert (result["init_mb"], result["overall_mb"]) == (6.36328, 109.832)


def test_phone_run_with_blank_lines_between_phases():
    result = parse("android_termux_1000_runs.txt")
    assert result["avg_us"] == 63743.2 and result["median_us"] == 51891
    assert result["run_stats"]["count"] == 1000 and result["warmup_stats"]["count"] == 9


def test_older_peak_memory_line_without_prefix():
    result = parse("yolov5s_android_peak_memory.txt")
    assert (result["init_us"], result["first_us"], result["warmup_avg_us"], result["avg_us"]) == \
        (16242, 360262, 304586, 249684)
    assert (result["peak_init_mb"], result["peak_overall_mb"]) == (4.92969, 138.809)
    assert result["std_us"] == 1442 and result["median_us"] is None


def test_exponent_notation_everywhere():
    result = parse("mobilenet_v1_exponents.txt")
    assert result["avg_us"] == 2.95034e06 and result["warmup_avg_us"] == 3.51239e06
    assert result["run_stats"]["avg"] == 2.95034e06 and result["run_stats"]["std"] == 109798


@pytest.mark.parametrize("name,warmup,init,avg", [
    ("tf_readme_op_profiling.txt", 83235, 38467, 79760.9),
    ("tflite_1_12_no_stats.txt", 146161, 4452, 137722),
    ("logcat_benchmark_app.txt", 91471, 4108, 80660.1),
])
def test_the_old_average_line(name, warmup, init, avg):
    result = parse(name)
    assert (result["warmup_avg_us"], result["init_us"], result["avg_us"]) == (warmup, init, avg)
    assert result["first_us"] is None  # that form never printed it


@pytest.mark.parametrize("prefix", ["", "INFO: ", "11-22 10:41:07.512  8125  8143 I tflite  : "])
def test_prefixes(prefix):
    text = (f"{prefix}count=5 first=10 curr=9 min=8 max=11 avg=9.5 std=1\n"
            f"{prefix}Inference timings in us: Init: 1e+03, First inference: 20, Warmup (avg): 12, "
            f"Inference (avg): 9.5\n")
    result = benchmark_model.parse_output(text)
    assert (result["init_us"], result["avg_us"], result["run_stats"]["count"]) == (1000, 9.5, 5)


def test_statistics_alone_are_enough():
    result = benchmark_model.parse_output("count=20 first=5 curr=4 min=3 max=6 avg=4.25 std=0.5\n")
    assert result["avg_us"] == 4.25 and result["std_us"] == 0.5
    assert "init_us" not in result  # not printed, not invented


def test_no_timings_is_an_error_quoting_the_tail():
    text = ("INFO: STARTING!\nINFO: Graph: [m.tflite]\nINFO: Use gpu: [1]\n"
            "ERROR: Failed to apply GPU delegate.\nERROR: Benchmarking failed.\n")
    with pytest.raises(benchmark_model.BenchmarkOutputError) as err:
        benchmark_model.parse_output(text)
    assert "Failed to apply GPU delegate." in str(err.value)
    assert "Benchmarking failed." in str(err.value)


def test_flags():
    args = benchmark_model.flags("/data/local/tmp/m.tflite", num_threads=4, warmup_runs=3,
                                 num_runs=20, delegate="gpu")
    assert args[:4] == ["--graph=/data/local/tmp/m.tflite", "--num_threads=4",
                        "--warmup_runs=3", "--num_runs=20"]
    assert "--use_gpu=true" in args and "--min_secs=0" in args
    assert "--use_xnnpack=false" in benchmark_model.flags("m", num_threads=1, warmup_runs=1,
                                                          num_runs=1, delegate="cpu")
    with pytest.raises(ValueError, match="xnnpack"):
        benchmark_model.flags("m", num_threads=1, warmup_runs=1, num_runs=1, delegate="tpu")
