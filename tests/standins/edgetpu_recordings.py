"""Recorded edgetpu_compiler runs, and how a .tflite is matched to one.

The stand-in edgetpu_compiler (tests/standins/edgetpu_compiler) replays what Coral's real
compiler printed and wrote for a published model; it never works out an answer itself. A model
handed to it is matched to a recording by `fingerprint`, a hash of the graph as the compiler
sees its structure, and by the placement-relevant flags of the run (`key_flags`). The
recordings are listed in tests/data/edgetpu/replay/recordings.json; where each published file
comes from is in tests/data/edgetpu/replay/SOURCES.md and tests/data/edgetpu/SOURCES.md.

This module reads flatbuffers with LiteRT's generated schema only: it must not use the
project's own Edge TPU analysis (converters.edgetpu), which the recordings are there to check.
"""

from __future__ import annotations

import functools
import hashlib
import json
import pathlib

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "edgetpu"
REPLAY = DATA / "replay"
MANIFEST = REPLAY / "recordings.json"


@functools.cache
def _names(enum: str) -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema

    return {v: k for k, v in vars(getattr(schema, enum)).items()
            if not k.startswith("_") and isinstance(v, int)}


def _model(content: bytes):
    from ai_edge_litert import schema_py_generated as schema

    return schema.ModelT.InitFromPackedBuf(bytearray(content), 0)


def _op_name(code) -> str:
    # max(builtinCode, deprecatedBuiltinCode): operators numbered past 127 keep 127
    # (PLACEHOLDER_FOR_GREATER_OP_CODES) in the deprecated int8 field, older files have only it.
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    name = _names("BuiltinOperator").get(builtin, str(builtin))
    if name == "CUSTOM":
        custom = code.customCode
        return "CUSTOM:" + (custom.decode() if isinstance(custom, bytes) else str(custom or ""))
    # The operator code's `version` is left out on purpose: a model rebuilt today by a newer
    # converter carries newer op versions for the same graph (e.g. FULLY_CONNECTED v9 where a
    # 2021 converter wrote v4), and the recordings are of models converted years ago.
    return name


def _constant(model, tensor) -> bool:
    """A tensor whose values are in the file (weights, biases, shape operands): the compiler
    sees its values, which the fingerprint ignores, so it is left out altogether."""
    if tensor.isVariable:
        return False
    buffer = model.buffers[tensor.buffer] if 0 < tensor.buffer < len(model.buffers or []) \
        else None
    if buffer is None:
        return False
    has_data = buffer.data is not None and len(buffer.data) > 0
    return has_data or (buffer.offset or 0) > 1  # > 2 GiB files keep data after the flatbuffer


def _tensor(tensor) -> str:
    # shapeSignature keeps -1 for a dimension fixed only at run time (Keras's batch); a model
    # with such a dimension is refused whole by compiler 16 (google-coral/edgetpu#829), so the
    # signature, where the file has one, is what the fingerprint holds.
    shape = tensor.shapeSignature if tensor.shapeSignature is not None \
        and len(tensor.shapeSignature) else tensor.shape
    dims = "x".join(str(int(d)) for d in (shape if shape is not None else []))
    return f"{_names('TensorType').get(tensor.type, str(tensor.type))}[{dims}]"


def describe(content: bytes) -> list[str]:
    """The readable lines the fingerprint is the hash of: the model's inputs and outputs, then
    one line per operator of subgraph 0 in execution order, `NAME(non-constant inputs) ->
    (outputs)`. Tensor names, weights and other constant values, quantization parameters,
    buffer layout, metadata and operator versions do not appear."""
    model = _model(content)
    graph = model.subgraphs[0]
    tensors = graph.tensors
    lines = ["inputs " + ", ".join(_tensor(tensors[i]) for i in graph.inputs),
             "outputs " + ", ".join(_tensor(tensors[i]) for i in graph.outputs)]
    for op in graph.operators or []:
        name = _op_name(model.operatorCodes[op.opcodeIndex])
        ins = [_tensor(tensors[i]) for i in (op.inputs if op.inputs is not None else [])
               if i >= 0 and not _constant(model, tensors[i])]
        outs = [_tensor(tensors[i]) for i in (op.outputs if op.outputs is not None else [])
                if i >= 0]
        lines.append(f"{name}({', '.join(ins)}) -> ({', '.join(outs)})")
    return lines


def fingerprint(content: bytes) -> str:
    """sha256 (hex) of `describe(content)`: equal for two .tflite files of the same graph, as
    the compiler's placement sees it, whatever their weights, names and metadata."""
    return hashlib.sha256("\n".join(describe(content)).encode()).hexdigest()


# Flags that change which operators the compiler places on the Edge TPU, and how many values
# each takes. The others (-d/--search_delegate, -k/--delegate_search_step, -s/--show_operations,
# -t/--timeout_sec, -o/--out_dir) change what is printed or where files go, not the placement of
# the run a recording holds.
PLACEMENT_FLAGS = {"-a": 0, "-i": 1, "-m": 1, "-n": 1}


def key_flags(enable_multiple_subgraphs: bool = False, intermediate_tensors: str | None = None,
              min_runtime_version: int | None = None, num_segments: int | None = None
              ) -> list[str]:
    """The placement-relevant flags of a run, normalised as recordings.json holds them: short
    names, in the order -a, -i, -m, -n, values as strings; a flag at its default is left out
    only where the default is "off" (-a absent, no -i, no -m, no -n)."""
    flags: list[str] = []
    if enable_multiple_subgraphs:
        flags.append("-a")
    if intermediate_tensors:
        flags += ["-i", str(intermediate_tensors)]
    if min_runtime_version is not None:
        flags += ["-m", str(int(min_runtime_version))]
    if num_segments is not None:
        flags += ["-n", str(int(num_segments))]
    return flags


def recordings() -> list[dict]:
    return json.loads(MANIFEST.read_text())


def lookup(fingerprints: list[str], flags: list[str]) -> dict | None:
    """The recording of compiling models of exactly these graphs, in this order, with exactly
    these placement flags; None when there is none. A model whose published file could not be
    had is listed with fingerprint null and never matches."""
    for entry in recordings():
        recorded = [m["fingerprint"] for m in entry["models"]]
        if None not in recorded and recorded == list(fingerprints) \
                and list(entry["flags"]) == list(flags):
            return entry
    return None


def file_of(name: str) -> pathlib.Path:
    """A recorded file named in recordings.json: in replay/ or, for the logs published before
    it, in tests/data/edgetpu/."""
    for where in (REPLAY, DATA):
        if (where / name).is_file():
            return where / name
    raise FileNotFoundError(f"recorded file {name} is in neither {REPLAY} nor {DATA}")


def without_metadata(content: bytes) -> bytes:
    """The model with its metadata entries dropped but `min_runtime_version`, as the real
    compiler leaves a model (ultralytics/yolov5#9903). The stand-in has no Edge TPU code to
    embed, so this is all of its `_edgetpu.tflite`."""
    import flatbuffers

    model = _model(content)
    model.metadata = [m for m in model.metadata or [] if m.name == b"min_runtime_version"]
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
