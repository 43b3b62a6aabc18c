"""Running and reading .tflite models with the LiteRT interpreter.

`ai_edge_litert` is the maintained runtime; `tflite_runtime` is accepted where a board has
nothing else. `execution` is the one partition analysis: the converter's report uses it here,
and android_bench/device_runner.py, a single file that boards run without this package, holds
a copy that tests/test_layering.py keeps identical.
"""

from __future__ import annotations

import collections
import functools
import json

import numpy as np

from tfmobile_core.records import parse_json

EDGETPU_OP = "edgetpu-custom-op"


def interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # an older board image
        from tflite_runtime.interpreter import Interpreter
    return Interpreter


def load(model: bytes | str, num_threads: int = 1, *, reference_kernels: bool = False,
         keep_all_tensors: bool = False):
    """An allocated interpreter (with XNNPACK, LiteRT's default CPU delegate).

    `reference_kernels`: the builtin kernels alone, which announce nothing on stderr and fuse
    nothing away; `keep_all_tensors` makes every intermediate tensor readable after invoke()
    (it needs the reference kernels: XNNPACK would not keep them)."""
    Interpreter = interpreter_class()
    options = {"num_threads": num_threads}
    if reference_kernels or keep_all_tensors:
        from ai_edge_litert import interpreter as interpreter_lib

        options["experimental_op_resolver_type"] = \
            interpreter_lib.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if keep_all_tensors:
        options["experimental_preserve_all_tensors"] = True
    if isinstance(model, (bytes, bytearray)):
        interpreter = Interpreter(model_content=bytes(model), **options)
    else:
        interpreter = Interpreter(model_path=str(model), **options)
    interpreter.allocate_tensors()
    return interpreter


def set_input(interpreter, image: np.ndarray) -> None:
    """Sets one preprocessed float image as the batch-1 model's input, quantized with the
    input's scale and zero point where the input is an integer."""
    (inp,) = interpreter.get_input_details()
    x = image[None].astype(np.float32)
    if inp["dtype"] != np.float32:
        scale, zero = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        x = np.clip(np.round(x / scale + zero), info.min, info.max)
    interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]))


def run(interpreter, images: np.ndarray) -> np.ndarray:
    """Runs a batch-1 model over each image of `images` (float, already preprocessed)."""
    (out,) = interpreter.get_output_details()
    results = []
    for image in images:
        set_input(interpreter, image)
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])[0]
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        results.append(y)
    return np.stack(results)


def output_names(interpreter) -> dict[int, str]:
    """Output tensor index -> its key in the model's first signature (its tensor name where the
    model has no signature). Keys, not positions: the converter orders a SavedModel's outputs
    by rules of its own, and tensor names ("StatefulPartitionedCall:1") say nothing."""
    names = {d["index"]: d["name"] for d in interpreter.get_output_details()}
    signatures = interpreter.get_signature_list()
    if signatures:
        runner = interpreter.get_signature_runner(next(iter(signatures)))
        names.update({d["index"]: key for key, d in runner.get_output_details().items()
                      if d["index"] in names})
    return names


def run_outputs(interpreter, images: np.ndarray) -> dict[str, np.ndarray]:
    """run() for a model with several outputs: each output, dequantized as run() does, stacked
    over the images and keyed as output_names() says."""
    details = interpreter.get_output_details()
    names = output_names(interpreter)
    results = {names[d["index"]]: [] for d in details}
    for image in images:
        set_input(interpreter, image)
        interpreter.invoke()
        for d in details:
            y = interpreter.get_tensor(d["index"])[0]
            if d["dtype"] != np.float32 and d["quantization"][0]:  # not an unquantized int
                scale, zero = d["quantization"]
                y = (y.astype(np.float32) - zero) * scale
            results[names[d["index"]]].append(y)
    return {name: np.stack(values) for name, values in results.items()}


def read_model(content: bytes):
    from ai_edge_litert import schema_py_generated as schema

    return schema.ModelT.InitFromObj(schema.Model.GetRootAs(content, 0))


def write_model(model) -> bytes:
    """A ModelT (from read_model, edited) as .tflite bytes."""
    import flatbuffers

    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def builtin_op_names() -> set[str]:
    """Every LiteRT builtin operator's name (CONV_2D, HARD_SWISH, ...)."""
    from ai_edge_litert import schema_py_generated as schema

    return {k for k in vars(schema.BuiltinOperator) if not k.startswith("_")}


@functools.cache
def enum_names(enum: str) -> dict[int, str]:
    """Value -> name of one of the schema's enums, e.g. enum_names("TensorType")[9] == "INT8"."""
    from ai_edge_litert import schema_py_generated as schema

    return {v: k for k, v in vars(getattr(schema, enum)).items() if not k.startswith("_")}


def fused_activation(op) -> str:
    """The name of an op's fused activation (NONE, RELU, RELU6, ...), NONE for an op without."""
    value = getattr(op.builtinOptions, "fusedActivationFunction", 0)
    return enum_names("ActivationFunctionType").get(value, f"unknown ({value})")


def op_name(code) -> str:
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    if builtin == schema.BuiltinOperator.CUSTOM:
        return (code.customCode or b"CUSTOM").decode()
    return names.get(builtin, str(builtin))


def op_counts(content: bytes) -> collections.Counter:
    """How many of each operator the model's main subgraph holds, e.g. {'CONV_2D': 27, ...}."""
    model = read_model(content)
    names = [op_name(code) for code in model.operatorCodes]
    return collections.Counter(names[op.opcodeIndex] for op in model.subgraphs[0].operators)


def tensor_ranks(content: bytes) -> collections.Counter:
    """How many tensors of each rank the main subgraph holds."""
    model = read_model(content)
    return collections.Counter(len(t.shape) for t in model.subgraphs[0].tensors if t.shape is not None)


def execution(interpreter) -> dict:
    """How the interpreter runs the model: delegate partitions and the ops left outside them.

    `_get_ops_details()` lists the model's ops (nodes 0..n-1, still there once delegated) and,
    after them, one node named DELEGATE per delegated partition, whose inputs and outputs are
    the partition's boundary tensors; no field says which ops a partition took or which
    delegate it belongs to. An op belongs to a partition when it lies on a path from the
    partition's inputs to its outputs, so walking back from the outputs, stopping at the
    inputs, finds them. The Edge TPU delegate takes each edgetpu-custom-op as a partition of
    its own; the default XNNPACK delegate, applied after it, takes what it can of the rest.
    """
    try:
        nodes = interpreter._get_ops_details()  # private, and the only view of the plan
    except AttributeError:  # a runtime older than the method
        return {}
    kernels = [node for node in nodes if node["op_name"] == "DELEGATE"]
    ops = [node for node in nodes if node["op_name"] != "DELEGATE"]
    delegated = _delegated_ops(kernels, ops)
    outside = collections.Counter(op["op_name"] for op in ops if op["index"] not in delegated)
    on_edgetpu = [op for op in ops if op["index"] in delegated and op["op_name"] == EDGETPU_OP]
    return {"partitions": len(kernels), "ops_outside_delegate": dict(outside.most_common()),
            "edgetpu_ops": len(on_edgetpu)}


def _delegated_ops(kernels: list, ops: list) -> set:
    """Indices of the ops inside the delegate kernels' partitions."""
    producer = {int(t): op["index"] for op in ops for t in op["outputs"]}
    inputs_of = {op["index"]: [int(t) for t in op["inputs"] if t >= 0] for op in ops}
    delegated = set()
    for kernel in kernels:
        boundary = {int(t) for t in kernel["inputs"]}
        pending = [int(t) for t in kernel["outputs"]]
        while pending:
            tensor = pending.pop()
            op = producer.get(tensor)
            if tensor in boundary or op is None or op in delegated:
                continue
            delegated.add(op)
            pending.extend(inputs_of[op])
    return delegated


class NotAModel(ValueError):
    """Bytes that are not a readable .tflite flatbuffer; the message says why, in one line."""


def check_model(content: bytes, what: str = "the file") -> None:
    """NotAModel unless `content` parses as a .tflite model with a main subgraph. The runtime's
    own loader crashes or answers with a bare ValueError on many damaged files."""
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise NotAModel(f"{what} is not a .tflite model (no TFL3 file identifier)")
    try:
        model = read_model(content)
        graph = model.subgraphs[0]
        graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]  # noqa: B018
        for entry in model.metadata or []:  # read_metadata follows these into the buffers
            if not 0 <= entry.buffer < len(model.buffers or []):
                raise IndexError(f"metadata {entry.name!r} names buffer {entry.buffer}")
    except Exception as err:  # noqa: BLE001 - a damaged flatbuffer fails anywhere in its reader
        raise NotAModel(f"{what} is a damaged .tflite model ({type(err).__name__} while "
                        "reading it)") from None


def with_metadata(content: bytes, name: str, value: dict) -> bytes:
    """The model with a metadata entry `name` holding `value` as JSON (replacing an entry of
    that name). LiteRT ignores metadata it does not know."""
    from ai_edge_litert import schema_py_generated as schema

    model = read_model(content)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(value, sort_keys=True).encode(), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = name, len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name.decode() != name] + [entry]
    return write_model(model)


def read_metadata(content: bytes, name: str) -> dict | None:
    """The JSON value of metadata entry `name`, or None when the model has none. Reads only
    the entry: no copy of the model's weights is made."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(content, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() and entry.Name().decode() == name:
            data = model.Buffers(entry.Buffer()).DataAsNumpy()
            try:
                value = parse_json(bytes(data).decode())
            except (ValueError, TypeError):
                return None
            return value if isinstance(value, dict) else None
    return None
