"""Weights from a published float .tflite classifier, ported into the zoo network it was made from.

Published MobileNets (TF-slim, TF Hub, the tflite-support test models) ship as .tflite files
whose batch norms are folded into the convolutions. Each CONV_2D, DEPTHWISE_CONV_2D and
FULLY_CONNECTED op, in graph order, becomes one weighted layer of the zoo model, in layer
order: its filter is the layer's kernel and its bias goes to the batch norm that follows (set to
the identity plus that bias) or to the layer's own bias. Strides and shapes are compared op by
op, so a mismatch names the first layer that differs; then the ported model must give the
.tflite's own outputs on the embedded photographs, which catches what shapes cannot
(activations, padding).

1001-class checkpoints (TF-slim) have a background class at index 0: a zoo model with 1001
outputs keeps it, one with 1000 drops it (row 0 of the classifier).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


class PortError(ValueError):
    """The .tflite cannot give its weights to this zoo model; one line naming why."""


@dataclasses.dataclass
class TfliteLayer:
    index: int  # the op's position in the graph
    op: str  # CONV_2D | DEPTHWISE_CONV_2D | FULLY_CONNECTED
    name: str  # the filter tensor's name
    kernel: np.ndarray  # in Keras layout: (h, w, in, out), (h, w, in, multiplier) or (in, out)
    bias: np.ndarray | None
    strides: tuple[int, int] | None
    activation: str  # the fused activation: NONE, RELU, RELU6, ...

    def describe(self) -> str:
        return f"op {self.index} {self.op} {self.name!r} (kernel {tuple(self.kernel.shape)})"


def _constant(model, graph, tensor_index: int, producers: dict) -> np.ndarray:
    """The float value of a constant tensor: stored float32, or float16/int8 behind a
    DEQUANTIZE op (float16 and dynamic-range models), or int8 with its scales."""
    from ai_edge_litert import schema_py_generated as schema

    from converters import litert

    tensor = graph.tensors[tensor_index]
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    if data is None or len(data) == 0:
        op = producers.get(tensor_index)
        if op is not None and litert.op_name(model.operatorCodes[op.opcodeIndex]) == "DEQUANTIZE":
            return _constant(model, graph, int(op.inputs[0]), producers)
        raise PortError(f"tensor {tensor.name.decode(errors='replace')!r} holds no constant "
                        "weights")
    dtypes = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.FLOAT16: np.float16,
              schema.TensorType.INT8: np.int8, schema.TensorType.INT32: np.int32}
    if tensor.type not in dtypes:
        raise PortError(f"tensor {tensor.name.decode(errors='replace')!r} has type "
                        f"{tensor.type}, not float or int8 weights")
    values = np.frombuffer(bytes(data), dtypes[tensor.type]).reshape(tensor.shape)
    if tensor.type in (schema.TensorType.INT8, schema.TensorType.INT32):
        quant = tensor.quantization
        if quant is None or quant.scale is None or len(quant.scale) == 0:
            raise PortError(f"tensor {tensor.name.decode(errors='replace')!r} is integer "
                            "without a scale")
        shape = [1] * values.ndim
        if len(quant.scale) > 1:
            shape[quant.quantizedDimension] = len(quant.scale)
        zero = np.asarray(quant.zeroPoint if quant.zeroPoint is not None else [0], np.float32)
        return ((values.astype(np.float32) - zero.reshape(shape if zero.size > 1 else [1]))
                * np.asarray(quant.scale, np.float32).reshape(shape))
    return values.astype(np.float32)


def read_layers(content: bytes) -> tuple[list[TfliteLayer], dict]:
    """The weighted ops of a float .tflite classifier in graph order, and facts about the file:
    input size, output width, whether it ends in SOFTMAX."""
    from ai_edge_litert import schema_py_generated as schema

    from converters import litert

    model = litert.read_model(content)
    graph = model.subgraphs[0]
    names = [litert.op_name(code) for code in model.operatorCodes]
    input_tensor = graph.tensors[graph.inputs[0]]
    if input_tensor.type != schema.TensorType.FLOAT32:
        raise PortError("the .tflite is a fully quantized model: its weights are rounded to int8 "
                        "already; port from the float model the same publisher ships")
    producers = {int(out): op for op in graph.operators for out in op.outputs}
    layers = []
    for index, op in enumerate(graph.operators):
        kind = names[op.opcodeIndex]
        if kind not in WEIGHTED_OPS:
            continue
        filt = _constant(model, graph, int(op.inputs[1]), producers)
        bias = (_constant(model, graph, int(op.inputs[2]), producers)
                if len(op.inputs) > 2 and op.inputs[2] >= 0 else None)
        options = op.builtinOptions
        strides = (options.strideH, options.strideW) if kind != "FULLY_CONNECTED" else None
        if kind == "CONV_2D":  # (out, h, w, in) -> (h, w, in, out)
            kernel = filt.transpose(1, 2, 3, 0)
        elif kind == "DEPTHWISE_CONV_2D":  # (1, h, w, in * multiplier) -> (h, w, in, multiplier)
            multiplier = max(int(options.depthMultiplier), 1)
            h, w, channels = filt.shape[1:]
            kernel = filt.reshape(h, w, channels // multiplier, multiplier)
        else:  # (out, in) -> (in, out)
            kernel = filt.T
        tensor_name = graph.tensors[op.inputs[1]].name.decode(errors="replace")
        layers.append(TfliteLayer(index, kind, tensor_name, kernel, bias, strides,
                                  litert.fused_activation(op)))
    output_shape = list(graph.tensors[graph.outputs[0]].shape)
    last = names[graph.operators[-1].opcodeIndex] if graph.operators else ""
    facts = {"input_size": int(input_tensor.shape[1]) if len(input_tensor.shape) == 4 else None,
             "outputs": int(output_shape[-1]), "softmax": last == "SOFTMAX"}
    return layers, facts


def output_width(path) -> int:
    """How many classes the .tflite classifier scores (its output's last dimension)."""
    from converters import litert

    content = _read(path)
    graph = litert.read_model(content).subgraphs[0]
    return int(graph.tensors[graph.outputs[0]].shape[-1])


def _read(path) -> bytes:
    from converters import litert

    try:
        with open(path, "rb") as f:
            content = f.read()
    except OSError as err:
        raise PortError(f"cannot read weights {os.fspath(path)!r}: {err.strerror}") from None
    try:
        litert.check_model(content, f"weights {os.fspath(path)!r}")
    except litert.NotAModel as err:
        raise PortError(str(err)) from None
    return content


def _keras_units(model) -> list[tuple]:
    """(weighted layer, the BatchNormalization that reads it or None), in layer order."""
    import keras

    layers = [layer for layer in model.layers if layer.weights]
    units, skip = [], set()
    for i, layer in enumerate(layers):
        if id(layer) in skip:
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            raise PortError(f"layer {layer.name!r} is a batch norm that follows no convolution; "
                            "this network cannot take folded .tflite weights")
        follower = layers[i + 1] if i + 1 < len(layers) else None
        bn = None
        if (isinstance(follower, keras.layers.BatchNormalization)
                and follower.input is layer.output):
            bn = follower
            skip.add(id(follower))
        units.append((layer, bn))
    return units


def _reader_activation(model, layer) -> str | None:
    """The activation function of the Activation layer reading `layer`'s output, if one does."""
    import keras

    for other in model.layers:
        if isinstance(other, keras.layers.Activation) and other.input is layer.output:
            return getattr(other.activation, "__name__", None)
    return None


def _describe(layer) -> str:
    kernel = layer.weights[0]
    return f"layer {layer.name!r} ({type(layer).__name__}, kernel {tuple(kernel.shape)})"


def port_tflite(path, model, what: str | None = None) -> dict:
    """Loads the weights of the float .tflite classifier at `path` into the zoo `model`.

    Raises PortError naming the first layer that differs. Returns facts about the source
    (input size, outputs, background dropped) for the caller's checks.
    """
    content = _read(path)
    what = what or model.name
    layers, facts = read_layers(content)
    units = _keras_units(model)
    if len(layers) != len(units):
        raise PortError(f"weights {os.fspath(path)!r} have {len(layers)} weighted ops and {what} "
                        f"has {len(units)} weighted layers: another architecture")
    width = int(model.output_shape[-1])
    drop_background = facts["outputs"] == 1001 and width == 1000
    if facts["outputs"] != width and not drop_background:
        raise PortError(f"weights {os.fspath(path)!r} score {facts['outputs']} classes and {what} "
                        f"has {width} outputs; build it with num_classes {facts['outputs']}"
                        + (" (or 1000 to drop the background class)" if facts["outputs"] == 1001
                           else ""))
    assignments = []
    for position, (source, (layer, bn)) in enumerate(zip(layers, units, strict=True)):
        kernel, bias = source.kernel, source.bias
        if position == len(layers) - 1 and drop_background:  # class 0 is the background
            kernel, bias = kernel[..., 1:], (bias[1:] if bias is not None else None)
        target = tuple(layer.weights[0].shape)
        if kernel.shape != target:
            if kernel.squeeze().shape != tuple(d for d in target if d != 1):  # dense <-> 1x1 conv
                raise PortError(f"weights {os.fspath(path)!r}: {source.describe()} does not "
                                f"match {_describe(layer)} of {what} (weighted layer {position}); "
                                "another architecture or width (--alpha)")
            kernel = kernel.reshape(target)
        layer_strides = getattr(layer, "strides", None)
        if source.strides is not None and layer_strides is not None \
                and tuple(layer_strides) != tuple(source.strides):
            raise PortError(f"weights {os.fspath(path)!r}: {source.describe()} has strides "
                            f"{source.strides}, {_describe(layer)} of {what} has "
                            f"{tuple(layer_strides)}")
        if bias is None:  # a convolution without bias
            bias = np.zeros(int(np.prod(kernel.shape[2:])) if kernel.ndim == 4 and
                            layer.__class__.__name__ == "DepthwiseConv2D" else kernel.shape[-1],
                            np.float32)
        if source.activation == "RELU6" and _reader_activation(model, layer) == "hard_sigmoid":
            # hard_sigmoid(x) = relu6(x + 3) / 6: the converter folds the + 3 into this bias
            # (and keeps RELU6 fused, then a MUL by 1/6); the Keras gate adds it itself.
            bias = bias - 3.0
        if len(layer.weights) == 2:  # the layer's own bias
            values = [kernel, bias.reshape(tuple(layer.weights[1].shape))]
            assignments.append((layer, values, bn, None))
        elif len(layer.weights) == 1 and bn is not None:
            assignments.append((layer, [kernel], bn, bias))
        else:
            raise PortError(f"weights {os.fspath(path)!r}: {_describe(layer)} of {what} has "
                            "neither a bias nor a batch norm to take the .tflite's bias")
    for layer, values, bn, bn_bias in assignments:  # nothing is written unless all matched
        layer.set_weights(values)
        if bn is not None:
            _set_identity(bn, bn_bias if bn_bias is not None else 0.0)
    return {**facts, "background_dropped": drop_background}


def _set_identity(bn, bias) -> None:
    """gamma * (x - mean) / sqrt(var + eps) + beta == x + bias."""
    channels = int(bn.weights[0].shape[0])
    values = {"gamma": np.ones(channels), "beta": np.broadcast_to(bias, (channels,)),
              "moving_mean": np.zeros(channels),
              "moving_variance": np.full(channels, 1.0 - bn.epsilon)}
    bn.set_weights([values[w.name].astype(np.float32) for w in bn.weights])


def check_outputs(path, model, facts: dict, images: np.ndarray, what: str) -> float:
    """The largest difference between the ported model's and the .tflite's class scores on
    `images` (preprocessed to the model's input size); PortError when they disagree."""
    from converters import litert

    # The reference kernels: no delegate to announce itself on stderr, nothing to fuse away.
    published = litert.run(litert.load(_read(path), reference_kernels=True), images)
    ported = model.predict(images, verbose=0, batch_size=16)
    if facts["background_dropped"]:
        published = published[:, 1:]
        if facts["softmax"]:  # the same distribution without class 0
            published = published / published.sum(axis=1, keepdims=True)
    if facts["softmax"] and not np.allclose(ported.sum(axis=1), 1.0, atol=1e-3):
        ported = _softmax(ported)  # built for logits: compare what the .tflite outputs
    scale = float(np.abs(published).max()) or 1.0
    difference = float(np.abs(ported - published).max()) / scale
    agree = float(np.mean(ported.argmax(1) == published.argmax(1)))
    if difference > 1e-3 or agree < 1.0:
        raise PortError(f"{what} with the weights of {os.fspath(path)!r} does not reproduce the "
                        f".tflite's outputs (largest difference {difference:.2g} of the largest "
                        f"score, top-1 agreement {agree:.0%}): the networks differ in something "
                        "the weights do not show (activations, padding)")
    return difference


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
