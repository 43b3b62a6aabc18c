"""split_concatenations: an SSD head joins one tensor per feature map (six in SSDLite), and the
XNNPACK delegate takes a CONCATENATION of at most five inputs; the rewrite nests them so the
network stays one partition, with the same outputs."""

import tempfile

import keras
import numpy as np
import pytest

from converters import litert, quantize, report, rewrite, tflite

# Output ranges spread over four decades: the quantizer still gives every concat input the
# output's grid (the small ones lose resolution, as in any int8 concat), so no scale rewrite is
# needed, only the split.
SPREADS = (0.01, 0.1, 1.0, 10.0, 0.03, 3.0)


def six_heads() -> keras.Model:
    """Six 1x1 convs of very different output ranges, each reshaped to [1, 64, 4] and joined on
    axis 1, then a sigmoid: the concat sits inside the graph, as the class scores' does."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3), batch_size=1)
    heads = [keras.layers.Reshape((-1, 4))(keras.layers.Conv2D(
        4, 1, kernel_initializer=keras.initializers.RandomNormal(stddev=s))(inputs))
        for s in SPREADS]
    joined = keras.layers.Concatenate(axis=1)(heads)
    return keras.Model(inputs, keras.layers.Activation("sigmoid")(joined))


@pytest.fixture(scope="module")
def converted():
    """The Keras model, sample images, and its float32, int8 and uint8-io conversions by the
    repo's steps (calibrate_tflite, tighten_ranges, quantize)."""
    model = six_heads()
    images = np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 3)).astype(np.float32)
    with tempfile.TemporaryDirectory() as saved_model:
        tflite.export_saved_model(model, saved_model)
        float_content = tflite.convert_saved_model(saved_model, "float32")
    calibrated, _ = quantize.tighten_ranges(
        quantize.calibrate_tflite(float_content, lambda: iter(images)))
    return model, images, {"float32": float_content,
                           "int8": quantize.quantize(calibrated, io_type="int8"),
                           "uint8": quantize.quantize(calibrated, io_type="uint8")}


def _concats(content: bytes) -> list[tuple[list, list]]:
    """Each CONCATENATION's (input quantizations, output quantization), (scale, zero point)."""
    model = litert.read_model(content)
    graph = model.subgraphs[0]
    names = [litert.op_name(code) for code in model.operatorCodes]

    def grid(index):
        q = graph.tensors[index].quantization
        return None if q is None or q.scale is None else (float(q.scale[0]), int(q.zeroPoint[0]))

    return [([grid(i) for i in op.inputs], [grid(o) for o in op.outputs])
            for op in graph.operators if names[op.opcodeIndex] == "CONCATENATION"]


def test_the_quantizer_puts_every_concat_input_on_the_outputs_grid(converted):
    _, _, contents = converted
    ((inputs, (output,)),) = _concats(contents["int8"])
    assert len(inputs) == len(SPREADS) and set(inputs) == {output}


@pytest.mark.parametrize("kind", ["float32", "int8", "uint8"])
def test_six_inputs_leave_xnnpack_and_the_split_brings_them_back_unchanged(converted, kind):
    model, images, contents = converted
    before = contents[kind]
    facts = report.execution(litert.load(before))
    assert facts.ops_outside_delegate.get("CONCATENATION") == 1 and facts.partitions == 2

    after, split = rewrite.split_concatenations(before)
    assert split == 1
    facts = report.execution(litert.load(after))
    outside = {"QUANTIZE": 2} if kind == "uint8" else {}  # uint8 <-> int8 at the edges
    assert facts.partitions == 1 and facts.ops_outside_delegate == outside
    found = _concats(after)
    assert [len(inputs) for inputs, _ in found] == [5, 2]  # five joined, then the sixth
    if kind != "float32":  # the inner join's output is on the same grid: values copied
        assert len({g for inputs, outputs in found for g in inputs + outputs}) == 1

    np.testing.assert_array_equal(litert.run(litert.load(after), images),
                                  litert.run(litert.load(before), images))
    # Against the float model: a join on one grid costs the small heads their resolution (the
    # 0.01 one reads 0 on a grid made for the 10.0 one). The logits stay within a step of that
    # grid (its rounding, and the int8 image's through the large head's weights; measured 0.76
    # of a step), which the sigmoid (slope at most 1/4) shrinks, plus its own half step, 1/512.
    reference = model.predict(images, verbose=0, batch_size=1)
    tolerance = 1e-5
    if kind != "float32":
        (_, ((step, _),)) = found[-1]
        tolerance = step / 4 + 1 / 512
    np.testing.assert_allclose(litert.run(litert.load(after), images), reference, atol=tolerance)


def test_a_tighter_limit_nests_deeper_and_a_looser_one_changes_nothing(converted):
    _, images, contents = converted
    before = contents["int8"]
    assert rewrite.split_concatenations(before, max_inputs=6) == (before, 0)

    after, split = rewrite.split_concatenations(before, max_inputs=2)
    assert split == 1
    # Pairs (3 joins), then a pair of those with the third waiting, then the last two.
    assert [len(inputs) for inputs, _ in _concats(after)] == [2, 2, 2, 2, 2]
    np.testing.assert_array_equal(litert.run(litert.load(after), images),
                                  litert.run(litert.load(before), images))
    with pytest.raises(ValueError, match="at least 2"):
        rewrite.split_concatenations(before, max_inputs=1)
