"""Which operations of a .tflite the Edge TPU compiler would map, decided offline.

  python -m converters.edgetpu analyze MODEL.tflite [--json OUT.json] [--runtime 13]

edgetpu_compiler runs on x86-64 Linux only and has not changed since 16.0 (2021), but its rules
are published. `analyze` applies them to any .tflite, op by op in execution order;
`format_summary` prints the verdict in the shape of the compiler's own log and in its words, so
that `parse_compiler_log` and `compare` can hold the two side by side.

Sources (tests/data/edgetpu/SOURCES.md gives the addresses):
  * Coral, "TensorFlow models on the Edge TPU", https://coral.ai/docs/edgetpu/models-intro/:
    the model requirements, and the supported-operations table with its "Known limitations" as
    published for compiler 16.0, each row marked with the Edge TPU runtime it needs.
  * Published compiler output: the statuses' wording, and what the page leaves unsaid: a float
    input's QUANTIZE stays on the CPU without ending the Edge TPU part (`_quantizes_from_float`,
    `_place`), and dynamic-sized tensors fail the whole compilation (`_dynamic_sizes`).

What cannot be decided offline becomes a caveat, not a guess: the table's limits on sizes the
compiler keeps to itself ("might not be mapped for large tensor sizes"), and op versions newer
than the compiler (which it reports as "Operation version not supported"; which versions it
accepts is not published).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import os
import re
import sys
from collections.abc import Callable

import numpy as np

from converters import litert

DOCS = "https://coral.ai/docs/edgetpu/models-intro/"
LATEST_RUNTIME = 14  # the newest runtime the table names ("14+" rows)

# Statuses as edgetpu_compiler words them (tests/data/edgetpu/SOURCES.md says where each is seen).
MAPPED = "Mapped to Edge TPU"
UNSUPPORTED_OP = "Operation not supported"
UNSUPPORTED_TYPE = "Operation is working on an unsupported data type"
UNSUPPORTED_RANK = "Tensor has unsupported rank (up to 3 innermost dimensions mapped)"
NOT_CONSTANT = "Filter, bias, or other param is not constant at compile-time"
OTHERWISE = "Operation is otherwise supported, but not mapped due to some unspecified limitation"
TWO_D_OUTPUT = "For example, a fully-connected or softmax layer with 2D output"
SECOND_SUBGRAPH = "More than one subgraph is not supported"
VERSION = "Operation version not supported"  # read in logs, never predicted (see above)
# Not the compiler's words: with dynamic-sized tensors it prints no table, only its error.
NOT_COMPILED = "Not compiled: the model has dynamic-sized tensors"
DYNAMIC_SIZE_ERROR = ("ERROR: Attempting to use a delegate that only supports static-sized "
                      "tensors with a graph that has dynamic-sized tensors.")

_NUMPY_TYPES = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "INT32": np.int32,
                "INT64": np.int64, "FLOAT16": np.float16, "FLOAT32": np.float32}


@functools.cache
def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


_names = litert.enum_names


# --- The graph, as the rules need to see it ----------------------------------------------------


class _Graph:
    """The main subgraph of a .tflite as a compiler targeting Edge TPU runtime `runtime` sees
    it: tensors, constants, and which op produces what."""

    def __init__(self, content: bytes, runtime: int = LATEST_RUNTIME):
        self.content = content
        self.runtime = runtime
        self.model = litert.read_model(content)
        self.tensors = self.model.subgraphs[0].tensors
        self.ops = [_Op(self, i, op) for i, op in enumerate(self.model.subgraphs[0].operators or [])]
        self.producer = {t: op.index for op in self.ops for t in op.outputs}

    def _buffer(self, tensor: int):
        return self.model.buffers[self.tensors[tensor].buffer]

    def is_constant(self, tensor: int) -> bool:
        """Data fixed in the file: a buffer with bytes, inline or stored after the flatbuffer."""
        buffer = self._buffer(tensor)
        return (buffer.data is not None and len(buffer.data) > 0) or (buffer.offset or 0) > 1

    def value(self, tensor: int) -> np.ndarray | None:
        """A constant tensor's values (None for data computed at run time)."""
        dtype = _NUMPY_TYPES.get(self.type_name(tensor))
        if dtype is None or not self.is_constant(tensor):
            return None
        buffer = self._buffer(tensor)
        if buffer.data is not None and len(buffer.data):
            raw = np.asarray(buffer.data, np.uint8).tobytes()
        else:
            raw = self.content[buffer.offset:buffer.offset + buffer.size]
        return np.frombuffer(raw, dtype).reshape(self.shape(tensor))

    def shape(self, tensor: int) -> tuple[int, ...]:
        shape = self.tensors[tensor].shape
        return () if shape is None else tuple(int(d) for d in shape)

    def type_name(self, tensor: int) -> str:
        return _names("TensorType")[self.tensors[tensor].type]

    def name(self, tensor: int) -> str:
        name = (self.tensors[tensor].name or b"").decode(errors="replace").split(";")[0]
        return f"'{name}'" if name else f"tensor {tensor}"

    def zero_point(self, tensor: int) -> int:
        quantization = self.tensors[tensor].quantization
        points = None if quantization is None else quantization.zeroPoint
        return 0 if points is None or not len(points) else int(points[0])


@dataclasses.dataclass(frozen=True, eq=False)
class _Op:
    graph: _Graph
    index: int
    raw: object  # schema.OperatorT

    @functools.cached_property
    def code(self):
        return self.graph.model.operatorCodes[self.raw.opcodeIndex]

    @functools.cached_property
    def name(self) -> str:
        """The builtin's name as the compiler prints it (CUSTOM for custom ops)."""
        builtin = max(self.code.builtinCode, self.code.deprecatedBuiltinCode)
        return "CUSTOM" if builtin == _schema().BuiltinOperator.CUSTOM else litert.op_name(self.code)

    @functools.cached_property
    def operands(self) -> list[int | None]:
        """Input tensors by position (None for an optional input left out)."""
        raw = self.raw.inputs if self.raw.inputs is not None else []
        return [int(t) if t >= 0 else None for t in raw]

    @property
    def inputs(self) -> list[int]:
        return [t for t in self.operands if t is not None]

    @property
    def outputs(self) -> list[int]:
        return [int(t) for t in (self.raw.outputs if self.raw.outputs is not None else [])]

    def option(self, name: str, default=0):
        """A builtin option (e.g. "fusedActivationFunction"), or `default` where the op has none."""
        return getattr(self.raw.builtinOptions, name, default)

    def operand(self, position: int) -> int | None:
        return self.operands[position] if position < len(self.operands) else None

    def const(self, position: int) -> np.ndarray | None:
        tensor = self.operand(position)
        return None if tensor is None else self.graph.value(tensor)

    def in_shape(self, position: int = 0) -> tuple[int, ...]:
        tensor = self.operand(position)
        return () if tensor is None else self.graph.shape(tensor)

    def out_shape(self, position: int = 0) -> tuple[int, ...]:
        return self.graph.shape(self.outputs[position])

    def activations(self) -> list[int]:
        """The data the op computes on: every output, and the inputs computed at run time that
        are not parameters or sizes (those have rules of their own)."""
        own_rules = PARAMETERS.get(self.name, ()) + SIZE_OPERANDS.get(self.name, ())
        inputs = [t for p, t in enumerate(self.operands) if t is not None and p not in own_rules
                  and not self.graph.is_constant(t)]
        return inputs + self.outputs


# --- Checks behind the table's "Known limitations": None when met, else what breaks it --------


def _batch_axis(rank: int) -> int | None:
    """The table's "batch dimension": axis 0 of a 4-D (NHWC) tensor."""
    return 0 if rank == 4 else None


def _touches_batch(op: _Op, axes_at: int, tensor_at: int) -> bool:
    """Whether the constant axes at input `axes_at` include the batch axis of input `tensor_at`."""
    rank, axes = len(op.in_shape(tensor_at)), op.const(axes_at)
    return axes is not None and _batch_axis(rank) in {int(a) % rank for a in np.ravel(axes)}


def _one_dimensional(shape: tuple[int, ...]) -> bool:
    return sum(d > 1 for d in shape) <= 1


def _no_fused_activation(op: _Op) -> str | None:
    function = op.option("fusedActivationFunction")
    return f"has a fused {_names('ActivationFunctionType')[function]}" if function else None


def _same_dilation(op: _Op) -> str | None:
    h, w = op.option("dilationHFactor", 1), op.option("dilationWFactor", 1)
    return f"dilates {h} in y but {w} in x" if h != w else None


def _no_dilation(op: _Op) -> str | None:
    h, w = op.option("dilationHFactor", 1), op.option("dilationWFactor", 1)
    return f"dilates its kernel {h}x{w}" if (h, w) != (1, 1) else None


def _constants_only_zero_padding(op: _Op) -> str | None:
    constants = [t for t in op.inputs if op.graph.is_constant(t)]
    if not constants:
        return None
    if len(op.inputs) != 2:
        return f"has a constant among {len(op.inputs)} inputs"
    tensor = constants[0]
    if np.any(op.graph.value(tensor) != op.graph.zero_point(tensor)):
        return f"has a constant input {op.graph.name(tensor)} that is not all zeros"
    return None


def _default_weights(op: _Op) -> str | None:
    weights = op.option("weightsFormat")
    return f"has {_names('FullyConnectedOptionsWeightsFormat')[weights]} weights" if weights else None


def _one_dimensional_output(op: _Op) -> str | None:
    shape = op.out_shape()
    return None if _one_dimensional(shape) else f"output {list(shape)} is not one-dimensional"


def _one_dimensional_input(op: _Op) -> str | None:
    shape = op.in_shape()
    return None if _one_dimensional(shape) else f"input {list(shape)} is not one-dimensional"


def _at_most_16000(op: _Op) -> str | None:
    size = int(np.prod(op.in_shape()))
    return f"input has {size:,} elements" if size > 16000 else None


def _mean_axes(op: _Op) -> str | None:
    shape, axes = op.in_shape(), op.const(1)
    if axes is None:
        return None  # computed axes: the static-sizes rule decides
    axes = {int(a) % len(shape) for a in np.ravel(axes)}
    if _batch_axis(len(shape)) in axes:
        return "reduces the batch dimension"
    if len(shape) - 1 in axes and shape[-1] % 4:
        return f"reduces z, whose size {shape[-1]} is not a multiple of 4"
    return None


def _mean_xy_only(op: _Op) -> str | None:
    shape, axes = op.in_shape(), op.const(1)
    if axes is None or len(shape) != 4:
        return None
    axes = {int(a) % 4 for a in np.ravel(axes)}
    return None if axes <= {1, 2} else f"reduces axes {sorted(axes)}, not only y and x"


def _reduction_spares_batch(op: _Op) -> str | None:
    return "operates on the batch dimension" if _touches_batch(op, 1, 0) else None


def _split_spares_batch(op: _Op) -> str | None:
    return "splits the batch dimension" if _touches_batch(op, 0, 1) else None


def _pack_spares_batch(op: _Op) -> str | None:
    rank = len(op.out_shape())
    return "packs along the batch dimension" if op.option("axis") % rank == _batch_axis(rank) else None


def _pad_spares_batch(op: _Op) -> str | None:
    paddings = op.const(1)
    if paddings is None or _batch_axis(len(op.in_shape())) is None:
        return None
    return "pads the batch dimension" if np.any(paddings[0]) else None


def _pad_xy_only(op: _Op) -> str | None:
    paddings = op.const(1)
    if paddings is None or len(op.in_shape()) != 4:
        return None
    return "pads beyond y and x" if np.any(paddings[[0, 3]]) else None


def _alpha_innermost(op: _Op) -> str | None:
    shape = op.in_shape(1)
    if any(d > 1 for d in shape[:-1]):
        return f"alpha {list(shape)} varies beyond its innermost dimension"
    return None


def _unit_strides(op: _Op) -> str | None:
    strides = op.const(3)
    if strides is not None and np.any(strides != 1):
        return f"has strides {np.ravel(strides).tolist()}"
    if op.option("ellipsisMask") or op.option("newAxisMask"):
        return "has an ellipsis or new-axis mask"
    return None


def _squeezes_leading_ones(op: _Op) -> str | None:
    shape, listed = op.in_shape(), op.option("squeezeDims", None)
    dims = {int(d) % len(shape) for d in listed} if listed is not None and len(listed) else {
        i for i, d in enumerate(shape) if d == 1}
    first_large = next((i for i, d in enumerate(shape) if d > 1), len(shape))
    if max(dims, default=-1) > first_large:
        return f"squeezes {sorted(dims)} of {list(shape)}, not only leading 1s"
    return None


def _three_dimensional(op: _Op) -> str | None:
    shape = op.in_shape()
    return f"input {list(shape)} is not 3-dimensional" if len(shape) == 4 and shape[0] != 1 else None


# --- The supported-operations table, as data ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Limit:
    """A condition from a row's "Known limitations", in the table's words, and the check that
    decides it offline. Without a check it turns on sizes the compiler does not publish, and is
    reported as a caveat of the ops it concerns."""

    wording: str
    check: Callable[[_Op], str | None] | None = None
    status: str = OTHERWISE  # the compiler's words when an op breaks it (where logs show them)


@dataclasses.dataclass(frozen=True)
class Row:
    """A row of the supported-operations table: the operation as the table names it, the Edge
    TPU runtime it needs ("All", "≤12", "13+", "14+"), and its known limitations."""

    name: str
    runtime: str = "All"
    limits: tuple[Limit, ...] = ()

    def applies_to(self, runtime: int) -> bool:
        if self.runtime == "All":
            return True
        if self.runtime.startswith("≤"):
            return runtime <= int(self.runtime[1:])
        return runtime >= int(self.runtime.rstrip("+"))


NO_FUSED = Limit("No fused activation function.", _no_fused_activation)
SAME_DILATION = Limit("Must use the same dilation in x and y dimensions.", _same_dilation)
NOT_BATCH = Limit("Cannot operate on the batch dimension.", _reduction_spares_batch)
RESIZE = (Limit("Input/output is a 3-dimensional tensor.", _three_dimensional),
          Limit("Depending on input/output size, this operation may not be mapped to the Edge TPU "
                "to avoid loss in precision."))
UNIDIRECTIONAL = Limit("Unidirectional LSTM only.")  # bidirectional LSTM has no row at all

# Keyed by the TFLite builtin each row describes.
SUPPORTED: dict[str, tuple[Row, ...]] = {
    "ADD": (Row("Add"),),
    "AVERAGE_POOL_2D": (Row("AveragePool2d", limits=(NO_FUSED,)),),
    "CONCATENATION": (Row("Concatenation", limits=(NO_FUSED, Limit(
        "If any input is a compile-time constant tensor, there must be only 2 inputs, and this "
        "constant tensor must be all zeroes (effectively, a zero-padding op).",
        _constants_only_zero_padding))),),
    "CONV_2D": (Row("Conv2d", limits=(SAME_DILATION,)),),
    "DEPTHWISE_CONV_2D": (
        Row("DepthwiseConv2d", "≤12", (Limit("Dilated conv kernels are not supported.",
                                              _no_dilation),)),
        Row("DepthwiseConv2d", "13+", (SAME_DILATION,)),
    ),
    "EXPAND_DIMS": (Row("ExpandDims", "13+"),),
    "FULLY_CONNECTED": (Row("FullyConnected", limits=(
        Limit("Only the default format is supported for fully-connected weights.", _default_weights),
        Limit("Output tensor is one-dimensional.", _one_dimensional_output, TWO_D_OUTPUT))),),
    "L2_NORMALIZATION": (Row("L2Normalization"),),
    "LOGISTIC": (Row("Logistic"),),
    "LSTM": (Row("LSTM", "14+", (UNIDIRECTIONAL,)),),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (Row("LSTM", "14+", (UNIDIRECTIONAL,)),),
    "MAXIMUM": (Row("Maximum"),),
    "MAX_POOL_2D": (Row("MaxPool2d", limits=(NO_FUSED,)),),
    "MEAN": (
        Row("Mean", "≤12", (Limit("No reduction in batch dimension. Supports reduction along x- "
                                  "and/or y-dimensions only.", _mean_xy_only),)),
        Row("Mean", "13+", (Limit("No reduction in batch dimension. If a z-reduction, the "
                                  "z-dimension must be multiple of 4.", _mean_axes),)),
    ),
    "MINIMUM": (Row("Minimum"),),
    "MUL": (Row("Mul"),),
    "PACK": (Row("Pack", "13+", (Limit("No packing in batch dimension.", _pack_spares_batch),)),),
    "PAD": (
        Row("Pad", "≤12", (Limit("Supports padding along x- and/or y-dimensions only.",
                                 _pad_xy_only),)),
        Row("Pad", "13+", (Limit("No padding in batch dimension.", _pad_spares_batch),)),
    ),
    "PRELU": (Row("PReLU", "13+", (Limit("Alpha must be 1-dimensional (only the innermost "
                                         "dimension can be >1 size).", _alpha_innermost),)),),
    "QUANTIZE": (Row("Quantize", "13+"),),
    "REDUCE_MAX": (Row("ReduceMax", "14+", (NOT_BATCH,)),),
    "REDUCE_MIN": (Row("ReduceMin", "14+", (NOT_BATCH,)),),
    "RELU": (Row("ReLU"),),
    "RELU6": (Row("ReLU6"),),
    "RELU_N1_TO_1": (Row("ReLUN1To1"),),
    "RESHAPE": (Row("Reshape", limits=(Limit("Certain reshapes might not be mapped for large "
                                             "tensor sizes."),)),),
    "RESIZE_BILINEAR": (Row("ResizeBilinear", limits=RESIZE),),
    "RESIZE_NEAREST_NEIGHBOR": (Row("ResizeNearestNeighbor", limits=RESIZE),),
    "RSQRT": (Row("Rsqrt", "14+"),),
    "SLICE": (Row("Slice"),),
    "SOFTMAX": (Row("Softmax", limits=(
        Limit("Supports only 1-D input tensor", _one_dimensional_input, TWO_D_OUTPUT),
        Limit("with a max of 16,000 elements.", _at_most_16000))),),
    "SPACE_TO_DEPTH": (Row("SpaceToDepth"),),
    "SPLIT": (Row("Split", limits=(Limit("No splitting in batch dimension.", _split_spares_batch),)),),
    "SQUARED_DIFFERENCE": (Row("SquaredDifference", "14+"),),
    "SQUEEZE": (
        Row("Squeeze", "≤12", (Limit("Supported only when input tensor dimensions that have "
                                     "leading 1s (that is, no relayout needed).",
                                     _squeezes_leading_ones),)),
        Row("Squeeze", "13+"),
    ),
    "STRIDED_SLICE": (Row("StridedSlice", limits=(Limit(
        "Supported only when all strides are equal to 1 (that is, effectively a Stride op), and "
        "with ellipsis-axis-mask == 0, and new-axis-max == 0.", _unit_strides),)),),
    "SUB": (Row("Sub"),),
    "SUM": (Row("Sum", "13+", (NOT_BATCH,)),),
    "TANH": (Row("Tanh"),),
    "TRANSPOSE": (Row("Transpose", "14+"),),
    "TRANSPOSE_CONV": (Row("TransposeConv", "13+"),),
}

# Operands that are model parameters, and operands that fix the size of an op's output.
PARAMETERS = {"CONV_2D": (1, 2), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2),
              "TRANSPOSE_CONV": (1, 3), "PRELU": (1,)}
SIZE_OPERANDS = {
    "RESHAPE": (1,), "RESIZE_BILINEAR": (1,), "RESIZE_NEAREST_NEIGHBOR": (1,), "TILE": (1,),
    "BROADCAST_TO": (1,), "FILL": (0,), "SLICE": (1, 2), "STRIDED_SLICE": (1, 2, 3), "PAD": (1,),
    "PADV2": (1,), "MIRROR_PAD": (1,), "TRANSPOSE": (1,), "MEAN": (1,), "SUM": (1,),
    "REDUCE_MAX": (1,), "REDUCE_MIN": (1,), "REDUCE_PROD": (1,), "REDUCE_ANY": (1,),
    "EXPAND_DIMS": (1,), "SPLIT": (0,), "SPLIT_V": (1, 2), "TRANSPOSE_CONV": (0,),
    "RANGE": (0, 1, 2), "ONE_HOT": (1,),
}
DATA_SIZED = {"WHERE", "UNIQUE", "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5"}


# --- The model requirements: every op, before its row -----------------------------------------


def _quantizes_from_float(op: _Op) -> str | None:
    """Published logs (mnist4, the MobileNet V2 PTQ log): the QUANTIZE that turns a float input
    into integers stays on the CPU, "otherwise supported", and the ops after it map."""
    if op.name == "QUANTIZE" and op.graph.type_name(op.inputs[0]).startswith("FLOAT"):
        return "converts a float input to integers, which the compiler leaves to the CPU"
    return None


def _eight_bit(op: _Op) -> str | None:
    for tensor in op.activations():
        if op.graph.type_name(tensor) not in ("INT8", "UINT8"):
            return f"{op.graph.name(tensor)} is {op.graph.type_name(tensor).lower()}"
    for tensor in op.inputs:  # weights are 8-bit; biases and sizes int32
        stored = op.graph.type_name(tensor)
        if op.graph.is_constant(tensor) and stored not in ("INT8", "UINT8", "INT32", "INT64"):
            return f"constant {op.graph.name(tensor)} is {stored.lower()}"
    return None


def _in_table(op: _Op) -> str | None:
    rows = SUPPORTED.get(op.name)
    if not rows:
        custom = f" ({litert.op_name(op.code)})" if op.name == "CUSTOM" else ""
        return f"{op.name}{custom} is not in the supported-operations table"
    if not any(row.applies_to(op.graph.runtime) for row in rows):
        needs = " or ".join(row.runtime for row in rows)
        return f"{rows[0].name} needs Edge TPU runtime {needs}, not {op.graph.runtime}"
    return None


def rank_supported(shape) -> bool:
    """Up to 3 dimensions, or more when only the 3 innermost are larger than 1."""
    return all(int(d) <= 1 for d in list(shape)[:-3])


def _rank(op: _Op) -> str | None:
    for tensor in op.activations():
        if not rank_supported(op.graph.shape(tensor)):
            return f"{op.graph.name(tensor)} is {list(op.graph.shape(tensor))}"
    return None


def _computed(op: _Op, positions: tuple[int, ...]) -> str | None:
    """The first of these operands that is computed at run time instead of stored."""
    for position in positions:
        tensor = op.operand(position)
        if tensor is None or op.graph.is_constant(tensor):
            continue
        source = op.graph.producer.get(tensor)
        made = ("a model input" if source is None
                else f"computed by op {source} ({op.graph.ops[source].name})")
        return f"input {position} ({op.graph.name(tensor)}) is {made}"
    return None


def _constant_parameters(op: _Op) -> str | None:
    return _computed(op, PARAMETERS.get(op.name, ()))


def _static_sizes(op: _Op) -> str | None:
    return _computed(op, SIZE_OPERANDS.get(op.name, ()))


@dataclasses.dataclass(frozen=True)
class Requirement:
    """A rule every op must meet, in the docs' words (or the logs', where marked), with the
    compiler's status for ops that break it."""

    id: str
    wording: str
    status: str
    check: Callable[[_Op], str | None] | None = None


# In the order the compiler's statuses imply: a float DEQUANTIZE is a data-type problem
# (mnist4 log), not an unsupported op.
REQUIREMENTS = (
    Requirement("quantize-from-float", "(Published logs.) The QUANTIZE of a float input is not "
                "mapped.", OTHERWISE, _quantizes_from_float),
    Requirement("quantized", "Tensor parameters are quantized (8-bit fixed-point numbers; int8 or "
                "uint8).", UNSUPPORTED_TYPE, _eight_bit),
    Requirement("supported-op", "The model uses only the operations supported by the Edge TPU.",
                UNSUPPORTED_OP, _in_table),
    Requirement("rank", "Tensors are either 1-, 2-, or 3-dimensional. If a tensor has more than 3 "
                "dimensions, then only the 3 innermost dimensions may have a size greater than 1.",
                UNSUPPORTED_RANK, _rank),
    Requirement("constant-parameters", "Model parameters (such as bias tensors) are constant at "
                "compile-time.", NOT_CONSTANT, _constant_parameters),
    Requirement("static-sizes", "Tensor sizes are constant at compile-time (no dynamic sizes).",
                NOT_CONSTANT, _static_sizes),
)
SINGLE_PARTITION = Requirement(
    "single-partition", "The Edge TPU compiler cannot partition the model more than once, so as "
    "soon as an unsupported operation occurs, that operation and everything after it executes on "
    "the CPU, even if supported operations occur later.", SECOND_SUBGRAPH)  # decided by _place


def _grouped_convolution(op: _Op) -> str | None:
    """Not in the table: TFLite writes a grouped convolution as one CONV_2D (opcode version 6)
    only since after compiler 16.0, which may well answer "Operation version not supported"."""
    if op.name != "CONV_2D" or len(op.in_shape()) != 4 or len(op.in_shape(1)) != 4:
        return None
    depth, filter_depth = op.in_shape()[-1], op.in_shape(1)[-1]
    if depth == filter_depth:
        return None
    return (f"grouped CONV_2D ({depth // filter_depth} groups, opcode version {op.code.version}) "
            "is newer than compiler 16.0; the table does not cover it")


def _caveats(op: _Op) -> list[str]:
    """What may still keep a mapped op off the Edge TPU."""
    row = next((r for r in SUPPORTED.get(op.name, ()) if r.applies_to(op.graph.runtime)), None)
    unchecked = [f"{row.name}: {limit.wording} (not decidable offline)"
                 for limit in (row.limits if row else ()) if limit.check is None]
    grouped = _grouped_convolution(op)
    return ([grouped] if grouped else []) + unchecked


# --- Deciding each op --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Verdict:
    rule: str  # a requirement's id, or "table:<OP>" for a row's limit
    status: str
    reason: str


def _judge(op: _Op) -> Verdict | None:
    """None when the op itself meets every rule; else the first rule it breaks."""
    for requirement in REQUIREMENTS:
        why = requirement.check(op)
        if why:
            return Verdict(requirement.id, requirement.status, why)
    row = next(row for row in SUPPORTED[op.name] if row.applies_to(op.graph.runtime))
    for limit in row.limits:
        why = limit.check(op) if limit.check else None
        if why:
            return Verdict(f"table:{op.name}", limit.status, f"{row.name} {why} ({limit.wording})")
    return None


def _place(graph: _Graph, verdicts: list[Verdict | None]):
    """Where each op runs under the single partition ([(where, cause)] by op), and the op that
    ends the Edge TPU part.

    Each op gets where it runs ("edgetpu", or "cpu before" / "cpu after" the Edge TPU part) and
    why it is on the CPU: "unsupported" (it breaks a rule) or "single-partition" (it is supported
    but depends on an op that runs on the CPU after the Edge TPU part started).

    "After" is read along the data flow. Published logs show an unsupported op fed by nothing
    mapped (the QUANTIZE of a float input) running on the CPU ahead of a fully mapped rest
    (mnist4, the MobileNet V2 log), so such ops do not end the part; that ops independent of the
    one ending it still map is an inference from the same single-subgraph rule.
    """
    side: dict[int, str] = {}  # tensor -> where its producer runs; model inputs: absent
    placed: list[tuple[str, str | None]] = []
    cut = None
    for op, verdict in zip(graph.ops, verdicts, strict=True):
        sources = {side.get(t) for t in op.inputs}
        if "cpu after" in sources:
            where, cause = "cpu after", ("unsupported" if verdict else "single-partition")
        elif verdict is None:
            where, cause = "edgetpu", None
        elif "edgetpu" in sources:
            where, cause = "cpu after", "unsupported"
            cut = op.index if cut is None else cut
        else:
            where, cause = "cpu before", "unsupported"
        placed.append((where, cause))
        side.update((t, where) for t in op.outputs)
    return placed, cut


def _dynamic_sizes(graph: _Graph) -> tuple[set[int], list[int]]:
    """Tensors whose size is known only at run time, and the ops that make them so.

    Compiler 16.0 loads the model in a TFLite interpreter whose Edge TPU delegate refuses
    dynamic-sized tensors, and the whole compilation fails (google-coral/edgetpu#829). A batch
    left as -1 in the shape signature alone does no harm: logs of such models (mnist4, mnist9 in
    tests/data/edgetpu) show every op mapped, compiled at the stored size.
    """
    dynamic: set[int] = set()
    origins = []
    for op in graph.ops:
        if op.name in DATA_SIZED or _static_sizes(op):
            origins.append(op.index)
            dynamic.update(op.outputs)
        elif any(t in dynamic for t in op.inputs):
            dynamic.update(op.outputs)
    return dynamic, origins


@dataclasses.dataclass
class OpRecord:
    index: int
    operator: str  # as the compiler prints it
    mapped: bool
    status: str  # in the compiler's words
    rule: str | None  # what decides it (None when mapped)
    reason: str
    where: str  # "edgetpu", or "cpu before" / "cpu after" the Edge TPU part
    cause: str | None  # on the CPU: "unsupported", "single-partition" or "compile-failure"
    caveats: list[str] = dataclasses.field(default_factory=list)  # mapped: what may still fail


@dataclasses.dataclass
class Analysis:
    records: list[OpRecord]
    runtime: int
    cut: int | None  # the op that ends the Edge TPU part
    compile_error: str | None = None
    dynamic_from: int | None = None  # the first op that makes tensor sizes dynamic
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def edgetpu_operations(self) -> int:
        return sum(r.mapped for r in self.records)

    @property
    def cpu_operations(self) -> int:
        return len(self.records) - self.edgetpu_operations

    @property
    def fully_mapped(self) -> bool:
        return self.cpu_operations == 0

    def first(self, cause: str = "unsupported") -> OpRecord | None:
        """The first op, in execution order, on the CPU for this cause."""
        return next((r for r in self.records if r.cause == cause), None)

    def operator_table(self) -> list[tuple[str, int, str]]:
        """(operator, count, status) rows as the compiler's log has them, first seen first."""
        counts = collections.Counter((r.operator, r.status) for r in self.records)
        return [(op, n, status) for (op, status), n in counts.items()]

    def to_json(self) -> dict:
        """A JSON-ready dict: the counts, the compiler-style table and every op's record."""
        return {
            "rules": DOCS,
            "edgetpu_runtime": self.runtime,
            "total_operations": len(self.records),
            "edgetpu_operations": self.edgetpu_operations,
            "cpu_operations": self.cpu_operations,
            "cut": self.cut,
            "compile_error": self.compile_error,
            "dynamic_from": self.dynamic_from,
            "operators": [{"operator": op, "count": n, "status": status}
                          for op, n, status in self.operator_table()],
            "ops": [dataclasses.asdict(r) for r in self.records],
            "notes": self.notes,
        }


def analyze(content: bytes, runtime: int = LATEST_RUNTIME) -> Analysis:
    """Decides, for every op of the main subgraph in execution order, whether the Edge TPU
    compiler targeting Edge TPU runtime `runtime` would map it, and by which rule.

    Raises ValueError when `content` is not a .tflite model.
    """
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise ValueError("not a .tflite model (no TFL3 file identifier)")
    graph = _Graph(content, runtime)
    verdicts = [_judge(op) for op in graph.ops]
    placed, cut = _place(graph, verdicts)
    records = []
    for op, verdict, (where, cause) in zip(graph.ops, verdicts, placed, strict=True):
        if verdict:
            rule, status, reason = verdict.rule, verdict.status, verdict.reason
        elif cause == "single-partition":
            rule, status = SINGLE_PARTITION.id, SINGLE_PARTITION.status
            reason = "supported, but it depends on an op that runs on the CPU"
        else:
            rule, status, reason = None, MAPPED, "meets every rule"
        records.append(OpRecord(op.index, op.name, cause is None, status, rule, reason, where,
                                cause, _caveats(op) if cause is None else []))
    analysis = Analysis(records, runtime, cut, notes=_notes(graph))
    _fail_on_dynamic_sizes(graph, analysis)
    return analysis


def _fail_on_dynamic_sizes(graph: _Graph, analysis: Analysis) -> None:
    """With dynamic-sized tensors the compiler refuses the model: nothing maps."""
    dynamic, origins = _dynamic_sizes(graph)
    if not origins:
        return
    first = origins[0]
    analysis.compile_error, analysis.dynamic_from = DYNAMIC_SIZE_ERROR, first
    analysis.notes.insert(0, f"{len(dynamic)} tensors have sizes known only at run time, from op "
                             f"{first} ({graph.ops[first].name}) on.")
    for record in analysis.records:
        if record.cause in (None, "single-partition"):
            record.mapped, record.status, record.cause = False, NOT_COMPILED, "compile-failure"
            record.rule, record.where, record.caveats = "static-sizes", "cpu after", []
            record.reason = f"the model has dynamic-sized tensors (from op {first})"


def _notes(graph: _Graph) -> list[str]:
    notes = []
    if len(graph.model.subgraphs) > 1:
        notes.append(f"Only the main subgraph is analysed; {len(graph.model.subgraphs) - 1} more "
                     "hold control-flow bodies.")
    unknown = sum(1 for t in graph.tensors
                  if t.shapeSignature is not None and any(int(d) < 0 for d in t.shapeSignature))
    if unknown:
        notes.append(f"{unknown} tensors leave a dimension unknown (-1) in their shape signature; "
                     "the compiler compiles the stored size (published logs of such models map "
                     "every op).")
    return notes


# --- The compiler's log: printing ours, reading its --------------------------------------------


def format_summary(analysis: Analysis, model: str | None = None) -> str:
    """The analysis in the shape of edgetpu_compiler's summary and operation log, then where
    the Edge TPU part ends and why."""
    title = f"Edge TPU compatibility of {model}" if model else "Edge TPU compatibility"
    lines = [f"{title}, offline, by the rules of {DOCS} (Edge TPU runtime {analysis.runtime})", ""]
    if analysis.compile_error:
        lines += [analysis.compile_error, "Compilation would fail.", ""]
    elif analysis.cpu_operations:
        lines += [("Not all operations are supported by the Edge TPU: a percentage of the model "
                   "will run on the CPU, which is slower."), ""]
    lines += [f"Number of operations that will run on Edge TPU: {analysis.edgetpu_operations}",
              f"Number of operations that will run on CPU: {analysis.cpu_operations}", "",
              f"{'Operator':<31}{'Count':<11}Status", ""]
    lines += [f"{op:<31}{count:<11}{status}" for op, count, status in analysis.operator_table()]
    lines.append("")
    if analysis.dynamic_from is not None:
        record = analysis.records[analysis.dynamic_from]
        lines.append(f"Op {record.index} {record.operator} makes tensor sizes dynamic: "
                     f"{record.reason} [{record.rule}]; the compiler refuses the whole model.")
    else:
        lines += [f"Op {r.index} {r.operator} runs on the CPU before the Edge TPU part: "
                  f"{r.reason} [{r.rule}]." for r in analysis.records if r.where == "cpu before"]
        if analysis.cut is not None:
            record = analysis.records[analysis.cut]
            lines.append(f"Op {record.index} {record.operator} ends the Edge TPU part: "
                         f"{record.reason} [{record.rule}]; every op that depends on it runs on "
                         "the CPU.")
    caveats = collections.Counter(c for r in analysis.records for c in r.caveats)
    lines += [f"Caveat ({n} ops): {caveat}" for caveat, n in caveats.items()]
    lines += [f"Note: {note}" for note in analysis.notes]
    return "\n".join(lines).rstrip()


_SIZE_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
_LINES = {  # key: (the whole line, how to read the captured value)
    "compiler_version": (r"Edge TPU Compiler version (\S+)", str),
    "compile_ms": (r"Models? compiled successfully in (\d+) ms\.", int),
    "input_model": (r"Input(?: model)?: (.+)", str),
    "output_model": (r"Output(?: model)?: (.+)", str),
    "input_size_bytes": (r"Input size: (\S+)", "size"),
    "output_size_bytes": (r"Output size: (\S+)", "size"),
    "on_chip_memory_used_bytes":
        (r"On-chip memory used for caching model parameters: (\S+)", "size"),
    "on_chip_memory_remaining_bytes":
        (r"On-chip memory remaining for caching model parameters: (\S+)", "size"),
    "off_chip_memory_used_bytes":
        (r"Off-chip memory used for streaming uncached model parameters: (\S+)", "size"),
    "edgetpu_subgraphs": (r"Number of Edge TPU subgraphs: (\d+)", int),
    "total_operations": (r"Total number of operations: (\d+)", int),
    "operation_log": (r"Operation log: (.+)", str),
    "edgetpu_operations": (r"Number of operations that will run on Edge TPU: (\d+)", int),
    "cpu_operations": (r"Number of operations that will run on CPU: (\d+)", int),
}
_HEADER = re.compile(r"Operator\s+Count\s+Status")
_ROW = re.compile(r"(\S+)\s+(\d+)\s+(\S.*)")


def _bytes(text: str) -> int:
    number, unit = re.fullmatch(r"([\d.]+)(B|KiB|MiB|GiB)", text).groups()
    return round(float(number) * _SIZE_UNITS[unit])


def parse_compiler_log(text: str) -> dict:
    """Reads edgetpu_compiler's stdout and/or its operation log (*_edgetpu.log).

    Returns the figures printed (None where absent; sizes in bytes), `compiled` (True, False or
    None when the text does not say), `operators` as {operator, count, status} rows in the
    order printed, and `table`: "complete", "unmapped-only" (compiler 16 lists only the unmapped
    ops on stdout, then "... All other operators were mapped successfully") or "absent". An
    operation log alone prints no counts; they are then summed from its table.
    """
    parsed: dict = dict.fromkeys(_LINES)
    parsed.update(compiled=None, not_all_supported=False, table="absent", operators=[])
    table = None  # None, "header" (blank lines may follow it) or "rows" (a blank line ends them)
    for line in (raw.strip() for raw in text.splitlines()):
        if _HEADER.fullmatch(line):
            table, parsed["table"] = "header", "complete"
            continue
        if table:
            row = _ROW.fullmatch(line)
            if row:
                parsed["operators"].append(
                    {"operator": row[1], "count": int(row[2]), "status": row[3].strip()})
                table = "rows"
                continue
            if line.startswith("... All other operators were mapped"):
                parsed["table"] = "unmapped-only"
                continue
            if not line and table == "header":
                continue
            table = None
        _read_line(line, parsed)
    if parsed["table"] == "complete" and parsed["edgetpu_operations"] is None:
        mapped = sum(r["count"] for r in parsed["operators"] if r["status"] == MAPPED)
        parsed["edgetpu_operations"] = mapped
        parsed["cpu_operations"] = sum(r["count"] for r in parsed["operators"]) - mapped
    return parsed


def _read_line(line: str, parsed: dict) -> None:
    if line.startswith("Model successfully compiled but not all operations are supported"):
        parsed["not_all_supported"] = True
    elif line.startswith("Compilation failed"):
        parsed["compiled"] = False
    elif line == "Compilation succeeded!" or re.match(r"Models? compiled successfully", line):
        parsed["compiled"] = parsed["compiled"] is not False
    for key, (pattern, kind) in _LINES.items():
        match = re.fullmatch(pattern, line)
        if match and parsed[key] is None:  # co-compiled models: the first model's figures
            parsed[key] = _bytes(match[1]) if kind == "size" else kind(match[1])


def compare(analysis: Analysis, log: dict) -> list[dict]:
    """Where an analysis and a parsed compiler log disagree: the counts, whether it compiles,
    then every (operator, status) row the log shows. Empty when they agree."""
    found = []
    ours = {"total_operations": len(analysis.records),
            "edgetpu_operations": analysis.edgetpu_operations,
            "cpu_operations": analysis.cpu_operations}
    for key, value in ours.items():
        if log.get(key) is not None and log[key] != value:
            found.append({"what": key, "analysis": value, "log": log[key]})
    if log.get("compiled") is not None and log["compiled"] != (analysis.compile_error is None):
        found.append({"what": "compiled", "analysis": analysis.compile_error is None,
                      "log": log["compiled"]})
    if log.get("table", "absent") == "absent":
        return found
    shown = (lambda status: True) if log["table"] == "complete" else (lambda status: status != MAPPED)
    mine = collections.Counter({(op, status): n for op, n, status in analysis.operator_table()
                                if shown(status)})
    theirs = collections.Counter()
    for row in log["operators"]:
        theirs[(row["operator"], row["status"])] += row["count"]
    for key in sorted(mine.keys() | theirs.keys()):
        if mine[key] != theirs[key]:
            found.append({"what": f"{key[0]}: {key[1]}", "analysis": mine[key], "log": theirs[key]})
    return found


# --- Command line ------------------------------------------------------------------------------


def read_model_file(path: str) -> bytes:
    """A .tflite file's bytes; ValueError with one line for a missing or foreign file."""
    try:
        with open(path, "rb") as f:
            content = f.read()
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except OSError as err:
        raise ValueError(f"{path}: {err.strerror}") from None
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise ValueError(f"{path} is not a .tflite model (no TFL3 file identifier)")
    return content


def main(argv) -> int:
    from absl import flags

    from tfmobile_core import atomic, cli

    del argv
    FLAGS = flags.FLAGS
    if not FLAGS.model:
        raise cli.UsageError("name the model: python -m converters.edgetpu analyze MODEL.tflite")
    if FLAGS.json and os.path.exists(FLAGS.json) and os.path.exists(FLAGS.model) \
            and os.path.samefile(FLAGS.json, FLAGS.model):
        raise cli.UsageError(f"--json {FLAGS.json} is the model itself: writing the analysis "
                             "there would replace the model; name another file")
    try:
        analysis = analyze(read_model_file(FLAGS.model), runtime=FLAGS.runtime)
    except ValueError as err:
        raise cli.UsageError(str(err)) from None
    except Exception as err:  # noqa: BLE001 - a damaged flatbuffer fails anywhere in its reader
        raise cli.UsageError(f"{FLAGS.model} cannot be read as a .tflite model "
                             f"({type(err).__name__})") from None
    print(format_summary(analysis, os.path.basename(FLAGS.model)))
    if FLAGS.json:
        try:
            atomic.write_json(FLAGS.json, {"model": FLAGS.model, **analysis.to_json()})
        except OSError as err:
            raise cli.UsageError(f"cannot write {FLAGS.json}: {err.strerror}") from None
    return 0


def _command_line() -> None:
    """`analyze MODEL` as tfmobile's commands take it: the model becomes --model."""
    from absl import flags

    from tfmobile_core import cli

    program = "converters.edgetpu"
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help", "help"):
        print(__doc__.strip())
        sys.exit(0 if len(sys.argv) >= 2 else cli.USAGE_EXIT)
    if sys.argv[1] != "analyze":
        print(f"{program}: error: unknown command {sys.argv[1]!r}; the command is 'analyze'",
              file=sys.stderr)
        sys.exit(cli.USAGE_EXIT)
    flags.DEFINE_string("model", None, "The .tflite to analyse (or give it right after 'analyze').")
    flags.DEFINE_string("json", None, "Also write the analysis to this JSON file.")
    flags.DEFINE_integer("runtime", LATEST_RUNTIME, "Edge TPU runtime version to target: rows of "
                         "the supported-operations table apply from a version.", lower_bound=12,
                         upper_bound=LATEST_RUNTIME)
    rest = sys.argv[2:]
    if rest and not rest[0].startswith("-"):
        rest = [f"--model={rest[0]}", *rest[1:]]
    sys.argv = [f"{program} analyze", *rest]
    cli.run(main, program=f"{program} analyze", doc=__doc__)


if __name__ == "__main__":
    _command_line()
