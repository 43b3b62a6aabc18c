"""Range tightening: a calibrated range cut to what its readers distinguish keeps the function."""

import tempfile

import keras
import numpy as np

from converters import fidelity, litert, quantize, tflite


def _conv_then_hard_swish():
    inputs = keras.Input((8, 8, 3), batch_size=1)
    x = keras.layers.Conv2D(16, 3, padding="same", kernel_initializer=keras.initializers.RandomNormal(0, 2.0),
                            bias_initializer=keras.initializers.Constant(-8.0))(inputs)  # mostly below -3
    x = keras.layers.Activation("hard_swish")(x)
    x = keras.layers.Conv2D(16, 1)(x)
    return keras.Model(inputs, keras.layers.Flatten()(x))  # fidelity compares rows of logits


def _calibrated_conv_then_hard_swish():
    """The model, its calibration samples and the calibrated (not yet quantized) .tflite."""
    keras.utils.set_random_seed(0)
    model = _conv_then_hard_swish()
    samples = np.random.default_rng(0).uniform(-1, 1, (40, 8, 8, 3)).astype(np.float32)
    with tempfile.TemporaryDirectory() as saved_model:
        tflite.export_saved_model(model, saved_model)
        calibrated = quantize.calibrate(saved_model, lambda: iter(samples))
    return model, samples, calibrated


def _hard_swish_input_range(content: bytes) -> tuple[float, float]:
    model = litert.read_model(content)
    graph = model.subgraphs[0]
    names = [litert.op_name(code) for code in model.operatorCodes]
    (op,) = [op for op in graph.operators if names[op.opcodeIndex] == "HARD_SWISH"]
    quant = graph.tensors[op.inputs[0]].quantization
    return float(quant.min[0]), float(quant.max[0])


def test_hard_swish_inputs_lose_the_range_below_minus_3_and_error_falls():
    model, samples, calibrated = _calibrated_conv_then_hard_swish()
    lo, hi = _hard_swish_input_range(calibrated)
    assert lo < -3  # the calibration saw values hard-swish maps to 0

    tightened, changed = quantize.tighten_ranges(calibrated)
    assert changed == 1
    assert _hard_swish_input_range(tightened) == (-3.0, hi)

    reference = model.predict(samples, verbose=0)
    before = fidelity.compare(reference, litert.run(litert.load(quantize.quantize(calibrated)), samples))
    after = fidelity.compare(reference, litert.run(litert.load(quantize.quantize(tightened)), samples))
    assert after["sqnr_db"] > before["sqnr_db"] + 1.0, (before, after)


def test_calibration_samples_are_spread_over_the_whole_source():
    from converters.pipeline import draw

    # A folder of class subfolders is read in path order: 3 classes of 10 images each.
    images = [np.full((2, 2, 3), label, np.uint8) for label in range(3) for _ in range(10)]
    chosen, expanded = draw(images, 6, seed=0)
    assert not expanded and len(chosen) == 6
    assert sorted({int(image[0, 0, 0]) for image in chosen}) == [0, 1, 2]


def test_int8_hard_swish_is_rewritten_into_ops_xnnpack_runs():
    from android_bench.device_runner import execution
    from converters import rewrite

    model, samples, calibrated = _calibrated_conv_then_hard_swish()
    original = quantize.quantize(quantize.tighten_ranges(calibrated)[0])
    expanded, count = rewrite.expand_hard_swish(original)
    assert count == 1
    assert "HARD_SWISH" not in litert.op_counts(expanded)
    assert litert.op_counts(expanded)["MUL"] == 2 and litert.op_counts(expanded)["ADD"] == 1
    assert execution(litert.load(original))["partitions"] == 2  # HARD_SWISH splits the graph
    assert execution(litert.load(expanded)) == {
        "partitions": 1, "ops_outside_delegate": {}, "edgetpu_ops": 0}

    reference = model.predict(samples, verbose=0)
    before = fidelity.compare(reference, litert.run(litert.load(original), samples))
    after = fidelity.compare(reference, litert.run(litert.load(expanded), samples))
    assert abs(after["sqnr_db"] - before["sqnr_db"]) < 0.5, (before, after)
    assert rewrite.expand_hard_swish(expanded) == (expanded, 0)  # nothing left to rewrite


def test_hard_swish_of_a_coarse_input_stays_in_xnnpack_and_exact():
    """Pre-activations in the thousands (random-weight MobileNet V3 Large reaches 2000) give x a
    step of 18: on the fixed 6/255 grid the ADD rescaled x by 766, past XNNPACK's 2^8, so it left
    the delegate (one partition more per hard-swish) and LiteRT's own int8 ADD overflowed there
    (SQNR 3 dB). r's grid now follows x's."""
    from android_bench.device_runner import execution
    from converters import rewrite

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3), batch_size=1)
    x = keras.layers.Conv2D(16, 3, padding="same",
                            kernel_initializer=keras.initializers.RandomNormal(0, 400.0))(inputs)
    x = keras.layers.Activation("hard_swish")(x)
    x = keras.layers.Conv2D(16, 1)(x)
    model = keras.Model(inputs, keras.layers.Flatten()(x))
    samples = np.random.default_rng(0).uniform(-1, 1, (40, 8, 8, 3)).astype(np.float32)
    with tempfile.TemporaryDirectory() as saved_model:
        tflite.export_saved_model(model, saved_model)
        calibrated = quantize.calibrate(saved_model, lambda: iter(samples))
    original = quantize.quantize(quantize.tighten_ranges(calibrated)[0])
    quantized = litert.read_model(original)
    graph = quantized.subgraphs[0]
    names = [litert.op_name(code) for code in quantized.operatorCodes]
    (op,) = [op for op in graph.operators if names[op.opcodeIndex] == "HARD_SWISH"]
    x_scale = float(graph.tensors[op.inputs[0]].quantization.scale[0])
    assert x_scale > 256 * 6 / 255  # the premise: r on 6/255 would be out of XNNPACK's reach

    expanded, count = rewrite.expand_hard_swish(original)
    assert count == 1
    assert execution(litert.load(expanded)) == {
        "partitions": 1, "ops_outside_delegate": {}, "edgetpu_ops": 0}
    reference = model.predict(samples, verbose=0)
    before = fidelity.compare(reference, litert.run(litert.load(original), samples))
    after = fidelity.compare(reference, litert.run(litert.load(expanded), samples))
    assert after["sqnr_db"] > before["sqnr_db"] - 6.0 and after["sqnr_db"] > 25, (before, after)
