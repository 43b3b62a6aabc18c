"""Quantization-aware fine-tuning (tfmobile/qat.py): fake quantization exactly where TFLite int8
quantizes, on the float model's own layers, which then convert as any float model does."""

import pytest
import keras
import numpy as np
import tensorflow as tf

from calibration import sources
from converters import litert, pipeline
from tfmobile import data, models, qat
from tfmobile_core.records import Conversion


def test_fake_quant_rounds_to_256_steps_on_a_moving_min_max_range():
    layer = qat.FakeQuant(momentum=0.9)
    x = np.linspace(-1.0, 3.0, 2001, dtype=np.float32)[None]
    y = np.asarray(layer(x, training=True))
    assert (float(layer.range_min), float(layer.range_max)) == (-1.0, 3.0)  # first batch: its own
    step = 4.0 / 255
    assert len(np.unique(y)) == 256 and 0.0 in y  # 8 bits, zero exact
    assert np.abs(y - x).max() <= step / 2 + 1e-6

    layer(x / 2, training=True)  # a narrower batch: the range follows as a moving average
    np.testing.assert_allclose([float(layer.range_min), float(layer.range_max)],
                               [0.9 * -1 + 0.1 * -0.5, 0.9 * 3 + 0.1 * 1.5], rtol=1e-6)
    layer(x * 2, training=True)  # a wider one: taken at once, nothing of it clipped
    assert (float(layer.range_min), float(layer.range_max)) == (-2.0, 6.0)

    y = np.asarray(layer(x * 10, training=False))  # inference: the range stays, int8 clips
    assert (float(layer.range_min), float(layer.range_max)) == (-2.0, 6.0)
    assert abs(y.max() - 6.0) < 8 / 255 and abs(y.min() + 2.0) < 8 / 255

    clipped = qat.FakeQuant(domain=(-3.0, None))  # read only by hard-swish: flat below -3
    clipped(x * 10, training=True)
    assert float(clipped.range_min) == -3.0 and float(clipped.range_max) == 30.0


def test_kernels_round_per_output_channel_with_gradients_straight_through():
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype(np.float32)
    for layer in (keras.layers.Conv2D(5, 3), keras.layers.DepthwiseConv2D(3, depth_multiplier=2),
                  keras.layers.Dense(4)):
        layer(x)
        kernel = layer.kernel.numpy()
        depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)  # (k, k, C, M): C * M
        channels = kernel.reshape(-1, kernel.shape[-1] * (kernel.shape[-2] if depthwise else 1))
        scale = np.abs(channels).max(axis=0) / 127
        rounded = (np.round(channels / scale) * scale).reshape(kernel.shape)
        wrapped = qat.QuantizedKernel(layer)
        with tf.GradientTape() as tape:
            y = wrapped(x)
            loss = tf.reduce_sum(y)
        layer.kernel.assign(rounded)
        np.testing.assert_allclose(y, layer(x), atol=1e-5)
        assert not np.allclose(kernel, rounded)  # the rounding did something
        (grad,) = tape.gradient(loss, [layer.kernel])
        assert grad is not None and np.abs(grad).sum() > 0


def test_fake_quants_sit_where_the_int8_converter_quantizes():
    v3 = models.build("mobilenet_v3_small", alpha=0.35, input_size=48, num_classes=3,
                      classifier_activation=None)
    quantized = qat.quantized_tensors(v3)
    assert "b0" not in quantized  # conv read only by BN: folded
    assert quantized["b0_bn"] == (-3.0, None)  # read only by hard-swish: flat below -3
    assert "b1_dw_bn" not in quantized and "b1_dw_act" in quantized  # ReLU fused
    assert quantized["b1_se_expand"] == (-3.0, 3.0)  # hard-sigmoid: fused RELU6 of x + 3
    assert quantized["head_fc"] == (-3.0, None)
    for name in ("b0_act", "b1_se_pool", "b1_se_gate", "b1_se_scale", "b1_project_bn", "b3_add",
                 "head_fc_act", "logits"):
        assert quantized[name] == (None, None), name
    assert "dropout" not in quantized and "image" not in quantized

    shuffle = models.build("shufflenet_v1", input_size=48, num_classes=3)
    quantized = qat.quantized_tensors(shuffle)
    adds = [layer.name for layer in shuffle.layers if isinstance(layer, keras.layers.Add)]
    assert adds and not set(adds) & set(quantized)  # their ReLU fuses into ADD
    assert all(name.replace("_add", "_out") in quantized for name in adds)
    assert not any(isinstance(shuffle.get_layer(name), qat.PASS_THROUGH) for name in quantized)


@pytest.mark.slow
def test_fine_tuning_updates_the_float_model_which_converts_unchanged(photos):
    keras.utils.set_random_seed(0)
    model = models.build("mobilenet_v3_small", alpha=0.35, input_size=48, num_classes=2,
                         classifier_activation=None)
    layers_before = list(model.layers)
    kernels = {layer.name: layer.kernel.numpy() for layer in model.layers if hasattr(layer, "kernel")}
    batch_norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    statistics = [layer.moving_variance.numpy() for layer in batch_norms]

    twin = qat.quantization_aware(model)
    fake_quants = [layer for layer in twin.layers if isinstance(layer, qat.FakeQuant)]
    assert len(fake_quants) == len(qat.quantized_tensors(model))
    for layer in twin.layers:  # the twin runs the model's own layers: one set of weights
        shared = layer.layer if isinstance(layer, qat.QuantizedKernel) else layer
        assert isinstance(layer, (qat.FakeQuant, keras.layers.InputLayer)) or shared in layers_before

    labelled = data.LabelledImages(photos, np.arange(len(photos)) % 2, ["a", "b"])
    qat.fine_tune(model, labelled, epochs=1, learning_rate=1e-2, batch_size=8)
    assert model.layers == layers_before
    assert any(not np.array_equal(kernels[name], model.get_layer(name).kernel.numpy())
               for name in kernels)
    for layer, before in zip(batch_norms, statistics, strict=True):  # frozen: int8 folds these statistics
        assert layer.trainable and np.array_equal(layer.moving_variance.numpy(), before)

    converted = pipeline.convert(model, sources.load(None), pipeline.Request(
        conversion=Conversion(mode="int8", expand_hard_swish=False), calibration_samples=8,
        eval_samples=4))
    assert converted.artifact.fully_integer
    # One fake quantization per tensor the int8 graph computes (HARD_SWISH kept as one op).
    assert sum(litert.op_counts(converted.content).values()) == len(fake_quants)
