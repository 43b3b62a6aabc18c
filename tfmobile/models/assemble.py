"""The one dispatcher: resolves each table row's widths for a width multiplier and hands the
block to its builder, then adds the classification head."""

from __future__ import annotations

import keras
from keras import layers

from tfmobile.models.blocks import BUILDERS, Block, HeNormal, activation
from tfmobile.models.spec import BlockSpec, NetworkSpec


def scaled_width(filters: int, scale: str, net: NetworkSpec, in_ch: int, in_ref: int | None) -> int:
    if scale == "fixed":
        return filters
    if scale == "grow":
        return filters if net.alpha <= 1.0 else net.round_filters(filters * net.alpha)
    if scale == "input":
        return net.round_expand(in_ch * filters / in_ref)
    return net.round_filters(filters * net.alpha)


def resolve(spec: BlockSpec, in_ch: int, net: NetworkSpec) -> Block:
    """The widths one block has at the network's alpha, given its actual input width."""
    if spec.block == "maxpool":
        filters = in_ch
    else:
        filters = scaled_width(spec.filters, spec.scale, net, in_ch, spec.in_filters)
    expand = None
    if spec.expand is not None and spec.expand != spec.in_filters:
        # Expansion is a ratio of the actual input, as in the released checkpoints.
        expand = net.round_expand(in_ch * spec.expand / spec.in_filters)
    se = None
    if spec.se is not None:
        se = net.round_expand((expand or in_ch) * spec.se)
    return Block(
        filters=filters,
        kernel=spec.kernel,
        stride=spec.stride,
        act=spec.act,
        expand=expand,
        se=se,
        residual=spec.residual,
        groups=spec.groups,
        input_groups=spec.groups if spec.input_groups is None else spec.input_groups,
        split_groups=spec.split_groups,
    )


def _blocks(net: NetworkSpec, inputs) -> list:
    """Every block's output tensor, in table order."""
    outputs, x = [], inputs
    for i, spec in enumerate(net.blocks):
        x = BUILDERS[spec.block](x, resolve(spec, x.shape[-1], net), f"b{i}")
        outputs.append(x)
    return outputs


def levels(model: keras.Model, net: NetworkSpec) -> keras.Model:
    """`model` (an assembled network) cut at its feature levels (`net.levels`, e.g.
    {"C3": stride 8, "C4": stride 16, "C5": stride 32}): a model sharing its layers and weights
    that returns a dict of those tensors. Only the blocks the deepest level needs remain."""
    taps = {}
    for name, tap in net.taps().items():
        index = tap.find(net.blocks)
        if tap.where == "expand":
            layer = model.get_layer(f"b{index}_expand_act")
        else:  # a block's output is its last layer in the graph's order
            layer = [la for la in model.layers
                     if la.name == f"b{index}" or la.name.startswith(f"b{index}_")][-1]
        taps[name] = layer.output
    return keras.Model(model.input, taps, name=f"{model.name}_levels")


def assemble(
    net: NetworkSpec,
    input_size: int,
    num_classes: int = 1000,
    include_top: bool = True,
    classifier_activation: str | None = "softmax",
) -> keras.Model:
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = _blocks(net, inputs)[-1]
    if include_top:
        x = layers.GlobalAveragePooling2D(name="pool")(x)
        head = net.head
        if head.hidden:
            width = scaled_width(head.hidden, head.hidden_scale, net, x.shape[-1], None)
            x = layers.Dense(width, kernel_initializer=HeNormal(), name="head_fc")(x)
            x = activation(x, head.hidden_act, "head_fc_act")
        if head.dropout:
            x = layers.Dropout(head.dropout, name="dropout")(x)
        x = layers.Dense(num_classes, kernel_initializer=HeNormal(), name="logits")(x)
        if classifier_activation:
            x = layers.Activation(classifier_activation, name="predictions")(x)
    return keras.Model(inputs, x, name=f"{net.name}_{net.alpha:g}_{input_size}")
