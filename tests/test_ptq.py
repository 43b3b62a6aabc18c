"""Post-training quantization methods (converters/ptq.py) on small real graphs.

Each method is checked for what it promises: equalization keeps the function and evens out the
channels' ranges; bias correction takes back the mean shift of rounding; MSE ranges give up
rare outliers for a finer step; AdaRound's rounding beats rounding to nearest on the layer's
own output. The end-to-end figures on Google's MobileNet V1 are in tests/test_tflite_weights.py.
"""

import tempfile

import keras
import numpy as np
import pytest

from converters import fidelity, litert, ptq, quantize, tflite
from tfmobile_core.records import Conversion


def depthwise_separable(seed: int = 0) -> keras.Model:
    """conv -> depthwise -> 1x1 conv with ReLU6, batch norms folded by the converter; channel
    ranges made to differ 100-fold, as a trained MobileNet's do after folding."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16, 16, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.Conv2D(16, 1, use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    rng = np.random.default_rng(seed)
    gammas = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.weights[0].shape[0]
            gamma = np.exp(rng.uniform(np.log(0.01), np.log(1.0), channels))  # 100-fold spread
            layer.set_weights([gamma, rng.normal(0.3, 0.1, channels) * gamma, np.zeros(channels),
                               np.ones(channels)])
            gammas.append(gamma)
    # The 1x1 conv reads its weak input channels as strongly as its strong ones: each carries
    # information, as in a trained network.
    pointwise = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)][-1]
    kernel = pointwise.get_weights()[0]
    pointwise.set_weights([kernel / gammas[1][None, None, :, None]])
    return model


@pytest.fixture(scope="module")
def small():
    model = depthwise_separable()
    samples = np.random.default_rng(1).uniform(-1, 1, (48, 16, 16, 3)).astype(np.float32)
    return model, tflite.convert_float(model), samples


def calibrate(content: bytes, samples) -> bytes:
    return quantize.calibrate_tflite(content, lambda: iter(samples))


def test_equalization_keeps_the_function_and_evens_the_ranges(small):
    model, content, samples = small
    maxima = ptq.channel_maxima(content, samples)
    equalized, pairs = ptq.equalize(content, maxima)
    assert pairs == 2  # conv -> depthwise, depthwise -> 1x1 conv
    before, after = litert.run(litert.load(content), samples), litert.run(litert.load(equalized), samples)
    assert fidelity.compare(before, after)["sqnr_db"] > 60  # the same function (float rounding)

    def depthwise_channel_ranges(made):
        graph = litert.read_model(made).subgraphs[0]
        names = [litert.op_name(code) for code in litert.read_model(made).operatorCodes]
        (op,) = [op for op in graph.operators if names[op.opcodeIndex] == "DEPTHWISE_CONV_2D"]
        weights = ptq._float_constant(litert.read_model(made), graph, op.inputs[1])
        ranges = np.abs(weights).reshape(-1, weights.shape[-1]).max(axis=0)
        return ranges.max() / ranges.min()

    assert depthwise_channel_ranges(equalized) < depthwise_channel_ranges(content) / 3
    # Per-tensor weights: equalization is what keeps the network.
    plain = quantize.quantize(calibrate(content, samples), per_tensor=True)
    fixed = quantize.quantize(calibrate(equalized, samples), per_tensor=True)
    reference = model.predict(samples, verbose=0)
    plain_sqnr = fidelity.compare(reference, litert.run(litert.load(plain), samples))["sqnr_db"]
    fixed_sqnr = fidelity.compare(reference, litert.run(litert.load(fixed), samples))["sqnr_db"]
    assert fixed_sqnr > plain_sqnr + 3, (plain_sqnr, fixed_sqnr)


def test_equalization_leaves_a_channel_at_the_clip_alone(small):
    _, content, samples = small
    maxima = ptq.channel_maxima(content, samples)
    saturated = {name: np.full_like(m, 6.0) for name, m in maxima.items()}
    unchanged, _ = ptq.equalize(content, saturated)
    # Every channel reaches RELU6's clip: no scale keeps the function, so none is applied.
    assert litert.run(litert.load(unchanged), samples[:4]).tobytes() == \
        litert.run(litert.load(content), samples[:4]).tobytes()
    _, unknown = ptq.equalize(content, None)  # where the clips fall is unknown: no pair moves
    assert ptq.equalize(content, None)[0] == litert.write_model(litert.read_model(content))
    assert unknown == 2


def test_bias_correction_takes_back_the_mean_shift(small):
    model, content, samples = small
    calibrated = calibrate(content, samples)
    stats = ptq.activation_stats(calibrated, samples)
    quantized = quantize.quantize(calibrated, per_tensor=True)  # coarse: a visible shift
    corrected, layers = ptq.correct_bias(quantized, calibrated, stats)
    assert layers == 4  # three convolutions and the classifier
    reference = model.predict(samples, verbose=0)

    def mean_error(made):
        return float(np.abs((litert.run(litert.load(made), samples) - reference).mean(axis=0)).mean())

    assert mean_error(corrected) < mean_error(quantized) * 0.7
    empirical, changed = ptq.correct_bias_empirically(corrected, calibrated, samples[:32])
    assert changed >= 1
    assert mean_error(empirical) <= mean_error(corrected) * 1.05


def test_mse_range_gives_up_rare_outliers_for_a_finer_step():
    values = np.concatenate([np.random.default_rng(0).normal(0, 1, 1_000_000), [30.0]])
    histogram = np.histogram(values, ptq.BINS, (values.min(), values.max()))[0]
    stats = ptq.TensorStats(float(values.min()), float(values.max()), histogram,
                            np.zeros(1), np.zeros(1))
    lo, hi = ptq._mse_range(stats)
    assert 3 < hi < 15  # the one outlier is clipped
    assert values.min() <= lo < -3  # the lower tail is a normal one: most of it stays
    clean = np.histogram(values[:-1], ptq.BINS, (values[:-1].min(), values[:-1].max()))[0]
    kept = ptq.TensorStats(float(values[:-1].min()), float(values[:-1].max()), clean,
                           np.zeros(1), np.zeros(1))
    assert ptq._mse_range(kept)[1] > 0.5 * kept.hi  # a normal tail mostly stays


def test_adaround_beats_rounding_to_nearest_on_the_layers_output(small):
    _, content, samples = small
    calibrated = calibrate(content, samples)
    quantized = quantize.quantize(calibrated)
    rounded, changed = ptq.adaround(quantized, calibrated, samples[:16], iterations=120)
    assert changed >= 1
    float_interp = litert.load(calibrated, keep_all_tensors=True)
    graph = litert.read_model(rounded).subgraphs[0]
    names = [litert.op_name(c) for c in litert.read_model(rounded).operatorCodes]
    (pointwise,) = [op for op in graph.operators if names[op.opcodeIndex] == "CONV_2D"
                    and graph.tensors[op.inputs[1]].shape[1] == 1]
    output_name = graph.tensors[pointwise.outputs[0]].name.decode()
    float_graph = litert.read_model(calibrated).subgraphs[0]
    float_index = [i for i, t in enumerate(float_graph.tensors) if t.name.decode() == output_name][0]

    def layer_error(made):
        interp = litert.load(made, keep_all_tensors=True)
        out = litert.read_model(made).subgraphs[0].tensors[pointwise.outputs[0]].quantization
        total = 0.0
        for sample in samples[16:]:
            litert.set_input(float_interp, sample)
            float_interp.invoke()
            litert.set_input(interp, sample)
            interp.invoke()
            q = (interp.get_tensor(pointwise.outputs[0]).astype(np.float32) - out.zeroPoint[0]) \
                * out.scale[0]
            total += float(np.sum((q - float_interp.get_tensor(float_index)) ** 2))
        return total

    assert layer_error(rounded) < layer_error(quantized)


def test_conversion_records_the_methods_and_reads_older_records():
    assert Conversion(mode="int8").bias_correction == "auto"
    assert Conversion(mode="int8").suffix() == "int8"
    assert Conversion(mode="int8", per_tensor=True).equalize is True  # its default
    assert Conversion(mode="int8", per_tensor=True).suffix() == "int8_per_tensor"
    assert Conversion(mode="int8", per_tensor=True, equalize=False).suffix() == \
        "int8_per_tensor_nocle"
    assert Conversion(mode="int8", ranges="mse", bias_correction="none", adaround=True,
                      equalize=True).suffix() == "int8_cle_ranges_mse_bc_none_adaround"
    assert Conversion(mode="float32", bias_correction="empirical").suffix() == "float32"
    old = Conversion.from_json({"mode": "int8"})  # a report written before the methods
    assert (old.bias_correction, old.ranges, old.equalize, old.adaround) == \
        ("none", "minmax", False, False)
    from tfmobile_core.records import RecordError

    with pytest.raises(RecordError, match="conversion.bias_correction must be one of"):
        Conversion(mode="int8", bias_correction="median")


def test_grouped_convolutions_are_left_to_rounding(tmp_path):
    """ShuffleNet V1's grouped CONV_2D: bias correction reads each group's input slice,
    equalization takes no pair across it."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 4), batch_size=1)
    x = keras.layers.Conv2D(8, 1, activation="relu")(inputs)
    x = keras.layers.Conv2D(8, 1, groups=2)(x)
    model = keras.Model(inputs, keras.layers.Flatten()(x))
    samples = np.random.default_rng(0).uniform(-1, 1, (24, 8, 8, 4)).astype(np.float32)
    with tempfile.TemporaryDirectory() as saved:
        tflite.export_saved_model(model, saved)
        content = tflite.convert_saved_model(saved)
    read = litert.read_model(content)
    ops = [litert.op_name(read.operatorCodes[op.opcodeIndex]) for op in read.subgraphs[0].operators]
    assert ops.count("CONV_2D") == 2  # one grouped CONV_2D, as ShuffleNet V1's
    assert ptq.equalize(content, ptq.channel_maxima(content, samples))[1] == 0
    calibrated = calibrate(content, samples)
    stats = ptq.activation_stats(calibrated, samples)
    _, layers = ptq.correct_bias(quantize.quantize(calibrated), calibrated, stats)
    assert layers == 2
