"""One builder per block type. Each takes a tensor, a `Block` with its widths already resolved,
and a name prefix, and returns the block's output; `BUILDERS` maps the tables' block names to
them.

Every convolution pads "same": for the stride-2 layers that equals the explicit (0,1)/(1,2)
zero-padding the Keras applications insert, and it leaves the TFLite graph without PAD ops.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import keras
from keras import layers, ops

BN_EPSILON = 1e-3  # as in every released MobileNet checkpoint


@keras.saving.register_keras_serializable("tfmobile")
class HeNormal(keras.initializers.Initializer):
    """He initialisation (truncated normal, std sqrt(2/fan_in)) with the fan-in counted right.

    Keras's default (Glorot) counts a depthwise kernel's fan-in as k*k*C instead of k*k, which
    shrinks the signal at every depthwise layer: an untrained MobileNet then outputs logits of
    ~1e-20, useless for checking a conversion and slow to train from scratch.
    """

    def __init__(self, depthwise: bool = False, seed=None):
        self.depthwise = depthwise
        self.seed = seed

    def __call__(self, shape, dtype=None):
        receptive = math.prod(shape[:-2])
        fan_in = receptive if self.depthwise else receptive * shape[-2]
        return keras.random.truncated_normal(
            # 0.8796: the std of a unit normal truncated at 2 sigma, as VarianceScaling corrects.
            shape, stddev=math.sqrt(2 / fan_in) / 0.87962566, dtype=dtype, seed=self.seed
        )

    def get_config(self):
        return {"depthwise": self.depthwise, "seed": self.seed}


@dataclasses.dataclass(frozen=True)
class Block:
    """A block with its widths resolved for one width multiplier: all a builder needs."""

    filters: int
    kernel: int = 3
    stride: int = 1
    act: str | None = "RE"
    expand: int | None = None  # expanded width; None: no expansion layer
    se: int | None = None  # squeeze-excite reduced width; None: no SE
    residual: bool = True
    groups: int = 1
    input_groups: int = 1
    split_groups: bool = False  # see conv_bn


def activation(x, act: str | None, name: str):
    if act is None:
        return x
    if act == "RE":
        return layers.ReLU(name=name)(x)
    if act == "RE6":
        return layers.ReLU(6.0, name=name)(x)
    if act == "HS":
        return layers.Activation("hard_swish", name=name)(x)
    raise ValueError(f"unknown activation {act!r}")


def conv_bn(x, filters, kernel, stride, act, name, groups=1, split_groups=False):
    """Conv + BN + activation. `split_groups` writes a grouped conv as one conv per group between
    a SPLIT and a CONCATENATION: the same function and weights, in ops the Edge TPU compiler
    maps (TFLite's single grouped CONV_2D is newer than the compiler)."""
    conv = functools.partial(layers.Conv2D, kernel_size=kernel, strides=stride, padding="same",
                             use_bias=False, kernel_initializer=HeNormal())
    if split_groups and groups > 1:
        parts = ChannelSplit(groups, name=f"{name}_split")(x)
        x = layers.Concatenate(name=f"{name}_concat")(
            [conv(filters // groups, name=f"{name}_g{i}")(part) for i, part in enumerate(parts)])
    else:
        x = conv(filters, groups=groups, name=name)(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return activation(x, act, f"{name}_act")


def depthwise_bn(x, kernel, stride, act, name):
    x = layers.DepthwiseConv2D(
        kernel, strides=stride, padding="same", use_bias=False,
        depthwise_initializer=HeNormal(depthwise=True), name=name,
    )(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return activation(x, act, f"{name}_act")


def squeeze_excite(x, reduced: int, name: str):
    """SE as released in MobileNet V3: pool, 1x1 + ReLU, 1x1 + hard-sigmoid gate, rescale."""
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    s = layers.Conv2D(reduced, 1, name=f"{name}_reduce")(s)
    s = layers.ReLU(name=f"{name}_reduce_act")(s)
    s = layers.Conv2D(x.shape[-1], 1, name=f"{name}_expand")(s)
    s = layers.Activation("hard_sigmoid", name=f"{name}_gate")(s)
    return layers.Multiply(name=f"{name}_scale")([x, s])


@keras.saving.register_keras_serializable("tfmobile")
class ChannelShuffle(layers.Layer):
    """ShuffleNet's channel shuffle, kept 4-D: (N, H*W, g, C/g) -> transpose -> (N, H, W, C).

    The textbook 5-D reshape (N, H, W, g, C/g) is rejected by TFLite's TRANSPOSE kernels and by
    the Edge TPU; folding H and W together keeps every tensor 4-D. The spatial size is static
    (the models are built for one input size), so no SHAPE ops enter the graph.
    """

    def __init__(self, groups: int, **kwargs):
        super().__init__(**kwargs)
        self.groups = groups

    def call(self, x):
        _, h, w, c = x.shape
        x = ops.reshape(x, (-1, h * w, self.groups, c // self.groups))
        x = ops.transpose(x, (0, 1, 3, 2))
        return ops.reshape(x, (-1, h, w, c))

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


@keras.saving.register_keras_serializable("tfmobile")
class PaddedAveragePool(layers.Layer):
    """Average pooling that counts the zero padding, as the ShuffleNet authors' release pools
    (PyTorch AvgPool2d's count_include_pad): a depthwise conv with a constant 1/k^2 filter.

    Keras's AveragePooling2D averages the valid pixels only, and LiteRT's XNNPACK has no int8
    AVERAGE_POOL_2D: each one left the delegate and split ShuffleNet V1's int8 graph in four.
    1/k^2 is exact on int8's per-channel grid, and there are no weights to train or save.
    """

    def __init__(self, pool_size: int = 3, strides: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.pool_size, self.strides = pool_size, strides

    def call(self, x):
        k = self.pool_size
        kernel = ops.full((k, k, x.shape[-1], 1), 1.0 / (k * k), dtype=x.dtype)
        return ops.depthwise_conv(x, kernel, strides=self.strides, padding="same")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, -(-h // self.strides), -(-w // self.strides), c)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides}


@keras.saving.register_keras_serializable("tfmobile")
class ChannelSplit(layers.Layer):
    """Splits the channels in equal parts (halves in ShuffleNet V2); one SPLIT op in TFLite."""

    def __init__(self, parts: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.parts = parts

    def call(self, x):
        return ops.split(x, self.parts, axis=-1)

    def compute_output_shape(self, input_shape):
        part = (*input_shape[:-1], input_shape[-1] // self.parts)
        return [part] * self.parts

    def get_config(self):
        return {**super().get_config(), "parts": self.parts}


# ---------------------------------------------------------------------------------------------
# The builders, one per block type.


def conv(x, b: Block, name: str):
    """Plain conv + BN + activation (stems and 1x1 head convs)."""
    return conv_bn(x, b.filters, b.kernel, b.stride, b.act, name)


def maxpool(x, b: Block, name: str):
    return layers.MaxPooling2D(b.kernel, strides=b.stride, padding="same", name=name)(x)


def depthwise_separable(x, b: Block, name: str):
    """MobileNet V1 / FD-MobileNet: depthwise kxk + BN + act, then pointwise 1x1 + BN + act."""
    x = depthwise_bn(x, b.kernel, b.stride, b.act, f"{name}_dw")
    return conv_bn(x, b.filters, 1, 1, b.act, f"{name}_pw")


def inverted_residual(x, b: Block, name: str):
    """MobileNet V2/V3: 1x1 expand + act, kxk depthwise + act, [SE], linear 1x1 projection."""
    shortcut = x
    if b.expand is not None:
        x = conv_bn(x, b.expand, 1, 1, b.act, f"{name}_expand")
    x = depthwise_bn(x, b.kernel, b.stride, b.act, f"{name}_dw")
    if b.se is not None:
        x = squeeze_excite(x, b.se, f"{name}_se")
    x = conv_bn(x, b.filters, 1, 1, None, f"{name}_project")  # linear bottleneck
    return _residual(shortcut, x, b, name)


def fused_inverted_residual(x, b: Block, name: str):
    """MobileNet-EdgeTPU: one full kxk conv does the expansion and the spatial filtering.

    Dense kxk convolutions use the Edge TPU's systolic array far better than depthwise ones at
    the early, wide-spatial stages. Without expansion only the (strided) projection remains.
    """
    shortcut = x
    stride = b.stride
    if b.expand is not None:
        x = conv_bn(x, b.expand, b.kernel, b.stride, b.act, f"{name}_fused")
        stride = 1
    x = conv_bn(x, b.filters, 1, stride, None, f"{name}_project")
    return _residual(shortcut, x, b, name)


def _residual(shortcut, x, b: Block, name: str):
    if b.residual and b.stride == 1 and shortcut.shape[-1] == b.filters:
        return layers.Add(name=f"{name}_add")([shortcut, x])
    return x


def shufflenet_v1_unit(x, b: Block, name: str):
    """ShuffleNet V1: 1x1 group conv, shuffle, 3x3 depthwise (no act), 1x1 group conv, merge.

    Stride 1 adds the input back; stride 2 concatenates a 3x3 average-pooled shortcut (zero
    padding counted, as the authors' release pools), so the residual branch makes only the
    missing out - in channels. The bottleneck is a quarter of the unit's output width.
    """
    in_filters = x.shape[-1]
    bottleneck = b.filters // 4
    branch_out = b.filters - in_filters if b.stride == 2 else b.filters
    y = conv_bn(x, bottleneck, 1, 1, "RE", f"{name}_gconv1", b.input_groups, b.split_groups)
    if b.input_groups > 1:
        y = ChannelShuffle(b.input_groups, name=f"{name}_shuffle")(y)
    y = depthwise_bn(y, 3, b.stride, None, f"{name}_dw")
    if b.stride == 2:
        # relu(concat(pool(x), y)) == concat(pool(x), relu(y)): x comes out of a ReLU, so its
        # average is never negative. Written this way the ReLU fuses into the conv; a RELU
        # after the concat has no int8 XNNPACK kernel and split the graph.
        y = conv_bn(y, branch_out, 1, 1, "RE", f"{name}_gconv2", b.groups, b.split_groups)
        shortcut = PaddedAveragePool(3, strides=2, name=f"{name}_pool")(x)
        return layers.Concatenate(name=f"{name}_concat")([shortcut, y])
    y = conv_bn(y, branch_out, 1, 1, None, f"{name}_gconv2", b.groups, b.split_groups)
    y = layers.Add(name=f"{name}_add")([x, y])
    return layers.ReLU(name=f"{name}_out")(y)


def shufflenet_v2_unit(x, b: Block, name: str):
    """ShuffleNet V2: split channels in halves, transform one, concat, shuffle with 2 groups.

    The downsampling unit has no split: both branches see the whole input with stride 2. As in
    the authors' release (whose op counts the paper reports), its shortcut branch keeps the
    input width and the main branch makes the other out - in channels.
    """
    in_filters = x.shape[-1]
    mid = b.filters // 2
    if b.stride == 1:
        left, right = ChannelSplit(name=f"{name}_split")(x)
        right_out = mid
    else:
        left = depthwise_bn(x, 3, b.stride, None, f"{name}_short_dw")
        left = conv_bn(left, in_filters, 1, 1, "RE", f"{name}_short_pw")
        right, right_out = x, b.filters - in_filters
    right = conv_bn(right, mid, 1, 1, "RE", f"{name}_pw1")
    right = depthwise_bn(right, 3, b.stride, None, f"{name}_dw")
    right = conv_bn(right, right_out, 1, 1, "RE", f"{name}_pw2")
    y = layers.Concatenate(name=f"{name}_concat")([left, right])
    return ChannelShuffle(2, name=f"{name}_shuffle")(y)


BUILDERS = {
    "conv": conv,
    "maxpool": maxpool,
    "dwsep": depthwise_separable,
    "ir": inverted_residual,
    "fused_ir": fused_inverted_residual,
    "shuffle_v1": shufflenet_v1_unit,
    "shuffle_v2": shufflenet_v2_unit,
}
