"""What the converter records beside each model: the model card of the artifact."""

from __future__ import annotations

import collections
import hashlib
import importlib.metadata
import pathlib
import subprocess

from converters import litert
from tfmobile_core.records import Execution, GraphFacts, TensorInfo

INTEGER_TYPES = {"INT8", "UINT8", "INT16", "INT32", "INT64", "BOOL"}


def tensor_type_counts(content: bytes) -> dict:
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    model = litert.read_model(content)
    return dict(collections.Counter(names[t.type] for t in model.subgraphs[0].tensors))


def float_ops(content: bytes) -> list[dict]:
    """Ops that produce a float32 tensor: in an int8 model, what was left in float."""
    from ai_edge_litert import schema_py_generated as schema

    model = litert.read_model(content)
    graph = model.subgraphs[0]
    names = [litert.op_name(code) for code in model.operatorCodes]
    out = []
    for op in graph.operators:
        outputs = [graph.tensors[i] for i in op.outputs]
        if any(t.type == schema.TensorType.FLOAT32 for t in outputs):
            out.append({"op": names[op.opcodeIndex], "output": outputs[0].name.decode()})
    return out


def tensor_info(detail: dict) -> TensorInfo:
    scale, zero_point = detail["quantization"]
    return TensorInfo(name=detail["name"], shape=tuple(int(x) for x in detail["shape"]),
                      dtype=detail["dtype"].__name__, scale=float(scale),
                      zero_point=int(zero_point))


def graph_facts(content: bytes, path: str = "") -> GraphFacts:
    """Size, hash, op and tensor-type counts, whether everything inside is integer, and how
    LiteRT runs it on this CPU."""
    ops = litert.op_counts(content)
    tensor_types = tensor_type_counts(content)
    interpreter = litert.load(content)  # one load serves the io details and the execution plan
    return GraphFacts(
        path=path,
        file_bytes=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        ops=dict(sorted(ops.items(), key=lambda kv: -kv[1])),
        tensor_types=tensor_types,
        # Fully integer: no float tensor anywhere, the interface included.
        fully_integer=set(tensor_types) <= INTEGER_TYPES,
        float_ops=tuple(float_ops(content)),
        input=tensor_info(interpreter.get_input_details()[0]),
        output=tensor_info(interpreter.get_output_details()[0]),
        execution=execution(interpreter),
    )


def execution(interpreter) -> Execution:
    """How LiteRT runs the model on this CPU: XNNPACK partitions and the ops left outside.

    One partition and nothing outside means the whole graph runs in the delegate; every op
    outside splits it and runs on the slower reference kernels.
    """
    facts = litert.execution(interpreter)
    return Execution(partitions=facts["partitions"],
                     ops_outside_delegate=facts["ops_outside_delegate"])


def versions() -> dict:
    out = {}
    for package in ("tensorflow", "keras", "ai-edge-litert", "numpy"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = None
    return out


def git_commit() -> str | None:
    """The project's commit (with '+dirty' when the tree has changes); None outside git."""
    root = pathlib.Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")
