"""Rewrites of converted graphs that keep their function and keep them inside XNNPACK.

`float_depthwise_weights` (dynamic range) is described where it stands. `expand_hard_swish`
(full int8):

int8 HARD_SWISH has no XNNPACK kernel: every one hands the tensor back to the reference
kernels and splits the graph (MobileNet V3-Small int8: 20 partitions, 3x slower than its float
model). Writing hard-swish differently in Keras does not help: the converter fuses every
x * relu6(x + 3) / 6 pattern back into HARD_SWISH, and the orders it does not fuse quantize
x / 6 on a grid of its own and lose accuracy. So the quantized graph itself is rewritten:

    y = HARD_SWISH(x)   ->   r = ADD(x, 3) with fused RELU6      r in [0, 6], step max(6/255, x step/128)
                             g = MUL(r, 1/6)                     g in [0, 1], step 1/255
                             y = MUL(x, g)                       y keeps HARD_SWISH's scale

x keeps its calibrated (tightened) range and y its output quantization, so the only new
rounding is the gate's 1/255 step; all three are int8 ops XNNPACK (ARM and x86) and NNAPI run
as long as their scales stay inside XNNPACK's limits (`_grids`). Where activations grow large
(random-weight MobileNet V3 Large: pre-activations up to 2000 in one seed of 70), x's step
passes 3 and r's step follows it (x's / 128): on 6/255 the ADD would leave the delegate, split
the graph once per such hard-swish, and overflow on LiteRT's own kernel.
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


# XNNPACK runs an int8 ADD only when each input's scale is 2^-10 to 2^8 times the output's, and
# an int8 MUL only when the product of its input scales is 2^-16 to 2^8 times the output's;
# outside, the op stays on LiteRT's own kernels and splits the graph (measured with
# ai-edge-litert 2.3.0, sweeping one rewritten hard-swish's scales until it left). The rewrite
# keeps a factor 2 inside them; that also keeps LiteRT's own int8 ADD exact, which overflows
# above an input/output scale ratio of 2^7 (x of a thousand came out as r = 0, not 6).
_ADD_SCALE_RATIO = (2.0**-10, 2.0**8)
_MUL_SCALE_RATIO = (2.0**-16, 2.0**8)
_MARGIN = 2.0
_SIXTH_SCALE = (1 / 6) / 127  # 1/6 stored as 127
_GATE_SCALE = 1 / 255  # g in [0, 1]


def _inside(ratio: float, limits: tuple[float, float]) -> bool:
    return limits[0] * _MARGIN <= ratio <= limits[1] / _MARGIN


def _grids(x_scale: float, y_scale: float) -> tuple[float, int] | None:
    """(relu6 scale, the int8 value that stores 3) for one hard-swish, or None when no grid
    keeps its ADD and both MULs inside XNNPACK's scale limits (the op is then left as it is).

    r gets 6/255, unless x is so coarse (step above 3) that the ADD would rescale it by more
    than 2^7: then r's step is x's / 2^7, still far finer than x's own, so r loses nothing x
    held. 3 is stored as 127 steps of 3/127 unless r's step outgrows that scale by 2^9.
    """
    relu6 = max(6 / 255, x_scale * _MARGIN / _ADD_SCALE_RATIO[1])
    three_q = min(127, int(3 / (relu6 * _ADD_SCALE_RATIO[0] * _MARGIN)))
    if three_q < 1:
        return None
    ratios = [(x_scale / relu6, _ADD_SCALE_RATIO), ((3 / three_q) / relu6, _ADD_SCALE_RATIO),
              (relu6 * _SIXTH_SCALE / _GATE_SCALE, _MUL_SCALE_RATIO),
              (x_scale * _GATE_SCALE / y_scale, _MUL_SCALE_RATIO)]
    if not all(_inside(ratio, limits) for ratio, limits in ratios):
        return None
    return relu6, three_q


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
    """The model with every int8 HARD_SWISH replaced as the module docstring shows, except one
    whose scales no grid fits into XNNPACK's limits (`_grids`): that one stays HARD_SWISH, as
    the report's op counts and partitions show.

    Returns the new model and how many ops were replaced (0: the bytes come back unchanged).
    """
    schema = _schema()
    model = litert.read_model(content)
    graph = model.subgraphs[0]
    names = [litert.op_name(code) for code in model.operatorCodes]

    def scale(tensor: int) -> float:
        return float(graph.tensors[tensor].quantization.scale[0])

    targets = {}
    for i, op in enumerate(graph.operators):
        if (names[op.opcodeIndex] == "HARD_SWISH"
                and graph.tensors[op.inputs[0]].type == schema.TensorType.INT8):
            grids = _grids(scale(op.inputs[0]), scale(op.outputs[0]))
            if grids is not None:
                targets[i] = grids
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
        relu6_scale, three_q = targets[index]
        three = _tensor(model, graph, f"{stem}/three", [1], 3 / three_q, 0, np.array([three_q]))
        sixth = _tensor(model, graph, f"{stem}/one_sixth", [1], _SIXTH_SCALE, 0, np.array([127]))
        relu6 = _tensor(model, graph, f"{stem}/relu6", shape, relu6_scale, -128)
        gate = _tensor(model, graph, f"{stem}/gate", shape, _GATE_SCALE, -128)
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


# The most inputs the XNNPACK delegate takes on one CONCATENATION (ai-edge-litert 2.3.0,
# measured on float and int8 models of 2 to 8 reshaped convs: 5 are delegated, 6 and more stay
# on LiteRT's kernel, float or int8 alike). SSD heads concatenate one tensor per feature map,
# six for SSDLite, and a concat followed by more ops (the class scores' sigmoid) splits the
# graph there.
XNNPACK_CONCAT_INPUTS = 5


def _joined_shape(shapes: list, axis: int):
    """The shape of `shapes` joined along `axis`; -1 (unknown, in a shape signature) stays -1."""
    joined = [int(d) for d in shapes[0]]
    sizes = [int(s[axis]) for s in shapes]
    joined[axis] = -1 if min(sizes) < 0 else sum(sizes)
    return np.array(joined, np.int32)


def split_concatenations(content: bytes, max_inputs: int = XNNPACK_CONCAT_INPUTS
                         ) -> tuple[bytes, int]:
    """The model with every CONCATENATION of more than `max_inputs` inputs written as a tree of
    concatenations of at most `max_inputs` each, so that XNNPACK takes all of them.

    Joining along one axis is associative, so runs of consecutive inputs are joined first and
    the runs then joined in order: the output is the same tensor, element for element. The new
    intermediate tensors take the output's type and quantization; the converter already gives
    every int8 concat input its output's scale and zero point (CONCATENATION is a same-scale op
    in TF's quantizer), so each inner join copies int8 values unchanged. A fused activation
    stays on the outermost op only (it acts elementwise, once). Float, float16-weight and int8
    models alike: the limit is on the number of inputs, not on the type.

    Returns the new model and how many ops were split (0: the bytes come back unchanged).
    """
    if max_inputs < 2:
        raise ValueError(f"max_inputs must be at least 2, got {max_inputs}")
    schema = _schema()
    model = litert.read_model(content)
    graph = model.subgraphs[0]
    names = [litert.op_name(code) for code in model.operatorCodes]
    wide = [op for op in graph.operators
            if names[op.opcodeIndex] == "CONCATENATION" and len(op.inputs) > max_inputs]
    if not wide:
        return content, 0

    def join(op, inputs: list[int], stem: str, part: int) -> tuple[int, object]:
        """A new tensor holding `inputs` joined as `op` joins them, and the op writing it."""
        out = graph.tensors[op.outputs[0]]
        rank = len(out.shape)
        axis = op.builtinOptions.axis % rank if rank else 0
        tensor = schema.TensorT()
        tensor.name = f"{stem}/part{part}".encode()
        tensor.type = out.type
        tensor.shape = _joined_shape([graph.tensors[i].shape for i in inputs], axis)
        signatures = [graph.tensors[i].shapeSignature for i in inputs]
        if all(s is not None and len(s) == rank for s in signatures):
            tensor.shapeSignature = _joined_shape(signatures, axis)
        if out.quantization is not None and out.quantization.scale is not None:
            tensor.quantization = _quantization(out.quantization.scale[0],
                                                out.quantization.zeroPoint[0])
        model.buffers.append(schema.BufferT())
        tensor.buffer = len(model.buffers) - 1
        graph.tensors.append(tensor)
        options = schema.ConcatenationOptionsT()
        options.axis = op.builtinOptions.axis
        options.fusedActivationFunction = schema.ActivationFunctionType.NONE
        inner = _op(op.opcodeIndex, inputs, [len(graph.tensors) - 1],
                    schema.BuiltinOptions.ConcatenationOptions, options)
        return len(graph.tensors) - 1, inner

    operators = []
    for op in graph.operators:
        if not any(op is w for w in wide):
            operators.append(op)
            continue
        stem = graph.tensors[op.outputs[0]].name.decode(errors="replace").split(";")[0]
        inputs, part = [int(i) for i in op.inputs], 0
        while len(inputs) > max_inputs:  # each level joins runs of max_inputs; a shorter tail waits
            joined = []
            for start in range(0, len(inputs), max_inputs):
                run = inputs[start:start + max_inputs]
                if len(run) < max_inputs:
                    joined += run
                    continue
                tensor, inner = join(op, run, stem, part)
                operators.append(inner)
                joined.append(tensor)
                part += 1
            inputs = joined
        op.inputs = np.array(inputs, np.int32)
        operators.append(op)
    graph.operators = operators
    return litert.write_model(model), len(wide)
