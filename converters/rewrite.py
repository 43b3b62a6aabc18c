"""Rewrites of converted graphs that keep their function and keep them inside XNNPACK.

`float_depthwise_weights` (dynamic range) is described where it stands. `expand_hard_swish`
(full int8):

int8 HARD_SWISH has no XNNPACK kernel: every one hands the tensor back to the reference
kernels and splits the graph (MobileNet V3-Small int8: 20 partitions, 3x slower than its float
model). Writing hard-swish differently in Keras does not help: the converter fuses every
x * relu6(x + 3) / 6 pattern back into HARD_SWISH, and the orders it does not fuse quantize
x / 6 on a grid of its own and lose accuracy. So the quantized graph itself is rewritten:

    y = HARD_SWISH(x)   ->   r = ADD(x, 3) with fused RELU6      r in [0, 6], step 6/255
                             g = MUL(r, 1/6)                     g in [0, 1], step 1/255
                             y = MUL(x, g)                       y keeps HARD_SWISH's scale

x keeps its calibrated (tightened) range and y its output quantization, so the only new
rounding is the gate's 1/255 step; all three are int8 ops XNNPACK (ARM and x86) and NNAPI run.
"""

from __future__ import annotations

import numpy as np

from converters import litert


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _opcode(model, builtin: int, version: int) -> int:
    """Index of the operator code for `builtin`, added when the model has none."""
    schema = _schema()
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _quantization(scale: float, zero_point: int):
    q = _schema().QuantizationParametersT()
    q.scale, q.zeroPoint = [float(scale)], [int(zero_point)]
    return q


def _tensor(model, graph, name: str, shape, scale: float, zero_point: int,
            data: np.ndarray | None = None) -> int:
    schema = _schema()
    buffer = schema.BufferT()
    if data is not None:
        buffer.data = np.frombuffer(data.astype(np.int8).tobytes(), np.uint8)
    model.buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.name = name.encode()
    tensor.shape = np.array(shape, np.int32)
    tensor.type = schema.TensorType.INT8
    tensor.buffer = len(model.buffers) - 1
    tensor.quantization = _quantization(scale, zero_point)
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _op(opcode: int, inputs: list[int], outputs: list[int], options_type: int, options):
    op = _schema().OperatorT()
    op.opcodeIndex = opcode
    op.inputs = np.array(inputs, np.int32)
    op.outputs = np.array(outputs, np.int32)
    op.builtinOptionsType = options_type
    op.builtinOptions = options
    return op


def expand_hard_swish(content: bytes) -> tuple[bytes, int]:
    """The model with every int8 HARD_SWISH replaced as the module docstring shows.

    Returns the new model and how many ops were replaced (0: the bytes come back unchanged).
    """
    schema = _schema()
    model = litert.read_model(content)
    graph = model.subgraphs[0]
    names = [litert.op_name(code) for code in model.operatorCodes]
    targets = [i for i, op in enumerate(graph.operators)
               if names[op.opcodeIndex] == "HARD_SWISH"
               and graph.tensors[op.inputs[0]].type == schema.TensorType.INT8]
    if not targets:
        return content, 0
    add = _opcode(model, schema.BuiltinOperator.ADD, version=2)
    mul = _opcode(model, schema.BuiltinOperator.MUL, version=2)
    add_options = schema.AddOptionsT()
    add_options.fusedActivationFunction = schema.ActivationFunctionType.RELU6
    mul_options = schema.MulOptionsT()
    mul_options.fusedActivationFunction = schema.ActivationFunctionType.NONE

    operators = []
    for index, op in enumerate(graph.operators):
        if index not in targets:
            operators.append(op)
            continue
        x, y = int(op.inputs[0]), int(op.outputs[0])
        shape = list(graph.tensors[x].shape)
        stem = graph.tensors[y].name.decode(errors="replace").split(";")[0]
        three = _tensor(model, graph, f"{stem}/three", [1], 3 / 127, 0, np.array([127]))
        sixth = _tensor(model, graph, f"{stem}/one_sixth", [1], (1 / 6) / 127, 0, np.array([127]))
        relu6 = _tensor(model, graph, f"{stem}/relu6", shape, 6 / 255, -128)
        gate = _tensor(model, graph, f"{stem}/gate", shape, 1 / 255, -128)
        operators += [
            _op(add, [x, three], [relu6], schema.BuiltinOptions.AddOptions, add_options),
            _op(mul, [relu6, sixth], [gate], schema.BuiltinOptions.MulOptions, mul_options),
            _op(mul, [x, gate], [y], schema.BuiltinOptions.MulOptions, mul_options),
        ]
    graph.operators = operators
    return litert.write_model(model), len(targets)


def float_depthwise_weights(content: bytes) -> tuple[bytes, int]:
    """A dynamic-range model with its depthwise filters stored as float32 (their int8 values
    times their scales, so every product is the one the int8 filter stood for).

    XNNPACK takes dynamic-range (int8-weight) CONV_2D and FULLY_CONNECTED but not
    DEPTHWISE_CONV_2D: each one left the delegate and split the graph (MobileNet V1: 12
    partitions). Depthwise filters are k*k*C weights, a few percent of the file, so the model
    barely grows. Returns the model and how many filters changed (0: the bytes come back).
    """
    schema = _schema()
    model = litert.read_model(content)
    graph = model.subgraphs[0]
    names = [litert.op_name(code) for code in model.operatorCodes]
    changed = 0
    for op in graph.operators:
        if names[op.opcodeIndex] != "DEPTHWISE_CONV_2D":
            continue
        x, filt = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
        if x.type != schema.TensorType.FLOAT32 or filt.type != schema.TensorType.INT8:
            continue
        values = np.frombuffer(model.buffers[filt.buffer].data.tobytes(), np.int8).reshape(filt.shape)
        quant = filt.quantization
        axis_shape = [1] * values.ndim
        if len(quant.scale) > 1:  # per channel, along quantizedDimension (the last, C)
            axis_shape[quant.quantizedDimension] = len(quant.scale)
        scale = np.asarray(quant.scale, np.float32).reshape(axis_shape)
        weights = values.astype(np.float32) * scale
        model.buffers[filt.buffer].data = np.frombuffer(weights.tobytes(), np.uint8)
        filt.type, filt.quantization = schema.TensorType.FLOAT32, None
        changed += 1
    return (litert.write_model(model), changed) if changed else (content, 0)
