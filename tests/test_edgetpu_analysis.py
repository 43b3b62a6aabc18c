"""The offline Edge TPU analysis: the zoo's int8 models, models this project did not write,
and real published edgetpu_compiler logs (tests/data/edgetpu, see SOURCES.md there)."""

import json
import pathlib
import subprocess
import sys
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from converters import edgetpu, edgetpu_log, litert, quantize, rewrite, tflite
from helpers import mnist_cnn, nrf20_graph
from tfmobile import models

LOGS = pathlib.Path(__file__).parent / "data" / "edgetpu"
SIZE = 96


def calibrated(model: keras.Model, samples: np.ndarray) -> bytes:
    """The pipeline's calibration: a batch-1 SavedModel, ranges recorded on `samples`."""
    with tempfile.TemporaryDirectory() as saved_model:
        tflite.export_saved_model(model, saved_model)
        return quantize.calibrate(saved_model, lambda: iter(samples))


def int8(model: keras.Model, samples: np.ndarray) -> bytes:
    """Full-integer int8 with uint8 input and output, as converters/pipeline.py makes it
    (without its fidelity pass)."""
    return quantize.quantize(calibrated(model, samples), io_type="uint8")


def from_keras_int8(model: keras.Model, shape) -> bytes:
    """TFLiteConverter.from_keras_model as its documentation shows full-integer quantization:
    the model keeps Keras's unknown batch and float input and output."""
    rng = np.random.default_rng(0)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.representative_dataset = lambda: (
        [rng.uniform(-1, 1, (1, *shape)).astype(np.float32)] for _ in range(4))
    return converter.convert()


def mnist_samples() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 1, (4, 28, 28, 1)).astype(np.float32)


def log(name: str) -> dict:
    return edgetpu_log.parse_compiler_log((LOGS / name).read_text())


@pytest.fixture(scope="module")
def samples(photo_batch):
    return photo_batch(SIZE)[:4]


@pytest.fixture(scope="module")
def zoo(samples):
    """The zoo's int8 (uint8 I/O) models, converted once each."""
    cache = {}

    def make(name, **variant):
        key = (name, tuple(sorted(variant.items())))
        if key not in cache:
            model = models.build(name, input_size=SIZE, num_classes=10, **variant)
            cache[key] = int8(model, samples)
        return cache[key]

    return make


ZOO_MAPPED = [
    ("mobilenet_v1", {}),
    ("mobilenet_v2", {}),
    ("fd_mobilenet", {}),
    ("mobilenet_edgetpu", {}),
    ("mobilenet_v3_small", {"minimalistic": True}),
    ("shufflenet_v2", {"alpha": 0.5}),
    ("shufflenet_v1", {"alpha": 0.5, "split_groups": True}),  # tfmobile.convert --edgetpu's
]


@pytest.mark.slow
@pytest.mark.parametrize("name,variant", ZOO_MAPPED, ids=[n for n, _ in ZOO_MAPPED])
def test_zoo_int8_models_map_entirely(zoo, name, variant):
    content = zoo(name, **variant)
    analysis = edgetpu.analyze(content)
    assert analysis.fully_mapped, edgetpu.format_summary(analysis)
    assert analysis.cut is None and analysis.compile_error is None
    assert analysis.edgetpu_operations == sum(litert.op_counts(content).values())
    # uint8 in and out: both QUANTIZE ops (uint8 <-> int8) map, as in the mnist9 log.
    assert (analysis.records[0].operator, analysis.records[-1].operator) == ("QUANTIZE", "QUANTIZE")
    assert {status for _, _, status in analysis.operator_table()} == {edgetpu.MAPPED}


@pytest.mark.slow
def test_mobilenet_v3_stops_at_its_first_hard_swish(zoo):
    analysis = edgetpu.analyze(zoo("mobilenet_v3_small"))
    first = analysis.first()
    assert (first.operator, first.rule, first.status) == (
        "HARD_SWISH", "supported-op", edgetpu.UNSUPPORTED_OP)
    assert first.index == analysis.cut == 2  # QUANTIZE, the stem's CONV_2D, then hard-swish
    assert all(r.mapped for r in analysis.records[:first.index])
    after = analysis.records[first.index + 1:]
    assert not any(r.mapped for r in after)
    assert {r.operator for r in after if r.cause == "unsupported"} == {"HARD_SWISH"}
    assert all(r.status == edgetpu.SECOND_SUBGRAPH for r in after if r.operator != "HARD_SWISH")
    assert (analysis.edgetpu_operations, analysis.cpu_operations) == (2, len(analysis.records) - 2)


@pytest.mark.slow
def test_hard_swish_rewrite_leaves_v3_entirely_mappable(zoo):
    """converters/rewrite.py writes int8 HARD_SWISH as ADD(+RELU6)/MUL/MUL for XNNPACK: ops the
    table supports, so V3 then maps whole (per the table)."""
    expanded, count = rewrite.expand_hard_swish(zoo("mobilenet_v3_small"))
    assert count == 19
    assert edgetpu.analyze(expanded).fully_mapped


@pytest.mark.slow
def test_shufflenet_4d_channel_shuffle_keeps_three_innermost_dimensions(zoo):
    """The repo's shuffle is (N, H*W, g, C/g): batch 1, so only the three innermost dimensions
    exceed 1 and the rank rule passes (the full mapping is asserted above)."""
    model = litert.read_model(zoo("shufflenet_v2", alpha=0.5))
    graph, names = model.subgraphs[0], [litert.op_name(c) for c in model.operatorCodes]
    shapes = [tuple(int(d) for d in graph.tensors[op.outputs[0]].shape) for op in graph.operators
              if names[op.opcodeIndex] in ("RESHAPE", "TRANSPOSE")]
    # Stage 2 at 96 px: 12x12 pixels, 48 channels shuffled in 2 groups.
    assert (1, 12 * 12, 2, 24) in shapes and (1, 12 * 12, 24, 2) in shapes
    assert all(edgetpu.rank_supported(shape) for shape in shapes)
    assert not edgetpu.rank_supported((1, 12, 12, 2, 24))  # the textbook 5-D form


def test_5d_channel_shuffle_is_caught_by_the_rank_rule():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 8))
    x = keras.layers.Conv2D(8, 1)(inputs)
    x = keras.layers.Reshape((8, 8, 2, 4))(x)  # (N, H, W, g, C/g)
    x = keras.layers.Permute((1, 2, 4, 3))(x)
    x = keras.layers.Reshape((8, 8, 8))(x)
    model = keras.Model(inputs, keras.layers.Conv2D(8, 1)(x))
    samples = np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 8)).astype(np.float32)
    analysis = edgetpu.analyze(int8(model, samples))
    by_op = {r.operator: r for r in analysis.records}  # the last of each
    first = analysis.first()
    assert (first.operator, first.rule, first.status) == (
        "RESHAPE", "rank", edgetpu.UNSUPPORTED_RANK)
    assert "[1, 8, 8, 2, 4]" in first.reason and first.index == analysis.cut
    assert (by_op["TRANSPOSE"].rule, by_op["TRANSPOSE"].cause) == ("rank", "unsupported")
    assert (by_op["CONV_2D"].status, by_op["CONV_2D"].cause) == (
        edgetpu.SECOND_SUBGRAPH, "single-partition")
    assert [r.mapped for r in analysis.records[:first.index]] == [True] * first.index


def test_float_model_is_caught_by_the_data_type_rule():
    analysis = edgetpu.analyze(tflite.convert_float(mnist_cnn()))
    assert analysis.edgetpu_operations == 0 and analysis.cut is None
    assert {(r.rule, r.status, r.where) for r in analysis.records} == {
        ("quantized", edgetpu.UNSUPPORTED_TYPE, "cpu before")}
    assert "float32" in analysis.first().reason


def test_run_time_shapes_fail_the_whole_compilation():
    """Keras's unknown batch makes Flatten compute its shape (SHAPE, STRIDED_SLICE, PACK ->
    RESHAPE): dynamic-sized tensors, which compiler 16 refuses as a whole."""
    content = from_keras_int8(mnist_cnn(), (28, 28, 1))
    analysis = edgetpu.analyze(content)
    assert analysis.compile_error == edgetpu.DYNAMIC_SIZE_ERROR
    assert analysis.edgetpu_operations == 0
    origin = analysis.records[analysis.dynamic_from]
    assert (origin.operator, origin.rule, origin.status) == (
        "RESHAPE", "static-sizes", edgetpu.NOT_CONSTANT)
    assert "computed by op" in origin.reason and "(PACK)" in origin.reason
    assert {r.status for r in analysis.records if r.operator == "CONV_2D"} == {edgetpu.NOT_COMPILED}
    summary = edgetpu.format_summary(analysis)
    assert edgetpu.DYNAMIC_SIZE_ERROR in summary and "Compilation would fail." in summary


@pytest.fixture(scope="module")
def keras_mobilenet_v2():
    """A .tflite this project did not write: keras.applications' MobileNetV2 through
    TFLiteConverter.from_keras_model, full-integer with float I/O."""
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(SIZE, SIZE, 3))
    return from_keras_int8(model, (SIZE, SIZE, 3))


@pytest.mark.slow
def test_foreign_mobilenet_v2_maps_between_its_float_quantize_and_dequantize(keras_mobilenet_v2):
    analysis = edgetpu.analyze(keras_mobilenet_v2)
    first, last = analysis.records[0], analysis.records[-1]
    assert (first.operator, first.rule, first.status, first.where) == (
        "QUANTIZE", "quantize-from-float", edgetpu.OTHERWISE, "cpu before")
    assert (last.operator, last.rule, last.status, last.where) == (
        "DEQUANTIZE", "quantized", edgetpu.UNSUPPORTED_TYPE, "cpu after")
    assert analysis.cut == last.index
    assert all(r.mapped for r in analysis.records[1:-1])
    # Keras leaves the batch unknown (-1 in the signature); the compiler compiles it anyway.
    assert analysis.compile_error is None and any("(-1)" in n for n in analysis.notes)


@pytest.mark.slow
def test_compare_finds_what_a_newer_converter_changed(keras_mobilenet_v2):
    """The published MobileNet V2 log (TF 1.x/2.0 converter, 2019) against today's conversion of
    the same network: only the five PADs differ; TF 2.21 folds ZeroPadding2D into the convs."""
    analysis = edgetpu.analyze(keras_mobilenet_v2)
    assert edgetpu.compare(analysis, log("mobilenet_v2_ptq_stdout.log")) == [
        {"what": "edgetpu_operations", "analysis": 65, "log": 70},
        {"what": "PAD: Mapped to Edge TPU", "analysis": 0, "log": 5},
    ]


@pytest.fixture(scope="module")
def mnist_models():
    ranges = calibrated(mnist_cnn(), mnist_samples())
    return {io: quantize.quantize(ranges, io_type=io) for io in ("uint8", "float32")}


def test_compare_agrees_with_the_compiler_on_the_same_cnn(mnist_models):
    assert edgetpu.compare(edgetpu.analyze(mnist_models["uint8"]), log("mnist9_edgetpu.log")) == []
    assert edgetpu.compare(edgetpu.analyze(mnist_models["float32"]), log("mnist4_edgetpu.log")) == []


def test_compare_lists_each_disagreement(mnist_models):
    """uint8 I/O against the float-I/O log: the QUANTIZE rows and the DEQUANTIZE disagree."""
    assert edgetpu.compare(edgetpu.analyze(mnist_models["uint8"]), log("mnist4_edgetpu.log")) == [
        {"what": "edgetpu_operations", "analysis": 10, "log": 8},
        {"what": "cpu_operations", "analysis": 0, "log": 2},
        {"what": f"DEQUANTIZE: {edgetpu.UNSUPPORTED_TYPE}", "analysis": 0, "log": 1},
        {"what": "QUANTIZE: Mapped to Edge TPU", "analysis": 2, "log": 0},
        {"what": f"QUANTIZE: {edgetpu.OTHERWISE}", "analysis": 0, "log": 1},
    ]


def test_parse_operation_log():
    parsed = log("tiny_yolo_edgetpu.log")
    assert parsed["compiler_version"] == "14.1.317412892"
    assert (parsed["input_model"], parsed["output_model"]) == (
        "tiny_yolo.tflite", "tiny_yolo_edgetpu.tflite")
    assert parsed["table"] == "complete" and len(parsed["operators"]) == 8
    assert parsed["operators"][2] == {
        "operator": "RESIZE_NEAREST_NEIGHBOR", "count": 1, "status": edgetpu.VERSION}
    assert (parsed["edgetpu_operations"], parsed["cpu_operations"]) == (19, 6)  # summed from the table
    assert parsed["compiled"] is None and parsed["total_operations"] is None

    parsed = log("efficientnet-edgetpu-M_quant_edgetpu.log")
    assert parsed["compiler_version"] == "16.0.384591198"
    assert parsed["input_model"] == "test/model/efficientnet-edgetpu-M_quant.tflite"
    assert (parsed["edgetpu_operations"], parsed["cpu_operations"]) == (86, 0)
    assert {r["status"] for r in parsed["operators"]} == {edgetpu.MAPPED}

    parsed = log("mnist4_edgetpu.log")
    assert (parsed["compiler_version"], parsed["edgetpu_operations"], parsed["cpu_operations"]) == (
        "15.0.340273435", 8, 2)
    statuses = {r["operator"]: r["status"] for r in parsed["operators"]}
    assert statuses["DEQUANTIZE"] == edgetpu.UNSUPPORTED_TYPE
    mnist9 = log("mnist9_edgetpu.log")
    assert (mnist9["edgetpu_operations"], mnist9["cpu_operations"]) == (10, 0)


def test_parse_stdout_summary():
    parsed = log("conv_net_stdout.log")
    assert parsed == {
        "compiler_version": "16.0.384591198", "compile_ms": 270,
        "input_model": "conv_net.tflite", "output_model": "conv_net_edgetpu.tflite",
        "input_size_bytes": round(24.32 * 1024), "output_size_bytes": round(1.46 * 2**20),
        "on_chip_memory_used_bytes": round(1.24 * 2**20),
        "on_chip_memory_remaining_bytes": round(6.47 * 2**20), "off_chip_memory_used_bytes": 0,
        "edgetpu_subgraphs": 1, "total_operations": 11, "operation_log": "conv_net_edgetpu.log",
        "edgetpu_operations": 5, "cpu_operations": 6, "compiled": True, "not_all_supported": True,
        "table": "absent", "operators": [], "errors": [], "search_step": None, "attempts": [],
        "models": [{
            "input_model": "conv_net.tflite", "output_model": "conv_net_edgetpu.tflite",
            "input_size_bytes": round(24.32 * 1024), "output_size_bytes": round(1.46 * 2**20),
            "on_chip_memory_used_bytes": round(1.24 * 2**20),
            "on_chip_memory_remaining_bytes": round(6.47 * 2**20),
            "off_chip_memory_used_bytes": 0, "edgetpu_subgraphs": 1, "total_operations": 11,
            "operation_log": "conv_net_edgetpu.log"}],
    }
    parsed = log("mobilenet_v2_ptq_stdout.log")
    assert (parsed["edgetpu_operations"], parsed["cpu_operations"]) == (70, 2)
    assert parsed["not_all_supported"] and parsed["compiler_version"] is None
    assert parsed["table"] == "complete" and sum(r["count"] for r in parsed["operators"]) == 72
    assert parsed["operators"][2] == {"operator": "QUANTIZE", "count": 1, "status": edgetpu.OTHERWISE}


def test_parse_compiler_16_lists_only_unmapped_ops_and_failures():
    """Compiler 16's stdout variants, as published (FRC model README; google-coral/edgetpu#829)."""
    parsed = edgetpu_log.parse_compiler_log(
        "Number of operations that will run on Edge TPU: 138\n"
        "Number of operations that will run on CPU: 3\n\n"
        "Operator                       Count      Status\n\n"
        f"RESHAPE                        1          {edgetpu.OTHERWISE}\n"
        f"QUANTIZE                       2          {edgetpu.OTHERWISE}\n"
        "... All other operators were mapped successfully. See FRC_model_edgetpu.log.\n")
    assert parsed["table"] == "unmapped-only" and len(parsed["operators"]) == 2
    assert (parsed["edgetpu_operations"], parsed["cpu_operations"]) == (138, 3)
    failed = edgetpu_log.parse_compiler_log(
        "Edge TPU Compiler version 16.0.384591198\n"
        "Started a compilation timeout timer of 180 seconds.\n"
        f"{edgetpu.DYNAMIC_SIZE_ERROR}\n"
        "Compilation failed: Model failed in Tflite interpreter. Please ensure model can be "
        "loaded/run in Tflite interpreter.\n"
        "Compilation child process completed within timeout period.\nCompilation failed! \n")
    assert failed["compiled"] is False and failed["table"] == "absent"


def run(*args):
    return subprocess.run([sys.executable, "-m", "converters.edgetpu", *args],
                          check=False, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_cli_prints_the_compiler_style_summary_and_writes_json(tmp_path, zoo):
    model = tmp_path / "v3.tflite"
    model.write_bytes(zoo("mobilenet_v3_small"))
    out = tmp_path / "v3.json"
    result = run("analyze", str(model), "--json", str(out))
    assert result.returncode == 0, result.stderr
    analysis = edgetpu.analyze(model.read_bytes())
    lines = result.stdout.splitlines()
    assert "Number of operations that will run on Edge TPU: 2" in lines
    assert f"Number of operations that will run on CPU: {analysis.cpu_operations}" in lines
    assert "Operator                       Count      Status" in lines
    assert f"HARD_SWISH                     19         {edgetpu.UNSUPPORTED_OP}" in lines
    assert any(line.startswith("Op 2 HARD_SWISH ends the Edge TPU part") for line in lines)
    written = json.loads(out.read_text())
    assert written["model"] == str(model)
    assert (written["edgetpu_operations"], written["cut"]) == (2, 2)
    assert written["ops"][2]["rule"] == "supported-op"
    # The summary round-trips through the log parser and agrees with the analysis.
    assert edgetpu.compare(analysis, edgetpu_log.parse_compiler_log(result.stdout)) == []


@pytest.mark.parametrize(
    "args,message",
    [
        (["analyze", "/nonexistent/model.tflite"], "/nonexistent/model.tflite: no such file"),
        (["analyze", __file__], "is not a .tflite model"),
        (["analyze"], "name the model"),
        (["convert", "x.tflite"], "unknown command 'convert'"),
        (["analyze", "x.tflite", "--compiler_flags=-x"], "has no option '-x'"),
        (["compile", "/nonexistent/a.tflite"], "/nonexistent/a.tflite: no such file"),
        (["analyze", "x.tflite", "--runtime", "9"], "--runtime"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(args, message):
    result = run(*args)
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("converters.edgetpu"), result.stderr
    assert message in lines[0]


def test_cli_compile_replays_the_compiler_and_holds_it_against_the_analysis(tmp_path,
                                                                            standin_bin):
    """`compile` runs edgetpu_compiler (here the stand-in, replaying the published mnist9 log for
    the same graph) and says, model by model, whether it agrees; co-compiling a model the
    stand-in holds no recording for fails with the compiler's (stand-in's) own line."""
    import os

    model = tmp_path / "mnist9.tflite"
    model.write_bytes(nrf20_graph(tmp_path, tf.uint8))
    env = {**os.environ, "PATH": f"{standin_bin}{os.pathsep}{os.environ['PATH']}"}

    def compile_(*args):
        return subprocess.run([sys.executable, "-m", "converters.edgetpu", "compile", *args],
                              capture_output=True, text=True, timeout=120, env=env, check=False)

    result = compile_(str(model), "--compiler_flags=-d -k 10", "--json", str(tmp_path / "c.json"))
    assert result.returncode == 0, result.stderr
    assert "Verdict: maps fully (10 ops)." in result.stdout
    assert (f"mnist9.tflite -> {tmp_path / 'mnist9_edgetpu.tflite'}: 10 ops on the Edge TPU, 0 "
            "on the CPU; agrees with the analysis") in result.stdout
    written = json.loads((tmp_path / "c.json").read_text())
    assert written[0]["compiler"]["arguments"] == ["-d", "-k", "10"]
    assert written[0]["analysis_vs_compiler"] == []
    assert written[0]["verdict"]["outcome"] == edgetpu.MAPS_FULLY
    other = tmp_path / "other.tflite"
    other.write_bytes(tflite.convert_float(mnist_cnn()))
    result = compile_(str(model), str(other))
    assert result.returncode == 1
    assert "edgetpu_compiler: FAILED: edgetpu_compiler (stand-in): no recorded compilation" \
        in result.stdout
