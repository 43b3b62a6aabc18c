"""Quantization-aware fine-tuning: teach a float network the rounding that int8 will apply.

Post-training int8 rounds every activation tensor to 256 steps of its calibrated range. Where
activations are heavy-tailed (MobileNet V3's hard-swish and SE-rescaled tensors) that noise is
small at each layer but adds up over the network, and no choice of ranges removes it. Training
with the rounding in the forward pass lets the weights adapt to it (Jacob et al. 2018,
arXiv 1712.05877; Google's int8 MobileNet V3 releases were trained this way).

`quantization_aware(model)` returns a twin of a functional model that calls the *same* layer
objects (so the same weights) with a `FakeQuant` layer after every tensor the TFLite int8
converter quantizes. `fine_tune` trains that twin; the original float model, with its layers
unchanged and its weights updated, then goes through the ordinary post-training pipeline
(calibration + TFLiteConverter), which picks its own ranges as for any other model.

Which tensors TFLite quantizes follows from what it fuses:
- a convolution's output read only by batch norm is not a tensor in TFLite (BN folds into it);
- an output read only by ReLU or ReLU6 is not either (the activation fuses into the op before);
- reshapes, transposes, splits, max pooling and dropout keep their input's scale: nothing new;
- everything else is: activations after fused blocks, linear projections, adds, multiplies,
  means, hard-swish and hard-sigmoid outputs and inputs, the logits.
A tensor read only by hard-swish (hard-sigmoid) is also clipped to [-3, inf) ([-3, 3]), as the
converter's range tightening (converters/quantize.py) and its fused RELU6 do: the function is
flat outside, so int8 spends no steps there.

Kernels are rounded too, per output channel as TFLite stores them (`QuantizedKernel`). Their
int8 error is small on its own (about 32-37 dB on trained V3), but fine-tuning with activation
rounding alone left V3 Large at -1.3 points in the accuracy test.
"""

from __future__ import annotations

import keras
from keras import layers

from tfmobile.models.blocks import ChannelShuffle, ChannelSplit

# Layers whose int8 output keeps its input's scale and zero point.
PASS_THROUGH = (layers.InputLayer, layers.Dropout, layers.MaxPooling2D, layers.Reshape,
                layers.Flatten, ChannelShuffle, ChannelSplit)
FOLDS_BATCH_NORM = (layers.Conv2D, layers.DepthwiseConv2D, layers.Dense)
# What part of its input an activation distinguishes; None: the op fuses into its producer.
READER_DOMAIN = {"relu": None, "relu6": None, "hard_silu": (-3.0, None),
                 "hard_sigmoid": (-3.0, 3.0)}


def _activation(layer) -> str | None:
    if isinstance(layer, layers.ReLU):
        if layer.negative_slope or layer.threshold or layer.max_value not in (None, 6.0):
            return None
        return "relu" if layer.max_value is None else "relu6"
    if isinstance(layer, layers.Activation):
        return getattr(layer.activation, "__name__", None)
    return None


@keras.saving.register_keras_serializable("tfmobile")
class FakeQuant(layers.Layer):
    """Rounds its input as int8 per-tensor asymmetric quantization would (256 steps of a
    [min, max] range nudged to hold 0 exactly), with tf.quantization's fake-quant op: gradients
    pass straight through inside the range and stop outside it, where int8 clips.

    During training the range follows the batches: a batch's extreme beyond it is taken at once,
    and otherwise the range shrinks back toward the batch's as a moving average. The converter
    calibrates with the absolute min/max over its samples (300); a plain moving average of
    batch extremes stayed about 2x narrower on V3 Large, and trained the network for a finer
    grid than int8 then gave it. `momentum` 0.9, not the usual 0.99+: a fine-tune of a few
    dozen steps must let the ranges follow the weights (as train() sets batch norm's 0.9).
    The range is fixed at inference.
    """

    def __init__(self, momentum: float = 0.9, domain=(None, None), **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.domain = tuple(domain)

    def build(self, input_shape):
        def state(name):
            return self.add_weight(shape=(), initializer="zeros", trainable=False, name=name)

        self.range_min, self.range_max, self.batches = state("min"), state("max"), state("batches")

    def call(self, x, training=False):
        import tensorflow as tf

        lo, hi = self.range_min, self.range_max
        if training:
            batch_lo, batch_hi = tf.reduce_min(x), tf.reduce_max(x)
            if self.domain[0] is not None:
                batch_lo = tf.maximum(batch_lo, self.domain[0])
            if self.domain[1] is not None:
                batch_hi = tf.minimum(batch_hi, self.domain[1])
            keep = tf.where(self.batches > 0, self.momentum, 0.0)  # first batch: its own range
            lo = self.range_min.assign(tf.minimum(batch_lo, keep * lo + (1 - keep) * batch_lo))
            hi = self.range_max.assign(tf.maximum(batch_hi, keep * hi + (1 - keep) * batch_hi))
            self.batches.assign_add(1.0)
        # int8 represents 0 exactly: the range always contains it (the op nudges it onto a step).
        lo, hi = tf.minimum(tf.stop_gradient(lo), 0.0), tf.maximum(tf.stop_gradient(hi), 1e-6)
        return tf.quantization.fake_quant_with_min_max_vars(x, lo, hi, num_bits=8)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "domain": self.domain}


@keras.saving.register_keras_serializable("tfmobile")
class QuantizedKernel(layers.Layer):
    """Calls a Conv2D, DepthwiseConv2D or Dense layer with its kernel rounded as TFLite stores
    it: int8, symmetric, one scale per output channel (max |w| / 127). The layer's own variable
    is read through a StatelessScope, so gradients reach it straight through the rounding.

    Batch norm, folded into the kernel by the converter, scales each output channel by a
    constant, and per-channel symmetric rounding commutes with that: rounding the unfolded
    kernel is rounding the folded one.
    """

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer

    def call(self, x):
        import tensorflow as tf

        kernel = self.layer.kernel
        channels = kernel.shape[-1]
        if isinstance(self.layer, layers.DepthwiseConv2D):  # (k, k, C, M): C * M channels
            channels *= kernel.shape[-2]
        flat = tf.reshape(kernel, (-1, channels))
        bound = tf.stop_gradient(tf.maximum(tf.reduce_max(tf.abs(flat), axis=0), 1e-12))
        rounded = tf.quantization.fake_quant_with_min_max_vars_per_channel(
            flat, -bound, bound, num_bits=8, narrow_range=True)
        with keras.StatelessScope(state_mapping=[(kernel, tf.reshape(rounded, kernel.shape))]):
            return self.layer(x)


def quantized_tensors(model: keras.Model) -> dict[str, tuple]:
    """{layer name: domain} for every layer whose output TFLite int8 quantizes (module docstring).

    Readers are found by calling the model's own layers on fresh inputs once and recording
    which layer consumes which layer's output (keras.models.clone_model with shared layers).
    """
    producer: dict[int, keras.layers.Layer] = {}
    readers: dict[str, list] = {layer.name: [] for layer in model.layers}

    def record(layer, *args, **kwargs):
        for tensor in keras.tree.flatten((args, kwargs)):
            if id(tensor) in producer:
                readers[producer[id(tensor)].name].append(layer)
        outputs = layer(*args, **kwargs)
        for tensor in keras.tree.flatten(outputs):
            producer[id(tensor)] = layer
        return outputs

    keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=record)
    quantized = {}
    for layer in model.layers:
        if isinstance(layer, PASS_THROUGH):
            continue
        reads = readers[layer.name]
        if len(reads) == 1:
            if isinstance(reads[0], layers.BatchNormalization) and isinstance(layer, FOLDS_BATCH_NORM):
                continue
            name = _activation(reads[0])
            if name in READER_DOMAIN and READER_DOMAIN[name] is None:
                continue
            if name in READER_DOMAIN:
                quantized[layer.name] = READER_DOMAIN[name]
                continue
        quantized[layer.name] = (None, None)
    return quantized


def quantization_aware(model: keras.Model, momentum: float = 0.9, weights: bool = True) -> keras.Model:
    """A twin of `model` sharing its layers, with a FakeQuant after every quantized tensor and
    (`weights`) every kernel rounded per channel."""
    quantized = quantized_tensors(model)

    def call(layer, *args, **kwargs):
        if weights and isinstance(layer, FOLDS_BATCH_NORM):
            outputs = QuantizedKernel(layer, name=f"{layer.name}_wq")(*args, **kwargs)
        else:
            outputs = layer(*args, **kwargs)
        if layer.name not in quantized:
            return outputs
        return FakeQuant(momentum, quantized[layer.name], name=f"{layer.name}_fq")(outputs)

    return keras.models.clone_model(model, clone_function=lambda layer: layer,
                                    call_function=call)


def fine_tune(model: keras.Model, train_set, val_set=None, *, epochs: int = 2,
              learning_rate: float = 5e-4, weights: bool = True, checkpoint=None, **train_args):
    """Fine-tunes `model` in place with int8 rounding simulated (tfmobile.train.train on its
    quantization-aware twin; `weights=False` rounds activations only). The best epoch is chosen
    by the twin's validation top-1, an estimate of the int8 model's (without `val_set`: the
    last); a checkpoint holds `model`'s own weights.

    Batch norm is frozen (moving statistics, inference mode): the int8 model folds those
    statistics into its convolutions, and the ranges the converter calibrates are those of
    inference. In training mode a briefly trained network's activations are several times
    narrower than in inference (V3 Large's logits: -31..66 against -176..365), so the ranges
    learned there would not be the ones the converter picks.
    """
    from tfmobile.train import train

    twin = quantization_aware(model, weights=weights)
    batch_norms = [layer for layer in model.layers if isinstance(layer, layers.BatchNormalization)]
    trainable = [layer.trainable for layer in batch_norms]
    for layer in batch_norms:
        layer.trainable = False  # Keras 3: a frozen BatchNormalization runs in inference mode
    try:
        return train(twin, train_set, val_set, epochs=epochs, learning_rate=learning_rate,
                     checkpoint=checkpoint, checkpoint_model=model, **train_args)
    finally:
        for layer, was in zip(batch_norms, trainable, strict=True):
            layer.trainable = was
