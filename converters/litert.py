"""Running and reading .tflite models with the LiteRT interpreter.

`ai_edge_litert` is the maintained runtime; `tflite_runtime` is accepted where a board has
nothing else.
"""

from __future__ import annotations

import collections

import numpy as np


def interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # an older board image
        from tflite_runtime.interpreter import Interpreter
    return Interpreter


def load(model: bytes | str, num_threads: int = 1):
    """An allocated interpreter (with XNNPACK, LiteRT's default CPU delegate)."""
    Interpreter = interpreter_class()
    if isinstance(model, (bytes, bytearray)):
        interpreter = Interpreter(model_content=bytes(model), num_threads=num_threads)
    else:
        interpreter = Interpreter(model_path=str(model), num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


def run(interpreter, images: np.ndarray) -> np.ndarray:
    """Runs a batch-1 model over each image of `images` (float, already preprocessed)."""
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    results = []
    for image in images:
        x = image[None]
        if inp["dtype"] != np.float32:  # an integer input: quantize with its scale/zero point
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]))
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])[0]
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        results.append(y)
    return np.stack(results)


def read_model(content: bytes):
    from ai_edge_litert import schema_py_generated as schema

    return schema.ModelT.InitFromObj(schema.Model.GetRootAs(content, 0))


def write_model(model) -> bytes:
    """A ModelT (from read_model, edited) as .tflite bytes."""
    import flatbuffers

    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


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
