"""The Edge TPU analysis' rules for what makes edgetpu_compiler 16.0 refuse a whole model, stop
mapping early or possibly not map, and the compiler options it follows. Each case is a small
model built here and, where one was published, the compiler's own output for the same case
(tests/data/edgetpu, SOURCES.md there)."""

import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from converters import edgetpu, edgetpu_log, edgetpu_versions, litert
from converters.edgetpu_flags import CompilerFlags

LOGS = pathlib.Path(__file__).parent / "data" / "edgetpu"


def int8(model: keras.Model, shape, batch: int = 1) -> bytes:
    """Full-integer int8 with uint8 I/O, as --edgetpu converts (calibrated on 4 random inputs)."""
    rng = np.random.default_rng(0)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.uint8
    converter.representative_dataset = lambda: (
        [rng.uniform(-1, 1, (batch, *shape)).astype(np.float32)] for _ in range(4))
    return converter.convert()


def after_a_conv(layer, shape=(8, 8, 4), channels=4) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape, batch_size=1)
    return keras.Model(inputs, layer(keras.layers.Conv2D(channels, 1)(inputs)))


def versions_of(content: bytes) -> dict[str, int]:
    return {litert.op_name(code): code.version for code in litert.read_model(content).operatorCodes}


def log(name: str) -> dict:
    return edgetpu_log.parse_compiler_log((LOGS / name).read_text())


def with_op_version(content: bytes, op: str, version: int) -> bytes:
    model = litert.read_model(content)
    for code in model.operatorCodes:
        if litert.op_name(code) == op:
            code.version = version
    return litert.write_model(model)


# --- Gap 1: op versions newer than the compiler refuse the whole model --------------------------


@pytest.mark.parametrize("case,layer,op,version", [
    ("grouped conv", keras.layers.Conv2D(4, 3, groups=2, padding="same"), "CONV_2D", 6),
    ("Keras 3 UpSampling2D", keras.layers.UpSampling2D(), "TILE", 3),
    ("int8 exp", keras.layers.Lambda(keras.ops.exp), "EXP", 2),
])
def test_op_versions_newer_than_compiler_16_refuse_the_model(case, layer, op, version):
    content = int8(after_a_conv(layer), (8, 8, 4))
    assert versions_of(content)[op] == version  # what today's converter writes
    analysis = edgetpu.analyze(content)
    kind, sentence = analysis.outcome()
    assert kind == edgetpu.REFUSED and f"{op} version {version}" in sentence
    assert analysis.refusal.rule == "op-version"
    assert analysis.compile_error == edgetpu.PARSE_ERROR.format(op=op, version=version)
    assert analysis.edgetpu_operations == 0 and analysis.edgetpu_subgraphs == 0
    summary = edgetpu.format_summary(analysis)
    assert "Compilation would fail." in summary and "Verdict: the compiler will refuse" in summary


@pytest.mark.parametrize("name,op,version", [
    ("exp_v2_refused_stdout.log", "EXP", 2),
    ("transpose_conv_v4_refused_stdout.log", "TRANSPOSE_CONV", 4),
    ("quantize_v3_parse_error_v16.log", "QUANTIZE", 3),
])
def test_the_refusal_is_worded_as_compiler_16_words_it(name, op, version):
    """The published compiler 16 output for each refused op version holds the analysis' error
    line, and every one of those versions is on the refused side of the table."""
    parsed = log(name)
    assert parsed["compiler_version"] == edgetpu_versions.COMPILER and parsed["compiled"] is False
    assert edgetpu.PARSE_ERROR.format(op=op, version=version) in parsed["errors"]
    assert edgetpu_versions.readable(edgetpu_versions.first_release(op, version)) is False


def test_an_op_version_first_in_tf_2_6_may_not_map():
    """ADD version 4 shipped in TF 2.6.0: between FILL v3 (2.5.0, read by compiler 16,
    edgetpu#434) and QUANTIZE v3 (2.7.0, refused, #879) nobody has published either way."""
    content = int8(after_a_conv(lambda x: keras.layers.Add()([x, x])), (8, 8, 4))
    assert edgetpu.analyze(content).outcome()[0] == edgetpu.MAPS_FULLY
    kind, sentence = edgetpu.analyze(with_op_version(content, "ADD", 4)).outcome()
    assert kind == edgetpu.MAY_NOT_MAP and "ADD version 4 first shipped in TF 2.6.0" in sentence


def test_min_runtime_version_metadata_newer_than_the_compiler_refuses():
    """An op the version table does not list: the converter's own summary decides."""
    content = int8(after_a_conv(keras.layers.ReLU()), (8, 8, 4))
    model = litert.read_model(content)
    entry = next(m for m in model.metadata if m.name == b"min_runtime_version")
    model.buffers[entry.buffer].data = np.frombuffer(b"2.9.0".ljust(16, b"\0"), np.uint8)
    analysis = edgetpu.analyze(litert.write_model(model))
    assert analysis.outcome()[0] == edgetpu.REFUSED
    assert analysis.refusal.op is None and "metadata is TF 2.9.0" in analysis.refusal.reason


# --- Gap 2: Flex ops ------------------------------------------------------------------------------


def test_flex_ops_refuse_the_model():
    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32)])
    def cumulative_product(x):
        return tf.math.cumprod(x, axis=1)

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [cumulative_product.get_concrete_function()], cumulative_product)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                           tf.lite.OpsSet.SELECT_TF_OPS]
    analysis = edgetpu.analyze(converter.convert())
    assert analysis.outcome()[0] == edgetpu.REFUSED and analysis.refusal.rule == "flex"
    assert "FlexCumprod" in analysis.refusal.reason
    published = log("flex_splitv_failed_stdout.log")  # google-coral/edgetpu#718
    assert analysis.compile_error in published["errors"] and published["compiled"] is False


# --- Gap 3: half-pixel resizes ---------------------------------------------------------------------


def test_half_pixel_resize_is_version_not_supported_and_ends_the_part():
    content = int8(after_a_conv(keras.layers.Resizing(16, 16)), (8, 8, 4))
    assert versions_of(content)["RESIZE_BILINEAR"] == 3
    analysis = edgetpu.analyze(content)
    resize = next(r for r in analysis.records if r.operator == "RESIZE_BILINEAR")
    assert (resize.status, resize.rule) == (edgetpu.VERSION, "op-version")
    assert "half_pixel_centers=True" in resize.reason and analysis.cut == resize.index
    assert analysis.outcome()[0] == edgetpu.MAPS_UP_TO
    # The status is the one the compiler printed for the half-pixel resize of tiny_yolo.
    assert {"operator": "RESIZE_NEAREST_NEIGHBOR", "count": 1, "status": edgetpu.VERSION} in \
        log("tiny_yolo_edgetpu.log")["operators"]


def test_resize_without_half_pixel_centers_maps():
    layer = keras.layers.Lambda(lambda x: tf.compat.v1.image.resize_bilinear(x, (16, 16)))
    content = int8(after_a_conv(layer), (8, 8, 4))
    assert versions_of(content)["RESIZE_BILINEAR"] == 2
    assert edgetpu.analyze(content).fully_mapped


# --- Gap 4: sizes the compiler does not publish -------------------------------------------------


def mean_model(height: int) -> bytes:
    return int8(after_a_conv(lambda x: keras.ops.mean(x, axis=(1, 2), keepdims=True),
                             shape=(height, 128, 3), channels=3), (height, 128, 3))


def test_mean_as_large_as_the_published_unmapped_one_is_not_mapped():
    """edgetpu#461: MEAN over [1, 256, 128, 3] not mapped; [1, 64, 128, 3] mapped."""
    analysis = edgetpu.analyze(mean_model(256))
    mean = next(r for r in analysis.records if r.operator == "MEAN")
    assert (mean.status, mean.rule) == (edgetpu.OTHERWISE, "published-size")
    assert "98,304" in mean.reason and analysis.cut == mean.index
    assert edgetpu.analyze(mean_model(64)).outcome()[0] == edgetpu.MAPS_FULLY


def test_mean_between_the_published_sizes_may_not_map():
    kind, sentence = edgetpu.analyze(mean_model(128)).outcome()
    assert kind == edgetpu.MAY_NOT_MAP and "MEAN input of 49,152 elements" in sentence
    assert "by the published rules it maps fully" in sentence


def test_activations_beyond_any_published_fully_mapped_model_may_not_map():
    content = int8(after_a_conv(keras.layers.ReLU(), shape=(128, 128, 3), channels=128),
                   (128, 128, 3))
    analysis = edgetpu.analyze(content)
    kind, sentence = analysis.outcome()
    assert kind == edgetpu.MAY_NOT_MAP and "[1, 128, 128, 128]" in sentence
    assert analysis.fully_mapped  # the rules alone: every op maps
    assert "May not map: op 1:" in edgetpu.format_summary(analysis)


def test_large_concatenation_may_fail_the_compile():
    """edgetpu#309: a 60x152x90 concatenation aborted compiler 15."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((60, 152, 3), batch_size=1)
    x = keras.layers.Conv2D(45, 1)(inputs)
    model = keras.Model(inputs, keras.layers.Concatenate()([x, keras.layers.Conv2D(45, 1)(inputs)]))
    kind, sentence = edgetpu.analyze(int8(model, (60, 152, 3))).outcome()
    assert kind == edgetpu.MAY_NOT_MAP and "CONCATENATION output of 820,800" in sentence


# --- Gap 5: compiler options -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def hard_swish_between_convs():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 4), batch_size=1)
    x = keras.layers.Conv2D(4, 1, name="first")(inputs)
    x = keras.layers.Activation("hard_swish")(x)
    x = keras.layers.Conv2D(4, 1, name="second")(x)
    return int8(keras.Model(inputs, keras.layers.Conv2D(4, 1, name="third")(x)), (8, 8, 4))


def test_multiple_subgraphs_maps_the_ops_after_an_unsupported_one(hard_swish_between_convs):
    single = edgetpu.analyze(hard_swish_between_convs)
    several = edgetpu.analyze(hard_swish_between_convs, flags=CompilerFlags.parse("-a"))
    assert [r.operator for r in single.records] == [
        "QUANTIZE", "CONV_2D", "HARD_SWISH", "CONV_2D", "CONV_2D", "QUANTIZE"]
    assert [r.mapped for r in single.records] == [True, True, False, False, False, False]
    assert [r.mapped for r in several.records] == [True, True, False, True, True, True]
    assert (single.edgetpu_subgraphs, several.edgetpu_subgraphs) == (1, 2)
    kind, sentence = several.outcome()
    assert kind == edgetpu.MAPS_UP_TO and "with -a, 5 ops map in 2 Edge TPU subgraphs" in sentence
    assert several.to_json()["compiler_flags"] == {"multiple_subgraphs": True}


def test_intermediate_tensors_send_what_follows_them_to_the_cpu(hard_swish_between_convs):
    content = edgetpu.analyze(hard_swish_between_convs, flags=CompilerFlags.parse("-a"))
    graph = litert.read_model(hard_swish_between_convs).subgraphs[0]
    second = content.records[3]
    name = graph.tensors[graph.operators[second.index].outputs[0]].name.decode()
    analysis = edgetpu.analyze(hard_swish_between_convs,
                               flags=CompilerFlags.parse(["-a", "-i", name]))
    assert analysis.records[3].mapped  # the op making the tensor maps
    assert [(r.mapped, r.cause) for r in analysis.records[4:]] == [
        (False, "intermediate-tensors"), (False, "intermediate-tensors")]
    assert analysis.records[4].status == edgetpu.AFTER_INTERMEDIATE
    unknown = edgetpu.analyze(hard_swish_between_convs, flags=CompilerFlags.parse("-i nowhere"))
    assert "-i names tensors the model does not have: nowhere." in unknown.notes


def test_runtime_12_leaves_the_uint8_quantize_otherwise_supported(hard_swish_between_convs):
    """edgetpu#13 (compiler 2.0, runtime 12): the QUANTIZE of a uint8 model was "otherwise
    supported", not "Operation not supported"."""
    for flags in (CompilerFlags.parse("-m 12"), CompilerFlags.parse("--min_runtime_version=12")):
        first = edgetpu.analyze(hard_swish_between_convs, flags=flags).records[0]
        assert (first.operator, first.mapped, first.status) == ("QUANTIZE", False, edgetpu.OTHERWISE)


@pytest.mark.parametrize("args,expected", [
    ("--out_dir x --show_operations --search_delegate --delegate_search_step 30 --timeout_sec 180",
     dict(search_delegate=True, delegate_search_step=30, out_dir="x")),  # Ultralytics' export
    ("-s -d -k10 -n 2", dict(search_delegate=True, delegate_search_step=10, num_segments=2)),
    ("-a -i Conv_14/Relu,Squeeze -s", dict(multiple_subgraphs=True,
                                           intermediate_tensors=("Conv_14/Relu", "Squeeze"))),
    ("-m 13", dict(min_runtime_version=13)),
])
def test_compiler_options_are_read_as_the_compiler_reads_them(args, expected):
    flags = CompilerFlags.parse(args)
    assert flags.args == tuple(args.split())
    for key, value in expected.items():
        assert getattr(flags, key) == value, key


@pytest.mark.parametrize("args,message", [
    ("-x", "has no option '-x'"), ("model.tflite", "has no option 'model.tflite'"),
    ("-k", "expected one argument"), ("-n 0", "positive whole number"),
    ("--version", "print and exit"),
])
def test_unknown_or_malformed_compiler_options_are_one_line(args, message):
    with pytest.raises(ValueError, match=message):
        CompilerFlags.parse(args)


def test_segments_and_search_are_noted(hard_swish_between_convs):
    notes = edgetpu.analyze(hard_swish_between_convs, flags=CompilerFlags.parse("-d -k 10 -n 2")).notes
    assert any(n.startswith("-n 2: the compiler cuts the model into 2 segments") for n in notes)
    assert any(n.startswith("-d: if a compile fails") and "10 op(s)" in n for n in notes)


# --- Gap 6: batch checks, the integer LSTM ---------------------------------------------------------


@pytest.mark.parametrize("rank", [2, 3])
def test_reducing_the_batch_of_any_rank_is_caught(rank):
    shape = (2, 8) if rank == 2 else (2, 4, 8)

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
    def batch_sum(x):
        return tf.reduce_sum(x * 2.0, axis=0, keepdims=True)

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [batch_sum.get_concrete_function()], batch_sum)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.uint8
    converter.representative_dataset = lambda: (
        [np.random.default_rng(i).uniform(-1, 1, shape).astype(np.float32)] for i in range(4))
    analysis = edgetpu.analyze(converter.convert())
    reduction = next(r for r in analysis.records if r.operator == "SUM")
    assert reduction.rule == "table:SUM" and "operates on the batch dimension" in reduction.reason


def integer_lstm(cell_state_type: str, output_type: str = "INT8") -> bytes:
    """One UNIDIRECTIONAL_SEQUENCE_LSTM typed as TFLite's integer LSTM kernel takes it (8-bit
    input, weights and output; int32 biases; the cell state in int16), written by hand: Keras 3's
    LSTM converts to a WHILE loop, and TF 2.21 crashes quantizing the fused one."""
    from ai_edge_litert import schema_py_generated as schema

    types = schema.TensorType
    model = schema.ModelT()
    model.version = 3
    code = schema.OperatorCodeT()
    code.builtinCode = schema.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM
    code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    code.version = 3
    model.operatorCodes = [code]
    model.buffers, tensors = [schema.BufferT()], []

    def tensor(shape, kind, data=None, variable=False):
        t = schema.TensorT()
        t.shape, t.type, t.isVariable = list(shape), getattr(types, kind), variable
        t.quantization = schema.QuantizationParametersT()
        t.quantization.scale, t.quantization.zeroPoint = [0.01], [0]
        buffer = schema.BufferT()
        if data is not None:
            buffer.data = np.frombuffer(np.asarray(data).tobytes(), np.uint8)
        model.buffers.append(buffer)
        t.buffer = len(model.buffers) - 1
        tensors.append(t)
        return len(tensors) - 1

    inputs = [tensor((1, 10, 8), "INT8")]
    inputs += [tensor((16, 8), "INT8", np.ones((16, 8), np.int8)) for _ in range(4)]
    inputs += [tensor((16, 16), "INT8", np.ones((16, 16), np.int8)) for _ in range(4)]
    inputs += [-1, -1, -1]  # no peepholes
    inputs += [tensor((16,), "INT32", np.zeros(16, np.int32)) for _ in range(4)]
    inputs += [-1, -1]  # no projection
    inputs += [tensor((1, 16), "INT8", variable=True), tensor((1, 16), cell_state_type,
                                                              variable=True)]
    inputs += [-1, -1, -1, -1]  # no layer normalisation
    output = tensor((1, 10, 16), output_type)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, inputs, [output]
    graph = schema.SubGraphT()
    graph.tensors, graph.operators, graph.inputs, graph.outputs = tensors, [op], [0], [output]
    model.subgraphs = [graph]
    return litert.write_model(model)


def test_the_integer_lstm_keeps_its_16_bit_cell_state():
    record = edgetpu.analyze(integer_lstm("INT16")).records[0]
    assert (record.operator, record.mapped) == ("UNIDIRECTIONAL_SEQUENCE_LSTM", True)
    record = edgetpu.analyze(integer_lstm("INT16", output_type="INT16")).records[0]
    assert (record.mapped, record.rule) == (False, "quantized")  # 16-bit outputs still do not map
    record = edgetpu.analyze(integer_lstm("FLOAT32")).records[0]
    assert (record.mapped, record.rule) == (False, "quantized")


# --- Co-compilation and segments in the compiler's output ---------------------------------------


def test_co_compiled_models_each_get_their_memory_figures():
    parsed = log("cocompile_cnn_rnn_v15_excerpt.log")  # google-coral/edgetpu#518
    assert [m["input_model"] for m in parsed["models"]] == ["cnn.tflite", "rnn.tflite"]
    cnn, rnn = parsed["models"]
    assert cnn["on_chip_memory_used_bytes"] == round(7.16 * 2**20)
    assert cnn["off_chip_memory_used_bytes"] == round(2.95 * 2**20)
    # The second model found the parameter cache full: everything streamed from off-chip.
    assert rnn["on_chip_memory_used_bytes"] == 0
    assert rnn["off_chip_memory_used_bytes"] == round(4.53 * 2**20)
    assert (cnn["total_operations"], rnn["total_operations"]) == (313, 78)
    assert parsed["compiled"] is True and parsed["input_model"] == "cnn.tflite"


def test_segments_and_delegate_search_are_read():
    parsed = log("segments_n2_search_delegate_v16_excerpt.log")  # edgetpu#671, -s -d -k 10 -n 2
    assert parsed["search_step"] == 10 and parsed["attempts"] == [84]
    segment = parsed["models"][0]
    assert segment["output_model"] == "rede_modelo3_73_segment_0_of_2_edgetpu.tflite"
    assert segment["on_chip_memory_used_bytes"] == round(6.02 * 2**20)
    several = log("intermediate_tensors_multiple_subgraphs_v15_excerpt.log")  # -i ... -a
    assert several["edgetpu_subgraphs"] == 3
    assert (several["edgetpu_operations"], several["cpu_operations"]) == (23, 2)


def test_whole_model_failures_are_read_as_failures():
    for name in ("large_activation_tensors_failed_v16.log", "out_of_range_vector_failed_v16.log",
                 "internal_compiler_error_v15.log", "exp_v2_refused_stdout.log"):
        parsed = log(name)
        assert parsed["errors"], name
        assert parsed["compiled"] in (False, None) and parsed["models"] == [], name
    assert log("large_activation_tensors_failed_v16.log")["errors"][-1] == (
        "Compilation failed: Compilation failed due to large activation tensors in model.")


def test_a_commands_runtime_flag_reaches_the_compiler_as_its_own_option():
    """`converters.edgetpu compile --runtime 12` targets runtime 12 in the analysis and in the
    compiler alike; -o and a second runtime are refused."""
    assert CompilerFlags.passed_through("-a", runtime=12).args == ("-a", "-m", "12")
    assert CompilerFlags.passed_through("-a").args == ("-a",)
    with pytest.raises(ValueError, match="give one"):
        CompilerFlags.passed_through("-m 13", runtime=12)
    with pytest.raises(ValueError, match="drop -o/--out_dir"):
        CompilerFlags.passed_through("--out_dir=x")
