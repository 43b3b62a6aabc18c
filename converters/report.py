"""What the converter records beside each model: the model card of the artifact."""

from __future__ import annotations

import collections
import hashlib
import importlib.metadata
import pathlib
import subprocess

from converters import litert

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


def io_details(interpreter) -> dict:
    def describe(d):
        scale, zero_point = d["quantization"]
        return {"name": d["name"], "shape": [int(x) for x in d["shape"]],
                "dtype": d["dtype"].__name__, "scale": float(scale), "zero_point": int(zero_point)}

    return {"input": describe(interpreter.get_input_details()[0]),
            "output": describe(interpreter.get_output_details()[0])}


def graph_facts(content: bytes) -> dict:
    """Size, hash, op and tensor-type counts, and whether everything inside is integer."""
    ops = litert.op_counts(content)
    tensor_types = tensor_type_counts(content)
    interpreter = litert.load(content)  # one load serves the io details and the execution plan
    # Fully integer: no float tensor anywhere, the interface included.
    return {
        "file_bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "ops": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
        "tensor_types": tensor_types,
        "fully_integer": set(tensor_types) <= INTEGER_TYPES,
        "float_ops": float_ops(content),
        "io": io_details(interpreter),
        "execution": execution(interpreter),
    }


def execution(interpreter) -> dict:
    """How LiteRT runs the model on this CPU: XNNPACK partitions and the ops left outside.

    One partition and nothing outside means the whole graph runs in the delegate; every op
    outside splits it and runs on the slower reference kernels.
    """
    # The device runner's analysis (it is a single file boards run without this package).
    from android_bench.device_runner import execution as analyse

    facts = analyse(interpreter)
    return {"delegate": "XNNPACK", "partitions": facts["partitions"],
            "ops_outside_delegate": facts["ops_outside_delegate"]}


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
