"""benchmark_model's per-op profile (--enable_op_profiling): read from real published logs
(tests/data/benchmark_model, see SOURCES.md there), then from variations made of them."""

import json
import pathlib

import pytest

from android_bench import op_profile
from android_bench.op_profile import OpProfileError, parse

DATA = pathlib.Path(__file__).parent / "data" / "benchmark_model"


def text_of(name):
    return (DATA / name).read_text()


def sample(name):
    return parse(text_of(name))


# --- real logs ---------------------------------------------------------------------------------

def test_tf_1_x_readme_without_heading_and_with_top_by_memory_use():
    profile = sample("op_profiling_tf_contrib_2018.txt")
    assert len(profile["nodes"]) == 31 and profile["nodes_observed"] == 31
    assert profile["nodes"][0] == {
        "type": "CONV_2D", "name": "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]", "start_ms": 0.0,
        "first_ms": 9.132, "avg_ms": 9.132, "percent": 0.121, "cdf_percent": 0.121,
        "mem_kb": 0.0, "times_called": 0}
    assert profile["nodes"][-1]["name"] == "[MobilenetV1/Predictions/Softmax]"
    assert (profile["nodes"][-1]["start_ms"], profile["nodes"][-1]["avg_ms"]) == (108.211, 0.038)
    # Top by Computation Time and Top by Memory Use repeat Run Order rows; they are not nodes.
    assert len({node["name"] for node in profile["nodes"]}) == 31
    assert [t["type"] for t in profile["by_type"]] == [
        "CONV_2D", "DEPTHWISE_CONV_2D", "SOFTMAX", "RESHAPE", "AVERAGE_POOL_2D"]
    assert profile["by_type"][0] == {"type": "CONV_2D", "count": 15, "avg_ms": 1.861,
                                     "percent": 86.679, "cdf_percent": 86.679, "mem_kb": 0.0,
                                     "times_called": 0}
    assert profile["total_ms"] == pytest.approx(150.805)
    assert profile["delegate_internal"] is None and profile["subgraphs"] == []


def test_tf_readme_sample():
    profile = sample("tf_readme_op_profiling.txt")
    assert (len(profile["nodes"]), profile["nodes_observed"]) == (31, 31)
    assert top_of(profile) == ("CONV_2D", 89.270)
    assert profile["total_ms"] == pytest.approx(79.732)
    assert profile["nodes"][1]["type"] == "DEPTHWISE_CONV_2D"
    assert profile["nodes"][1]["start_ms"] == 4.270


def test_tf_2_4_nnapi_on_a_phone_after_the_initialization_profile():
    profile = sample("op_profiling_yolov5s_nnapi.txt")
    # ModifyGraphWithDelegate and AllocateTensors are the initialization's, printed first.
    assert {node["type"] for node in profile["nodes"]} == {
        "STRIDED_SLICE", "TfLiteNnapiDelegate", "RESIZE_NEAREST_NEIGHBOR"}
    assert (len(profile["nodes"]), profile["nodes_observed"]) == (11, 11)
    assert profile["nodes"][0] == {
        "type": "STRIDED_SLICE", "name": "[model/tf.strided_slice/StridedSlice]:0",
        "start_ms": 0.021, "first_ms": 2.167, "avg_ms": 2.118, "percent": 1.335,
        "cdf_percent": 1.335, "mem_kb": 0.0, "times_called": 1}
    last = profile["nodes"][-1]
    assert (last["type"], last["name"], last["avg_ms"], last["percent"]) == \
        ("TfLiteNnapiDelegate", "[Identity, Identity_1, Identity_2]:233", 56.058, 35.320)
    assert profile["nodes"][6]["name"] == ("[model/tf.nn.silu_16/mul, model/tf.nn.silu_26/mul, "
                                           "model/tf.nn.silu_35/mul]:231")
    assert top_of(profile) == ("TfLiteNnapiDelegate", 94.187)
    assert profile["by_type"][0]["count"] == 3 and profile["by_type"][0]["avg_ms"] == 149.483
    assert profile["total_ms"] == pytest.approx(158.715)  # not the initialization's 729.391


def test_tf_2_8_exponent_in_the_timings_line():
    profile = sample("mobilenet_v1_exponents.txt")
    assert profile["total_ms"] == pytest.approx(2949.9)  # avg=2.9499e+06
    assert top_of(profile) == ("CONV_2D", 89.897)
    assert [node["type"] for node in profile["nodes"][-2:]] == ["SQUEEZE", "SOFTMAX"]
    assert profile["nodes"][-1]["times_called"] == 1 and profile["nodes_observed"] == 31


def test_current_tool_xnnpack_ops_no_start_column_info_heading_and_indented():
    profile = sample("op_profiling_tc2_xnnpack_ops.txt")
    assert (len(profile["nodes"]), profile["nodes_observed"]) == (115, 115)
    first, last = profile["nodes"][0], profile["nodes"][-1]
    assert first == {"type": "Convolution (NHWC, QU8) IGEMM",
                     "name": "Delegate/Convolution (NHWC, QU8) IGEMM:0", "start_ms": None,
                     "first_ms": 0.267, "avg_ms": 0.278, "percent": 3.783, "cdf_percent": 3.783,
                     "mem_kb": 0.0, "times_called": 1}
    assert (last["type"], last["avg_ms"], last["percent"], last["cdf_percent"]) == \
        ("TFLite_Detection_PostProcess", 1.339, 18.197, 100.0)
    assert last["name"].startswith("[TFLite_Detection_PostProcess, TFLite_Detection_PostProcess:1")
    assert [t["type"] for t in profile["by_type"]] == [
        "Convolution (NHWC, QU8) GEMM", "Convolution (NHWC, QU8) DWConv",
        "TFLite_Detection_PostProcess", "Convolution (NHWC, QU8) IGEMM", "Add (ND, QU8)",
        "CONCATENATION", "Sigmoid (NC, QU8)", "Copy (NC, X8)"]
    assert profile["by_type"][0]["count"] == 54 and profile["by_type"][0]["percent"] == 45.622
    assert sum(t["count"] for t in profile["by_type"]) == 115
    assert profile["total_ms"] == pytest.approx(7.36009)


@pytest.mark.parametrize("name", sorted(
    path.name for path in DATA.glob("*.txt")
    if path.name not in {"tf_readme_op_profiling.txt", "mobilenet_v1_exponents.txt"}
    and not path.name.startswith("op_profiling_")))
def test_logs_without_a_profile(name):
    assert sample(name) is None


def test_empty_text_and_an_initialization_profile_alone_are_no_profile():
    assert parse("") is None
    text = text_of("op_profiling_yolov5s_nnapi.txt")
    assert parse(text[:text.index("Operator-wise Profiling Info")]) is None


def test_profiles_are_json():
    for name in ("op_profiling_tc2_xnnpack_ops.txt", "op_profiling_yolov5s_nnapi.txt"):
        profile = sample(name)
        assert json.loads(json.dumps(profile, allow_nan=False)) == profile


# --- variations of the real logs ---------------------------------------------------------------

@pytest.mark.parametrize("prefix", [
    "INFO: ",
    "05-30 13:04:39.021 25935 25935 I tflite  : ",          # adb logcat (threadtime)
    "I/tflite  ( 8125): ",                                  # adb logcat -v brief
    "... tflite  : ",                                       # as the docs abbreviate logcat
])
def test_any_line_prefix(prefix):
    text = text_of("op_profiling_yolov5s_nnapi.txt")
    prefixed = "".join(prefix + line + "\n" for line in text.splitlines())
    assert parse(prefixed) == parse(text)
    assert len(parse(prefixed)["nodes"]) == 11


def test_tabs_turned_to_spaces_as_a_web_page_may_paste_them():
    text = text_of("op_profiling_tc2_xnnpack_ops.txt")
    spaced = text.expandtabs(8)
    assert "\t" not in spaced
    assert parse(spaced) == parse(text)


def test_xnnpack_type_ending_in_a_digit_without_tabs():
    text = ("============================== Run Order ==============================\n"
            "   [node type]   [first]  [avg ms]   [%]   [cdf%]  [mem KB]  [times called]  [Name]\n"
            "   convolution_2d 0 -> relu 1    0.265    0.272  15.773%  15.773%  0.000   1   "
            "Delegate/convolution_2d 0 -> relu 1:0\n")
    node = parse(text)["nodes"][0]
    assert (node["type"], node["first_ms"], node["times_called"]) == \
        ("convolution_2d 0 -> relu 1", 0.265, 1)
    assert node["name"] == "Delegate/convolution_2d 0 -> relu 1:0"


def test_a_log_cut_before_the_summary_ranks_types_from_the_run_order():
    text = text_of("op_profiling_yolov5s_nnapi.txt")
    cut = text[:text.index("Number of nodes executed: 11")]
    profile = parse(cut)
    assert profile["by_type"] == [] and profile["total_ms"] is None
    assert profile["nodes_observed"] is None and len(profile["nodes"]) == 11
    # 79.010 + 14.418 + 56.058 of 158.716 ms; the tool's own summary says 94.187%.
    top = op_profile.top_types(profile, 1)[0]
    assert top["type"] == "TfLiteNnapiDelegate"
    assert top["avg_ms"] == pytest.approx(149.486)
    assert top["percent"] == pytest.approx(94.187, abs=0.01)


def test_a_row_torn_mid_line_is_an_error_naming_the_line():
    text = text_of("op_profiling_tc2_xnnpack_ops.txt")
    lines = text.splitlines()
    number = next(i for i, line in enumerate(lines, start=1) if "IGEMM:0" in line)
    cut = "\n".join(lines[:number - 1] + [lines[number - 1][:60]])  # cut inside [%]
    with pytest.raises(OpProfileError, match=rf"^line {number}: not a whole row of the "
                                             r"'Run Order' table") as err:
        parse(cut)
    assert isinstance(err.value, ValueError)
    assert "Convolution (NHWC, QU8) IGEMM" in str(err.value)


def test_a_row_missing_a_column_is_an_error_not_a_shifted_row():
    text = text_of("op_profiling_yolov5s_nnapi.txt")
    lines = text.splitlines()
    number = next(i for i, line in enumerate(lines, start=1) if "StridedSlice1]:3" in line)
    fields = lines[number - 1].split("\t")
    lines[number - 1] = "\t".join(fields[:4] + fields[5:])  # [avg ms] lost
    with pytest.raises(OpProfileError, match=rf"^line {number}: .*StridedSlice1\]:3"):
        parse("\n".join(lines))


def test_a_bracketed_name_cut_short_is_an_error():
    text = text_of("tf_readme_op_profiling.txt")
    cut = text[:text.index("Conv2d_1_depthwise/Relu6]")]  # line 5: the file starts blank
    with pytest.raises(OpProfileError, match=r"^line 5: .*DEPTHWISE_CONV_2D.*MobilenetV1/'$"):
        parse(cut)


# --- forms no published log here shows, written as the formatter prints them ------------------
# (tflite/profiling/profile_summary_formatter.cc in LiteRT: subgraph and delegate headings)

def _table(rows):
    header = ("\t                             [node type]\t  [first]\t [avg ms]\t     [%]\t"
              "  [cdf%]\t  [mem KB]\t[times called]\t[Name]\n")
    return ("============================== Run Order ==============================\n" + header
            + "".join(f"\t{kind:>40}\t{ms:9.3f}\t{ms:9.3f}\t{pct:7.3f}%\t{pct:7.3f}%\t"
                      f"{0:10.3f}\t{1:9d}\t{name}\n" for kind, ms, pct, name in rows)
            + "\n")


SUBGRAPHS_AND_DELEGATE = (
    "INFO: Operator-wise Profiling Info for Regular Benchmark Runs:\n"
    "Primary graph (name: main) profile:\n"
    + _table([("TfLiteXNNPackDelegate", 3.0, 75.0, "[conv]:5"), ("WHILE", 1.0, 25.0, "[w]:6")])
    + "Timings (microseconds): count=10 first=4100 curr=4000 min=3900 max=4200 avg=4000 std=80\n"
    "Memory (bytes): count=0\n2 nodes observed\n\n"
    "Subgraph (index: 1, name: while_body) profile:\n"
    + _table([("ADD", 0.5, 100.0, "[add]:0")])
    + "Subgraph (index: 1, name: while_body) Timings (microseconds): count=10 curr=500(all same)\n"
    "Memory (bytes): count=0\n1 nodes observed\n\n"
    "Delegate internal: \n"
    + _table([("Convolution (NHWC, F32) IGEMM", 2.5, 83.3, "Delegate/Convolution (NHWC, F32) "
               "IGEMM:0"), ("Mean (ND) Mean", 0.5, 16.7, "Delegate/Mean (ND) Mean:1")])
    + "Timings (microseconds): count=10 first=3100 curr=3000 min=2900 max=3100 avg=3000 std=60\n"
    "Memory (bytes): count=0\n2 nodes observed\n\n"
    "INFO: Operator-wise Profiling Info for Warmup Runs:\n"
    + _table([("WARMUP_ONLY", 9.0, 100.0, "[x]:0")])
    + "Timings (microseconds): count=1 curr=9000\n"
)


def test_subgraphs_and_delegate_internal_profiles():
    profile = parse(SUBGRAPHS_AND_DELEGATE)
    assert [node["type"] for node in profile["nodes"]] == ["TfLiteXNNPackDelegate", "WHILE"]
    assert (profile["total_ms"], profile["nodes_observed"]) == (4.0, 2)
    assert profile["subgraphs"] == [{
        "index": 1, "name": "while_body", "total_ms": 0.5, "nodes_observed": 1, "by_type": [],
        "nodes": [{"type": "ADD", "name": "[add]:0", "start_ms": None, "first_ms": 0.5,
                   "avg_ms": 0.5, "percent": 100.0, "cdf_percent": 100.0, "mem_kb": 0.0,
                   "times_called": 1}]}]
    internal = profile["delegate_internal"]
    assert [node["type"] for node in internal["nodes"]] == [
        "Convolution (NHWC, F32) IGEMM", "Mean (ND) Mean"]
    assert (internal["total_ms"], internal["nodes_observed"]) == (3.0, 2)
    # The warm-up's profile, printed after, is not the regular runs'.
    assert "WARMUP_ONLY" not in json.dumps(profile)


# --- top types, summary, table and plot --------------------------------------------------------

def top_of(profile):
    top = op_profile.top_types(profile, 1)[0]
    return top["type"], top["percent"]


def test_top_types_and_summary():
    profile = sample("mobilenet_v1_exponents.txt")
    assert op_profile.top_types(profile, 2) == [
        {"type": "CONV_2D", "avg_ms": 2651.853, "percent": 89.897},
        {"type": "DEPTHWISE_CONV_2D", "avg_ms": 296.919, "percent": 10.065}]
    assert len(op_profile.top_types(profile)) == 5
    assert op_profile.summary(sample("op_profiling_yolov5s_nnapi.txt")) == \
        "TfLiteNnapiDelegate 94%, STRIDED_SLICE 5%, RESIZE_NEAREST_NEIGHBOR 1%"
    assert op_profile.summary(sample("op_profiling_tc2_xnnpack_ops.txt"), n=2) == \
        "Convolution (NHWC, QU8) GEMM 46%, Convolution (NHWC, QU8) DWConv 31%"


def rows():
    return [("mobilenet_v1 | qemu", sample("mobilenet_v1_exponents.txt")),
            ("yolov5s_nnapi", sample("op_profiling_yolov5s_nnapi.txt")),
            ("ssd_tc2", sample("op_profiling_tc2_xnnpack_ops.txt"))]


def test_markdown_table():
    lines = op_profile.markdown_table(rows(), n=3).splitlines()
    assert lines[0] == "| model | total ms | top 1 | top 2 | top 3 |"
    assert lines[1] == "|---|---:|---|---|---|"
    assert lines[2] == (r"| mobilenet_v1 \| qemu | 2949.900 | CONV_2D 89.9% | "
                        "DEPTHWISE_CONV_2D 10.1% | AVERAGE_POOL_2D 0.0% |")
    assert lines[3].startswith("| yolov5s_nnapi | 158.715 | TfLiteNnapiDelegate 94.2% |")
    assert len(lines) == 5


def test_plot_writes_a_png_whole(tmp_path):
    path = tmp_path / "op_share.png"
    op_profile.plot(rows(), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 1000
    assert [p.name for p in tmp_path.iterdir()] == ["op_share.png"]  # no temporary left
    with pytest.raises(ValueError, match="no profiles"):
        op_profile.plot([], tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
