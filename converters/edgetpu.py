"""Which operations of a .tflite the Edge TPU compiler would map, decided offline; and the
compiler itself, run on one model or several co-compiled, held against that decision.

  python -m converters.edgetpu analyze MODEL.tflite [--compiler_flags "-a"] [--json OUT.json]
  python -m converters.edgetpu compile MODEL.tflite [MORE.tflite ...] [--compiler_flags "-d -k 10"]

edgetpu_compiler runs on x86-64 Linux only and has not changed since 16.0 (2021), but its rules
are published. `analyze` applies them to any .tflite, op by op in execution order, and gives one
of four verdicts: the compiler will refuse the model (and why), it maps fully, it maps up to an
op, or it may not map because of a limit the compiler does not publish. `format_summary` prints
it in the shape of the compiler's own log and in its words, so that `compare` can hold it
beside the compiler's own output (read by converters/edgetpu_log.py); `compile` runs the
compiler and does so.

Sources (tests/data/edgetpu/SOURCES.md gives the addresses):
  * Coral, "TensorFlow models on the Edge TPU", https://coral.ai/docs/edgetpu/models-intro/:
    the model requirements, and the supported-operations table with its "Known limitations" as
    published for compiler 16.0, each row marked with the Edge TPU runtime it needs.
  * Published compiler output: the statuses' wording, and what the page leaves unsaid: a float
    input's QUANTIZE stays on the CPU without ending the Edge TPU part (`_quantizes_from_float`,
    `_place`); what makes the compiler refuse a whole model (`_refusal`: op versions newer than
    it reads, converters/edgetpu_versions.py; Flex ops; dynamic-sized tensors); versions it reads
    but does not map (`_version_mapped`); and the sizes seen unmapped (`SIZE_EVIDENCE`).

Limits nobody has published stay caveats; sizes beyond what published logs show mapped make the
verdict "may not map", never "maps fully".
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable

import numpy as np

from converters import edgetpu_versions as versions
from converters.edgetpu_flags import LATEST_RUNTIME, CompilerFlags
from converters import litert

DOCS = "https://coral.ai/docs/edgetpu/models-intro/"

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
AFTER_INTERMEDIATE = "Not compiled: it follows an intermediate tensor (-i)"
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

    def names(self, tensor: int) -> set[str]:
        """The names a tensor answers to: as stored, and its first part (TF joins the names of
        fused ops with ';')."""
        name = (self.tensors[tensor].name or b"").decode(errors="replace")
        return {name, name.split(";")[0]} - {""}

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
    """The table's "batch dimension": axis 0 of any tensor of two or more dimensions (NHWC,
    [N, C], [N, anchors, C], ...); a 1-D tensor has none."""
    return 0 if rank >= 2 else None


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
    if _touches_batch(op, 1, 0):
        return "reduces the batch dimension"
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
    if _pad_spares_batch(op):
        return "pads the batch dimension"
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
    # The compiler's words for the op where the row's runtime is not targeted (-m lower).
    older_runtime_status: str = UNSUPPORTED_OP

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
    # Compiler 2.0 targeting runtime 12 answered an int8 -> uint8 QUANTIZE "otherwise
    # supported" (google-coral/edgetpu#13), not "Operation not supported".
    "QUANTIZE": (Row("Quantize", "13+", older_runtime_status=OTHERWISE),),
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
_LSTM_PARAMETERS = (*range(1, 18), 20, 21, 22, 23)  # weights, peepholes, biases, projection, norms
PARAMETERS = {"CONV_2D": (1, 2), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2),
              "TRANSPOSE_CONV": (1, 3), "PRELU": (1,), "LSTM": _LSTM_PARAMETERS,
              "UNIDIRECTIONAL_SEQUENCE_LSTM": _LSTM_PARAMETERS}
# TFLite's integer LSTM kernel (8-bit activations and weights) keeps its cell state (operand 19)
# and its layer-norm coefficients (20-23) in int16 and needs them so: the 8-bit rule is about
# the tensors the op computes on, and the table's LSTM row is for that integer kernel.
SIXTEEN_BIT_OPERANDS = {"LSTM": (19, 20, 21, 22, 23),
                        "UNIDIRECTIONAL_SEQUENCE_LSTM": (19, 20, 21, 22, 23)}
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
    sixteen = {op.operand(p) for p in SIXTEEN_BIT_OPERANDS.get(op.name, ())} - {None}
    for tensor in op.activations():
        kind = op.graph.type_name(tensor)
        if kind not in ("INT8", "UINT8") and not (tensor in sixteen and kind == "INT16"):
            return f"{op.graph.name(tensor)} is {kind.lower()}"
    for tensor in op.inputs:  # weights are 8-bit; biases and sizes int32
        stored = op.graph.type_name(tensor)
        if op.graph.is_constant(tensor) and stored not in ("INT8", "UINT8", "INT32", "INT64") \
                and not (tensor in sixteen and stored == "INT16"):
            return f"constant {op.graph.name(tensor)} is {stored.lower()}"
    return None


def _in_table(op: _Op) -> str | None:
    rows = SUPPORTED.get(op.name)
    if not rows:
        custom = f" ({litert.op_name(op.code)})" if op.name == "CUSTOM" else ""
        return f"{op.name}{custom} is not in the supported-operations table"
    if not any(row.applies_to(op.graph.runtime) for row in rows):
        needs = " or ".join(row.runtime for row in rows)
        return (f"{rows[0].name} needs Edge TPU runtime {needs}, not {op.graph.runtime}",
                rows[0].older_runtime_status)
    return None


def _version_mapped(op: _Op) -> str | None:
    """A version of a supported op that the compiler reads but does not map (its log:
    "Operation version not supported"): the half-pixel RESIZE_* that TF2 writes."""
    newest = versions.MAPPED_UP_TO.get(op.name)
    if newest is None or op.code.version <= newest:
        return None
    why = [name for name, option in (("half_pixel_centers", "halfPixelCenters"),
                                      ("align_corners", "alignCorners")) if op.option(option, False)]
    detail = f" ({', '.join(f'{name}=True' for name in why)})" if why else ""
    return f"{op.name} version {op.code.version}{detail}; logs show it mapped up to version {newest}"


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


# --- Sizes the compiler does not publish --------------------------------------------------------
#
# "We can't say any concrete limits ... it varies from operation to operation" (Coral,
# google-coral/edgetpu#663). What the published cases do show is kept here: where an op of some
# size was seen unmapped, larger ones are predicted unmapped ("otherwise supported ... unspecified
# limitation"); between the largest seen mapped and that, or beyond anything seen mapped, the
# op "may not map".


@dataclasses.dataclass(frozen=True)
class SizeEvidence:
    """Published sizes for one op kind, in elements of `measure` ("input" or "output")."""

    measure: str
    mapped_up_to: int | None  # the largest seen mapped (None: none published)
    unmapped_from: int | None  # the smallest seen not mapped, or failing the compile
    source: str
    refuses: bool = False  # the unmapped case failed the whole compile instead

    def size(self, op: _Op) -> int:
        return int(np.prod(op.in_shape() if self.measure == "input" else op.out_shape()))


SIZE_EVIDENCE = {
    # MEAN over [1, 256, 128, 3] not mapped; split into [1, 64, 128, 3] pieces, mapped.
    "MEAN": SizeEvidence("input", 64 * 128 * 3, 256 * 128 * 3, "google-coral/edgetpu#461"),
    # A 60x152x90 concatenation: compiler 15 aborted ("Internal compiler error").
    "CONCATENATION": SizeEvidence("output", None, 60 * 152 * 90, "google-coral/edgetpu#309",
                                  refuses=True),
    # A fully-connected layer on 1x14400 inputs: "otherwise supported ... unspecified limitation".
    "FULLY_CONNECTED": SizeEvidence("input", None, 14400, "google-coral/edgetpu#663"),
    # An LSTM on (5, X) inputs: compiles below X = 900, fails above 1000 (per time step).
    "UNIDIRECTIONAL_SEQUENCE_LSTM": SizeEvidence("input", 5 * 900, 5 * 1000,
                                                 "google-coral/edgetpu#598", refuses=True),
}
# The largest activation tensor of the fully mapped models whose logs tests/data/edgetpu holds:
# EfficientNet-EdgeTPU-M's first fused block, [1, 120, 120, 128]. Larger ones map in some models
# and fail others ("Compilation failed due to large activation tensors in model", edgetpu#439,
# #512; 640 px YOLOv8 stops mapping early, ultralytics/ultralytics#4719), so they "may not map".
LARGEST_MAPPED_ACTIVATION = (120 * 120 * 128, "EfficientNet-EdgeTPU-M's log")


def _unmapped_size(op: _Op) -> str | None:
    """An op at least as large as one published unmapped (a table-row limit: sizes)."""
    evidence = SIZE_EVIDENCE.get(op.name)
    if evidence is None or evidence.unmapped_from is None or evidence.refuses:
        return None
    size = evidence.size(op)
    if size < evidence.unmapped_from:
        return None
    return (f"{evidence.measure} of {size:,} elements, where one of {evidence.unmapped_from:,} "
            f"was not mapped ({evidence.source})")


def _size_risks(op: _Op) -> list[str]:
    """Why a mapped op may still not map: a size beyond what published logs show mapped."""
    risks = []
    evidence = SIZE_EVIDENCE.get(op.name)
    if evidence is not None:
        size = evidence.size(op)
        if evidence.unmapped_from is not None and size >= evidence.unmapped_from:
            risks.append(f"{op.name} {evidence.measure} of {size:,} elements: one of "
                         f"{evidence.unmapped_from:,} failed the compile ({evidence.source})")
        elif evidence.mapped_up_to is not None and size > evidence.mapped_up_to:
            risks.append(f"{op.name} {evidence.measure} of {size:,} elements: published cases "
                         f"show {evidence.mapped_up_to:,} mapped and {evidence.unmapped_from:,} "
                         f"not ({evidence.source})")
    largest, where = LARGEST_MAPPED_ACTIVATION
    tensor = max(op.activations(), key=lambda t: np.prod(op.graph.shape(t)), default=None)
    if tensor is not None and np.prod(op.graph.shape(tensor)) > largest:
        risks.append(f"{op.name} {op.graph.name(tensor)} {list(op.graph.shape(tensor))} is larger "
                     f"than any activation in the fully mapped published logs ({largest:,} "
                     f"elements, {where})")
    return risks


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
    Requirement("op-version", "(Published logs.) Some versions of supported operations are "
                "not mapped.", VERSION, _version_mapped),
    Requirement("rank", "Tensors are either 1-, 2-, or 3-dimensional. If a tensor has more than 3 "
                "dimensions, then only the 3 innermost dimensions may have a size greater than 1.",
                UNSUPPORTED_RANK, _rank),
    Requirement("constant-parameters", "Model parameters (such as bias tensors) are constant at "
                "compile-time.", NOT_CONSTANT, _constant_parameters),
    Requirement("static-sizes", "Tensor sizes are constant at compile-time (no dynamic sizes).",
                NOT_CONSTANT, _static_sizes),
    Requirement("published-size", "(Published cases.) An op as large as one seen unmapped is not "
                "mapped.", OTHERWISE, _unmapped_size),
)
SINGLE_PARTITION = Requirement(
    "single-partition", "The Edge TPU compiler cannot partition the model more than once, so as "
    "soon as an unsupported operation occurs, that operation and everything after it executes on "
    "the CPU, even if supported operations occur later.", SECOND_SUBGRAPH)  # decided by _place


def _caveats(op: _Op) -> list[str]:
    """What may still keep a mapped op off the Edge TPU, where no size is published."""
    row = next((r for r in SUPPORTED.get(op.name, ()) if r.applies_to(op.graph.runtime)), None)
    return [f"{row.name}: {limit.wording} (not decidable offline)"
            for limit in (row.limits if row else ()) if limit.check is None]


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
        if why:  # a reason, or (reason, status) where the compiler words this case its own way
            reason, status = why if isinstance(why, tuple) else (why, requirement.status)
            return Verdict(requirement.id, status, reason)
    row = next(row for row in SUPPORTED[op.name] if row.applies_to(op.graph.runtime))
    for limit in row.limits:
        why = limit.check(op) if limit.check else None
        if why:
            return Verdict(f"table:{op.name}", limit.status, f"{row.name} {why} ({limit.wording})")
    return None


def _place(graph: _Graph, verdicts: list[Verdict | None], flags: CompilerFlags):
    """Where each op runs ([(where, cause)] by op), and the op that ends the Edge TPU part.

    Each op gets where it runs ("edgetpu", or "cpu before" / "cpu after" the Edge TPU part) and
    why it is on the CPU: "unsupported" (it breaks a rule), "single-partition" (it is supported
    but depends on an op that runs on the CPU after the Edge TPU part started) or
    "intermediate-tensors" (it follows a tensor named by -i).

    "After" is read along the data flow. Published logs show an unsupported op fed by nothing
    mapped (the QUANTIZE of a float input) running on the CPU ahead of a fully mapped rest
    (mnist4, the MobileNet V2 log), so such ops do not end the part; that ops independent of the
    one ending it still map is an inference from the same single-subgraph rule. With -a the
    single-subgraph rule is lifted: supported ops after an unsupported one map again.
    """
    stops = set(flags.intermediate_tensors)
    side: dict[int, str] = {}  # tensor -> where its producer runs; model inputs: absent
    after_stop: set[int] = set()  # tensors that follow an -i tensor
    placed: list[tuple[str, str | None]] = []
    cut = None
    for op, verdict in zip(graph.ops, verdicts, strict=True):
        sources = {side.get(t) for t in op.inputs}
        follows_stop = any(t in after_stop for t in op.inputs)
        if follows_stop:
            where, cause = "cpu after", "unsupported" if verdict else "intermediate-tensors"
        elif "cpu after" in sources and not flags.multiple_subgraphs:
            where, cause = "cpu after", ("unsupported" if verdict else "single-partition")
        elif verdict is None:
            where, cause = "edgetpu", None
        elif sources & {"edgetpu", "cpu after"}:
            where, cause = "cpu after", "unsupported"
            cut = op.index if cut is None else cut
        else:
            where, cause = "cpu before", "unsupported"
        placed.append((where, cause))
        side.update((t, where) for t in op.outputs)
        if follows_stop:
            after_stop.update(op.outputs)
        else:  # the -i tensors themselves: the op making one maps, those using it do not
            after_stop.update(t for t in op.outputs if stops & graph.names(t))
    return placed, cut


def _edgetpu_subgraphs(graph: _Graph, placed) -> int:
    """Edge TPU subgraphs: the groups of mapped ops joined by tensors between mapped ops."""
    group = {op.index: op.index
             for op, (where, _) in zip(graph.ops, placed, strict=True) if where == "edgetpu"}

    def root(i):
        while group[i] != i:
            group[i] = group[group[i]]
            i = group[i]
        return i

    for op in graph.ops:
        for tensor in op.inputs:
            source = graph.producer.get(tensor)
            if op.index in group and source in group:
                group[root(op.index)] = root(source)
    return len({root(i) for i in group})


# --- Whole-model refusals ----------------------------------------------------------------------

PARSE_ERROR = ("ERROR: Didn't find op for builtin opcode '{op}' version '{version}'. An older "
               "version of this builtin might be supported. Are you using an old TFLite binary "
               "with a newer model?")
FLEX_ERROR = ("ERROR: Regular TensorFlow ops are not supported by this interpreter. Make sure you "
              "apply/link the Flex delegate before inference.")


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why the compiler would refuse the whole model: nothing is compiled."""

    rule: str  # "op-version", "flex" or "static-sizes"
    op: int | None  # the first op it turns on (None: the model's metadata)
    reason: str
    error: str  # the compiler's first error line


def _refusal(graph: _Graph) -> Refusal | None:
    """The compiler's stages in order: reading the model (op versions its TFLite does not know:
    "Model could not be parsed"), preparing it in that TFLite (Flex ops, edgetpu#718), then
    the Edge TPU delegate (dynamic-sized tensors, edgetpu#829)."""
    for op in graph.ops:
        shipped = versions.first_release(op.name, op.code.version)
        if shipped and versions.readable(shipped) is False:
            return Refusal("op-version", op.index, f"{op.name} version {op.code.version} (first in "
                           f"TF {shipped}) is newer than compiler {versions.COMPILER} reads",
                           PARSE_ERROR.format(op=op.name, version=op.code.version))
    metadata = _metadata_runtime(graph)
    if metadata and versions.readable(metadata) is False and not any(
            versions.first_release(op.name, op.code.version) == metadata for op in graph.ops):
        return Refusal("op-version", None, f"the model's min_runtime_version metadata is TF "
                       f"{metadata}: an op version newer than compiler {versions.COMPILER} reads",
                       "ERROR: Didn't find op for builtin opcode")
    for op in graph.ops:
        if op.name == "CUSTOM" and litert.op_name(op.code).startswith("Flex"):
            return Refusal("flex", op.index, f"{litert.op_name(op.code)} is a TensorFlow (Flex) "
                           "op, which the compiler's TFLite cannot run", FLEX_ERROR)
    dynamic, origins = _dynamic_sizes(graph)
    if origins:
        first = origins[0]
        return Refusal("static-sizes", first, f"the model has dynamic-sized tensors ({len(dynamic)}"
                       f", from op {first} {graph.ops[first].name} on)", DYNAMIC_SIZE_ERROR)
    return None


def _metadata_runtime(graph: _Graph) -> str | None:
    """The `min_runtime_version` the converter wrote: the newest TF any op version needs."""
    for entry in graph.model.metadata or []:
        if entry.name == b"min_runtime_version":
            data = graph.model.buffers[entry.buffer].data
            text = bytes(np.asarray(data, np.uint8)).split(b"\0")[0].decode(errors="replace")
            return text or None
    return None


def _version_risks(graph: _Graph) -> list[str]:
    """Op versions from TF 2.6.0: between the newest the compiler is known to read and the
    oldest it is known to refuse."""
    risks = []
    for op in graph.ops:
        shipped = versions.first_release(op.name, op.code.version)
        if shipped and versions.readable(shipped) is None:
            risks.append(f"op {op.index} {op.name} version {op.code.version} first shipped in TF "
                         f"{shipped}: compiler {versions.COMPILER} is known to read TF 2.5.0's op "
                         "versions and to refuse some of 2.7.0's; this one is unknown")
    return risks


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
    # On the CPU: "unsupported", "single-partition", "intermediate-tensors" or "compile-failure".
    cause: str | None
    caveats: list[str] = dataclasses.field(default_factory=list)  # limits nobody published
    risks: list[str] = dataclasses.field(default_factory=list)  # mapped: beyond published sizes


# The four outcomes of an analysis.
REFUSED, MAPS_FULLY, MAPS_UP_TO, MAY_NOT_MAP = "refused", "maps fully", "maps up to", "may not map"


@dataclasses.dataclass
class Analysis:
    records: list[OpRecord]
    runtime: int
    cut: int | None  # the op that ends the Edge TPU part
    compile_error: str | None = None
    dynamic_from: int | None = None  # the first op that makes tensor sizes dynamic
    notes: list[str] = dataclasses.field(default_factory=list)
    refusal: Refusal | None = None
    risks: list[str] = dataclasses.field(default_factory=list)  # the model's own (op versions)
    flags: CompilerFlags = dataclasses.field(default_factory=CompilerFlags)
    edgetpu_subgraphs: int = 0

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

    def all_risks(self) -> list[str]:
        """Why the model may not map: its own (op versions), then each mapped op's (sizes)."""
        return self.risks + [f"op {r.index}: {risk}" for r in self.records for risk in r.risks]

    def outcome(self) -> tuple[str, str]:
        """(kind, sentence): the compiler will refuse the model, it maps fully, it maps up to an
        op, or it may not map because of a limit the compiler does not publish."""
        if self.refusal:
            at = f" (op {self.refusal.op})" if self.refusal.op is not None else ""
            return REFUSED, f"the compiler will refuse the model{at}: {self.refusal.reason}"
        mapped = self._mapped_part()
        risks = self.all_risks()
        if risks:
            more = f" (and {len(risks) - 1} more)" if len(risks) > 1 else ""
            return MAY_NOT_MAP, (f"may not map: unpublished limit: {risks[0]}{more}; by the "
                                 f"published rules it {mapped}")
        return (MAPS_FULLY if self.fully_mapped else MAPS_UP_TO), mapped

    def _mapped_part(self) -> str:
        if self.fully_mapped:
            return f"maps fully ({len(self.records)} ops)"
        ends = self.records[self.cut] if self.cut is not None else None
        before = [r for r in self.records if r.where == "cpu before"]
        text = (f"maps up to op {ends.index} {ends.operator} ({ends.reason})" if ends else
                f"maps from op {before[-1].index + 1} on")
        if before:
            text += (f"; {len(before)} op(s) before it run on the CPU (op {before[0].index} "
                     f"{before[0].operator}: {before[0].reason})")
        if self.flags.multiple_subgraphs and ends:
            text += f"; with -a, {self.edgetpu_operations} ops map in {self.edgetpu_subgraphs} " \
                    "Edge TPU subgraphs"
        return text

    def operator_table(self) -> list[tuple[str, int, str]]:
        """(operator, count, status) rows as the compiler's log has them, first seen first."""
        counts = collections.Counter((r.operator, r.status) for r in self.records)
        return [(op, n, status) for (op, status), n in counts.items()]

    def to_json(self) -> dict:
        """A JSON-ready dict: the verdict, the counts, the compiler-style table, every op."""
        kind, sentence = self.outcome()
        return {
            "rules": DOCS,
            "verdict": {"outcome": kind, "text": sentence},
            "edgetpu_runtime": self.runtime,
            "compiler_flags": self.flags.placement(),
            "total_operations": len(self.records),
            "edgetpu_operations": self.edgetpu_operations,
            "cpu_operations": self.cpu_operations,
            "edgetpu_subgraphs": self.edgetpu_subgraphs,
            "cut": self.cut,
            "compile_error": self.compile_error,
            "refusal": dataclasses.asdict(self.refusal) if self.refusal else None,
            "dynamic_from": self.dynamic_from,
            "risks": self.risks,
            "operators": [{"operator": op, "count": n, "status": status}
                          for op, n, status in self.operator_table()],
            "ops": [dataclasses.asdict(r) for r in self.records],
            "notes": self.notes,
        }


def analyze(content: bytes, runtime: int | None = None,
            flags: CompilerFlags | None = None) -> Analysis:
    """Decides, for every op of the main subgraph in execution order, whether edgetpu_compiler
    run with `flags` (by default its defaults; `runtime` overrides -m) would map it, and by
    which rule; and whether it would refuse the model as a whole.

    Raises ValueError when `content` is not a .tflite model.
    """
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise ValueError("not a .tflite model (no TFL3 file identifier)")
    flags = flags or CompilerFlags()
    if runtime is not None:
        flags = dataclasses.replace(flags, min_runtime_version=runtime)
    graph = _Graph(content, flags.min_runtime_version)
    verdicts = [_judge(op) for op in graph.ops]
    placed, cut = _place(graph, verdicts, flags)
    records = []
    for op, verdict, (where, cause) in zip(graph.ops, verdicts, placed, strict=True):
        if verdict:
            rule, status, reason = verdict.rule, verdict.status, verdict.reason
        elif cause == "single-partition":
            rule, status = SINGLE_PARTITION.id, SINGLE_PARTITION.status
            reason = "supported, but it depends on an op that runs on the CPU"
        elif cause == "intermediate-tensors":
            rule, status = "intermediate-tensors", AFTER_INTERMEDIATE
            reason = "it follows a tensor named by -i (--intermediate_tensors)"
        else:
            rule, status, reason = None, MAPPED, "meets every rule"
        mapped = cause is None
        records.append(OpRecord(op.index, op.name, mapped, status, rule, reason, where, cause,
                                _caveats(op) if mapped else [], _size_risks(op) if mapped else []))
    analysis = Analysis(records, flags.min_runtime_version, cut, notes=_notes(graph, flags),
                        risks=_version_risks(graph), flags=flags,
                        edgetpu_subgraphs=_edgetpu_subgraphs(graph, placed))
    _refuse(analysis, _refusal(graph))
    return analysis


def _refuse(analysis: Analysis, refusal: Refusal | None) -> None:
    """A refused model compiles nothing: every op stays on the CPU."""
    if refusal is None:
        return
    analysis.refusal, analysis.compile_error = refusal, refusal.error
    analysis.edgetpu_subgraphs, analysis.risks = 0, []
    if refusal.rule == "static-sizes":
        analysis.dynamic_from = refusal.op
        analysis.notes.insert(0, f"Tensor sizes are known only at run time: {refusal.reason}.")
    status = NOT_COMPILED if refusal.rule == "static-sizes" else f"Not compiled: {refusal.reason}"
    for record in analysis.records:
        if record.cause in (None, "single-partition", "intermediate-tensors"):
            record.mapped, record.status, record.cause = False, status, "compile-failure"
            record.rule, record.where, record.caveats, record.risks = refusal.rule, "cpu after", [], []
            record.reason = f"the compiler refuses the model: {refusal.reason}"


def _notes(graph: _Graph, flags: CompilerFlags) -> list[str]:
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
    if flags.num_segments > 1:
        notes.append(f"-n {flags.num_segments}: the compiler cuts the model into "
                     f"{flags.num_segments} segments, one compiled model each, where to cut being "
                     "its own choice (by parameter sizes); the counts here are for the whole model.")
    if flags.search_delegate:
        notes.append(f"-d: if a compile fails, the compiler retries stopping "
                     f"{flags.delegate_search_step} op(s) earlier each time; an op that would fail "
                     "it then runs on the CPU instead of failing the compile.")
    missing = set(flags.intermediate_tensors).difference(
        *(graph.names(t) for t in range(len(graph.tensors))))
    if missing:
        notes.append(f"-i names tensors the model does not have: {', '.join(sorted(missing))}.")
    return notes


# --- The compiler's log: printing ours, reading its --------------------------------------------


def format_summary(analysis: Analysis, model: str | None = None) -> str:
    """The verdict, then the analysis in the shape of edgetpu_compiler's summary and operation
    log, then where the Edge TPU part ends and why."""
    title = f"Edge TPU compatibility of {model}" if model else "Edge TPU compatibility"
    flags = " ".join(analysis.flags.args)
    lines = [f"{title}, offline, by the rules of {DOCS} (Edge TPU runtime {analysis.runtime}"
             + (f"; compiler options {flags}" if flags else "") + ")", "",
             f"Verdict: {analysis.outcome()[1]}.", ""]
    if analysis.compile_error:
        lines += [analysis.compile_error, "Compilation would fail.", ""]
    elif analysis.cpu_operations:
        lines += [("Not all operations are supported by the Edge TPU: a percentage of the model "
                   "will run on the CPU, which is slower."), ""]
    lines += [f"Number of Edge TPU subgraphs: {analysis.edgetpu_subgraphs}",
              f"Number of operations that will run on Edge TPU: {analysis.edgetpu_operations}",
              f"Number of operations that will run on CPU: {analysis.cpu_operations}", "",
              f"{'Operator':<31}{'Count':<11}Status", ""]
    lines += [f"{op:<31}{count:<11}{status}" for op, count, status in analysis.operator_table()]
    lines.append("")
    if analysis.refusal is None:
        lines += [f"Op {r.index} {r.operator} runs on the CPU before the Edge TPU part: "
                  f"{r.reason} [{r.rule}]." for r in analysis.records if r.where == "cpu before"]
        if analysis.cut is not None:
            record = analysis.records[analysis.cut]
            lines.append(f"Op {record.index} {record.operator} ends the Edge TPU part: "
                         f"{record.reason} [{record.rule}]; " + (
                             "supported ops after it map again (-a)." if
                             analysis.flags.multiple_subgraphs else
                             "every op that depends on it runs on the CPU."))
    lines += [f"May not map: {risk}" for risk in analysis.all_risks()]
    caveats = collections.Counter(c for r in analysis.records for c in r.caveats)
    lines += [f"Caveat ({n} ops): {caveat}" for caveat, n in caveats.items()]
    lines += [f"Note: {note}" for note in analysis.notes]
    return "\n".join(lines).rstrip()


def compare(analysis: Analysis, log: dict) -> list[dict]:
    """Where an analysis and a parsed compiler log disagree: the counts, whether it compiles,
    then every (operator, status) row the log shows. Empty when they agree."""
    found = []
    ours = {"total_operations": len(analysis.records),
            "edgetpu_operations": analysis.edgetpu_operations,
            "cpu_operations": analysis.cpu_operations,
            "edgetpu_subgraphs": analysis.edgetpu_subgraphs}
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


if __name__ == "__main__":
    from converters.edgetpu_cli import command_line

    command_line()
