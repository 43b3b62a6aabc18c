#!/usr/bin/env python3
"""Times a .tflite model with the LiteRT interpreter and prints one JSON line.

This single file is copied to Linux boards (Coral Dev Board, Raspberry Pi with a Coral USB
Accelerator) and run there with whatever they have: Python 3.7+, numpy, and ai_edge_litert or
tflite_runtime. It imports nothing else (hence argparse, not absl).

examples:
  python3 device_runner.py model.tflite --threads 4 --warmup 10 --runs 50
  python3 device_runner.py model_edgetpu.tflite --delegate edgetpu
  # an interpreter test: references computed on the host, checked on the board
  host$  python3 device_runner.py model.tflite --runs 1 --save_inputs in.npz --save_outputs ref.npz
  board$ python3 device_runner.py model.tflite --inputs in.npz --expect ref.npz

delegates:
  cpu      the builtin kernels alone (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
  xnnpack  LiteRT's default: the XNNPACK delegate takes every op it supports
  edgetpu  libedgetpu (Debian package libedgetpu1-std) runs the model's edgetpu-custom-op;
           XNNPACK still takes the CPU ops around it

inputs: --inputs (an .npz, arrays keyed by input tensor name or arr_0, arr_1, ... in order), else
  random with --seed: integers over the whole range of int8/uint8/int16 inputs, 0-9 for wider
  integer inputs (indices, token ids), uniform [-1, 1] for float inputs.

--expect: after timing, the inputs are run once more and each output is compared with its
  reference (same keys as --inputs). Integer (quantized) outputs are compared in quantization
  steps, which is what differs between kernels, whatever the scale: tolerance --atol steps
  (default 1). Float outputs: |out - ref| <= --atol (default 1e-4) + 1e-4 * max|ref|.

output: one JSON line on stdout, and nothing else there (status "ok" | "failed", reason,
  model, delegate, threads, python, platform, sha256, size_bytes, runtime, init_ms (load and
  allocate), inputs, outputs, partitions (delegate kernels), ops_outside_delegate,
  edgetpu_ops, input_source, first_ms, warmup_avg_ms, runs, latency_ms {median p90 mean std
  min max}, peak_rss_mb, vm_hwm_mb, check); a failure keeps what was learnt before it.
  Exit status: 0 ok, 1 failed (model will not load, delegate missing, check failed), 2 usage.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import hashlib
import json
import math
import os
import platform
import sys
import time
import traceback

import numpy as np

EDGETPU_OP = "edgetpu-custom-op"
EDGETPU_LIBRARY = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib",
                   "Windows": "edgetpu.dll"}
EDGETPU_INSTALL = ("install the Edge TPU runtime (sudo apt-get install libedgetpu1-std, from "
                   "Coral's package repository: https://coral.ai/docs/accelerator/get-started/)")
INTEGER_ATOL = 1  # quantization steps
FLOAT_ATOL = 1e-4
FLOAT_RTOL = 1e-4  # of the output's largest magnitude


class Failed(Exception):
    """The model could not be run as asked; the message is the reason, one line."""


def one_line(error) -> str:
    return " ".join(str(error).split())


# --- The runtime and the interpreter -------------------------------------------------------


def import_runtime():
    """(package, version, interpreter module): ai_edge_litert, else tflite_runtime."""
    errors = []
    for package in ("ai_edge_litert", "tflite_runtime"):
        try:
            module = __import__(package + ".interpreter", fromlist=["Interpreter"])
        except ImportError as err:
            errors.append(f"{package}: {one_line(err)}")
            continue
        version = getattr(sys.modules[package], "__version__", None)
        return package, version or distribution_version(package), module
    raise Failed("no LiteRT runtime: pip install ai-edge-litert (or tflite-runtime) ("
                 + "; ".join(errors) + ")")


def distribution_version(package: str):
    try:
        from importlib import metadata  # Python 3.8+

        return metadata.version(package.replace("_", "-"))
    except Exception:  # Python 3.7, or a package installed without metadata
        return None


def load_edgetpu(module, library: str):
    """The Edge TPU delegate, or Failed saying what is missing.

    load_delegate raises OSError when the library is missing and ValueError when libedgetpu
    finds no usable Edge TPU. The library is opened with ctypes first, so that each case has
    its own message and LiteRT's half-built Delegate never reaches its __del__ (which then
    raises an ignored exception with a traceback on stderr).
    """
    try:
        library_handle = ctypes.CDLL(library)
    except OSError as err:
        raise Failed(f"the Edge TPU runtime library {library} is missing ({one_line(err)}): "
                     f"{EDGETPU_INSTALL}, or give its path with --edgetpu_library") from None
    if not hasattr(library_handle, "tflite_plugin_create_delegate"):
        raise Failed(f"{library} is not a LiteRT delegate library "
                     "(it has no tflite_plugin_create_delegate)")
    try:
        return module.load_delegate(library)
    except ValueError as err:  # "Failed to load delegate from ...", then libedgetpu's words
        detail = one_line(str(err).partition("\n")[2]) or one_line(err)
        raise Failed(f"{library} is installed but no Edge TPU could be opened ({detail}): attach "
                     "one (a USB Accelerator needs the udev rules of libedgetpu1-std; replug it "
                     "after installing) and check that no other process holds it") from None


def create_interpreter(module, model: str, threads: int, delegate: str, edgetpu_library):
    """An allocated interpreter running `model` as `delegate` asks."""
    options = {"model_path": model, "num_threads": threads}
    resolvers = getattr(module, "OpResolverType", None)  # tflite_runtime 2.5 and later
    if delegate == "cpu" and resolvers is not None:
        options["experimental_op_resolver_type"] = resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    elif delegate == "edgetpu":
        library = edgetpu_library or EDGETPU_LIBRARY.get(platform.system(), "libedgetpu.so.1")
        options["experimental_delegates"] = [load_edgetpu(module, library)]
    try:
        interpreter = module.Interpreter(**options)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as err:
        reason = f"the model does not load: {one_line(err) or silent_load_failure(model)}"
        if EDGETPU_OP in reason and delegate != "edgetpu":
            reason += " (it is compiled for the Edge TPU: run it with --delegate edgetpu)"
        raise Failed(reason) from None
    if delegate == "cpu" and resolvers is None and execution(interpreter).get("partitions"):
        raise Failed("this runtime applies XNNPACK by default and cannot turn it off (it has no "
                     "OpResolverType; tflite_runtime 2.5 and later can)")
    return interpreter


def silent_load_failure(model: str) -> str:
    """What is wrong with a model the runtime rejected without a word (tflite_runtime 2.11
    raises a bare ValueError for a file that is not a flatbuffer)."""
    with open(model, "rb") as f:
        identifier = f.read(8)[4:]
    if identifier != b"TFL3":
        return "not a .tflite flatbuffer (no TFL3 file identifier)"
    return "the runtime gives no reason"


# --- Vendored from converters/litert.py (tests/test_layering.py keeps the copy identical) ---


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


# --- End of the vendored copy ---


# --- Inputs and outputs --------------------------------------------------------------------


def random_inputs(details: list, seed: int) -> list:
    """One array per input: deterministic for a seed on any numpy (RandomState is frozen)."""
    rng = np.random.RandomState(seed)
    arrays = []
    for detail in details:
        dtype, shape = np.dtype(detail["dtype"]), tuple(detail["shape"])
        if dtype == np.bool_:
            arrays.append(rng.randint(0, 2, size=shape).astype(dtype))
        elif np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            low, high = (info.min, info.max + 1) if info.bits <= 16 else (0, 10)
            arrays.append(rng.randint(low, high, size=shape, dtype=np.int64).astype(dtype))
        else:
            arrays.append(rng.uniform(-1, 1, size=shape).astype(dtype))
    return arrays


def read_npz(path: str, details: list, what: str) -> list:
    """One array per tensor of `details`, keyed by tensor name, else taken in order."""
    try:
        loaded = np.load(path)
        if not hasattr(loaded, "files"):
            raise Failed(f"{path} is one .npy array; give the {what}s as an .npz archive "
                         "(np.savez), as --save_inputs and --save_outputs write them")
        with loaded as archive:
            stored = {key: archive[key] for key in archive.files}
    except Failed:
        raise
    except Exception as err:  # missing file, not an npz, pickled objects...
        raise Failed(f"cannot read {what} {path}: {one_line(err)}") from None
    keys = list(stored)
    for key, array in stored.items():
        if not isinstance(array, np.ndarray):  # a member that is not an .npy file: its bytes
            raise Failed(f"{path}: {key} is not a numpy array")
    arrays = []
    for i, detail in enumerate(details):
        key = detail["name"] if detail["name"] in stored else (keys[i] if i < len(keys) else None)
        if key is None:
            raise Failed(f"{path} has no array for {what} tensor {detail['name']}")
        arrays.append(stored[key])
    return arrays


def conform_inputs(arrays: list, details: list) -> list:
    """The --inputs arrays in the inputs' dtypes; a float array for an integer input is an
    error (it would need the input's quantization), not something to truncate."""
    conformed = []
    for array, detail in zip(arrays, details):
        dtype, shape = np.dtype(detail["dtype"]), tuple(detail["shape"])
        name, kind = detail["name"], array.dtype.kind
        if np.issubdtype(dtype, np.integer) and kind == "f":
            raise Failed(f"input {name} is {dtype.name} and its array {array.dtype.name}:"
                         " quantize it first")
        allowed = "b" if dtype == np.bool_ else "iu" if np.issubdtype(dtype, np.integer) else "iuf"
        if kind not in allowed:  # complex numbers, strings, dates, booleans for numbers
            raise Failed(f"input {name} is {dtype.name} and its array {array.dtype.name}")
        if array.shape != shape:
            raise Failed(f"input {name} has shape {list(shape)}, its array "
                         f"{list(array.shape)}")
        if np.issubdtype(dtype, np.integer) and array.size:
            info = np.iinfo(dtype)
            if array.min() < info.min or array.max() > info.max:  # astype would wrap them
                raise Failed(f"input {name} is {dtype.name} and its array holds {array.min()} "
                             f"to {array.max()}, outside {info.min} to {info.max}")
        with np.errstate(over="ignore"):
            converted = array.astype(dtype)
        if np.issubdtype(dtype, np.floating) and not np.isfinite(converted).all():
            raise Failed(f"input {name}'s array holds NaN or infinite values (or values too "
                         f"large for {dtype.name})")
        conformed.append(converted)
    return conformed


def write_npz(path: str, arrays: list) -> None:
    """arr_0, arr_1, ... written whole or not at all (a temporary name, then a rename)."""
    temporary = f"{path}.{os.getpid()}.part"
    try:
        with open(temporary, "wb") as f:
            np.savez(f, *arrays)
        os.replace(temporary, path)
    except OSError as err:
        raise Failed(f"cannot write {path}: {err.strerror or one_line(err)}") from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def describe_tensors(details: list) -> list:
    return [{"name": d["name"], "shape": [int(s) for s in d["shape"]],
             "dtype": np.dtype(d["dtype"]).name,
             "quantization": {"scale": float(d["quantization"][0]),
                              "zero_point": int(d["quantization"][1])}}
            for d in details]


# --- Running and timing --------------------------------------------------------------------


def set_inputs(interpreter, arrays: list) -> None:
    for detail, array in zip(interpreter.get_input_details(), arrays):
        interpreter.set_tensor(detail["index"], array)


def get_outputs(interpreter) -> list:
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]  # copies


def time_invokes(interpreter, count: int) -> list:
    """Milliseconds of each of `count` invoke() calls, nothing else inside the clock."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        try:
            interpreter.invoke()
        except RuntimeError as err:
            raise Failed(f"inference failed: {one_line(err)}") from None
        times.append((time.perf_counter() - started) * 1e3)
    return times


def ms(value: float) -> float:
    return round(float(value), 4)


def latency_summary(times: list) -> dict:
    t = np.asarray(times)
    return {"median": ms(np.median(t)), "p90": ms(np.percentile(t, 90)), "mean": ms(t.mean()),
            "std": ms(t.std()), "min": ms(t.min()), "max": ms(t.max())}


# --- The --expect check --------------------------------------------------------------------


def compare(outputs: list, references: list, details: list, atol) -> dict:
    """The outputs against host references, each in its own unit (see the module's help)."""
    rows = [_compare_output(out, ref, d, atol) for out, ref, d in zip(outputs, references, details)]
    atols = {row["atol"] for row in rows}
    return {"passed": all(row["passed"] for row in rows),
            "max_abs_diff": max(row["max_abs_diff"] for row in rows),
            "atol": atols.pop() if len(atols) == 1 else None,
            "outputs": rows}


def _compare_output(out, ref, detail, atol) -> dict:
    name = detail["name"]
    if ref.dtype.kind not in "iuf":  # strings, dates, complex, booleans: not figures to compare
        raise Failed(f"the reference for output {name} is {ref.dtype.name}, not numbers: give "
                     "the outputs as --save_outputs writes them")
    if ref.shape != out.shape:
        raise Failed(f"the reference for output {name} has shape {list(ref.shape)}, the output "
                     f"{list(out.shape)}")
    if np.issubdtype(out.dtype, np.integer):
        if not np.issubdtype(ref.dtype, np.integer):
            raise Failed(f"output {name} is {out.dtype.name} and its reference "
                         f"{ref.dtype.name}: give the raw (quantized) outputs, as "
                         "--save_outputs writes them")
        unit, atol = "quantization steps", INTEGER_ATOL if atol is None else atol
        diff = np.abs(out.astype(np.int64) - ref.astype(np.int64))
        tolerance = atol
    else:
        unit, atol = "absolute", FLOAT_ATOL if atol is None else atol
        diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
        tolerance = atol + FLOAT_RTOL * (float(np.max(np.abs(ref))) if ref.size else 0.0)
    worst = float(np.max(diff)) if diff.size else 0.0
    return {"name": name, "unit": unit, "max_abs_diff": worst, "atol": atol,
            "tolerance": tolerance, "passed": bool(worst <= tolerance)}  # NaN fails


# --- The model, the process, the host ------------------------------------------------------


def file_facts(path: str) -> dict:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return {"sha256": digest.hexdigest(), "size_bytes": size}


def host_facts() -> dict:
    uname = platform.uname()
    return {"python": platform.python_version(),
            "platform": {"system": uname.system, "node": uname.node, "release": uname.release,
                         "version": uname.version, "machine": uname.machine,
                         "cpus": os.cpu_count()}}


def peak_memory() -> dict:
    """Peak resident memory: getrusage's ru_maxrss (KB on Linux, bytes on macOS; no resource
    module on Windows) and, where /proc exists, VmHWM, the kernel's own high-water mark."""
    facts = {"peak_rss_mb": None, "vm_hwm_mb": None}
    try:
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        facts["peak_rss_mb"] = round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 2)
    except ImportError:
        pass
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    facts["vm_hwm_mb"] = round(int(line.split()[1]) / 1024, 2)
    except OSError:
        pass
    return facts


# --- The run -------------------------------------------------------------------------------


def benchmark(args, result: dict) -> None:
    """Fills `result` as it goes, so that a failure still reports what was learnt before it."""
    if not os.path.isfile(args.model):
        raise Failed(f"{args.model} does not exist or is not a file")
    result.update(file_facts(args.model))
    package, version, module = import_runtime()
    result["runtime"] = {"package": package, "version": version}

    started = time.perf_counter()
    interpreter = create_interpreter(module, args.model, args.threads, args.delegate,
                                     args.edgetpu_library)
    result["init_ms"] = ms((time.perf_counter() - started) * 1e3)
    result.update(inputs=describe_tensors(interpreter.get_input_details()),
                  outputs=describe_tensors(interpreter.get_output_details()),
                  **execution(interpreter))
    if args.delegate == "edgetpu" and result.get("edgetpu_ops") == 0:
        raise Failed("the model is not compiled for the Edge TPU (it has no edgetpu-custom-op): "
                     "compile it with edgetpu_compiler, or time it with --delegate xnnpack")

    for detail in interpreter.get_input_details():
        signature = [int(d) for d in detail.get("shape_signature", detail["shape"])]
        if any(d < 0 for d in signature[1:]):  # LiteRT allocates them as 1: a 1 x 1 image
            raise Failed(f"input {detail['name']} has dynamic dimensions (shape {signature}); "
                         f"timed at {[int(d) for d in detail['shape']]} the figures would not be "
                         "the model's: convert it with a fixed input shape")
    inputs = choose_inputs(args, interpreter.get_input_details(), result)
    set_inputs(interpreter, inputs)
    time_runs(interpreter, args, result)
    if args.expect:
        result["check"] = check_outputs(interpreter, inputs, args.expect, args.atol)
        if not result["check"]["passed"]:
            raise Failed("the outputs differ from the reference by more than the tolerance")


def choose_inputs(args, details: list, result: dict) -> list:
    """The --inputs arrays, else seeded random ones; saved with --save_inputs."""
    if args.inputs:
        inputs = conform_inputs(read_npz(args.inputs, details, "input"), details)
        result["input_source"] = args.inputs
    else:
        inputs = random_inputs(details, args.seed)
        result["input_source"] = f"random, seed {args.seed}"
    if args.save_inputs:
        write_npz(args.save_inputs, inputs)
    return inputs


def time_runs(interpreter, args, result: dict) -> None:
    """The first inference (its outputs saved with --save_outputs), the warm-up, the runs."""
    result["first_ms"] = ms(time_invokes(interpreter, 1)[0])
    if args.save_outputs:
        write_npz(args.save_outputs, get_outputs(interpreter))
    warmups = time_invokes(interpreter, args.warmup)
    result["warmup_avg_ms"] = ms(np.mean(warmups)) if warmups else None
    times = time_invokes(interpreter, args.runs)
    result.update(runs=len(times), latency_ms=latency_summary(times), **peak_memory())


def check_outputs(interpreter, inputs: list, expect: str, atol) -> dict:
    """One more inference on the same inputs, its outputs against the host's references."""
    details = interpreter.get_output_details()
    references = read_npz(expect, details, "output")
    set_inputs(interpreter, inputs)
    time_invokes(interpreter, 1)
    return compare(get_outputs(interpreter), references, details, atol)


def json_safe(value):
    """NaN and infinities (a broken output's difference) as null: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    return value


def claim_stdout():
    """A private handle on stdout for the JSON line; file descriptor 1 goes to stderr, so that
    whatever native code or a library prints cannot get mixed into the result."""
    sys.stdout.flush()
    result_stream = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    return result_stream


def parse_args(argv):
    def count(minimum):
        def parse(text):
            value = int(text)
            if value < minimum:
                raise argparse.ArgumentTypeError(f"must be at least {minimum}")
            return value
        return parse

    summary, _, details = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(description=summary, epilog=details,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("model", help="the .tflite file")
    add("--threads", type=count(1), default=1, metavar="N", help="interpreter threads (1)")
    add("--warmup", type=count(0), default=10, metavar="W", help="untimed runs first (10)")
    add("--runs", type=count(1), default=50, metavar="R", help="timed runs (50)")
    add("--delegate", choices=("cpu", "xnnpack", "edgetpu"), default="xnnpack",
        help="see below (xnnpack)")
    add("--edgetpu_library", metavar="PATH", help="the libedgetpu to load (default: "
        + ", ".join(EDGETPU_LIBRARY.values()) + ", by platform)")
    add("--inputs", metavar="NPZ", help="input arrays (default: random)")
    add("--seed", type=int, default=0, metavar="S", help="seed of the random inputs (0)")
    add("--expect", metavar="NPZ", help="reference outputs to check the outputs against")
    add("--atol", type=float, metavar="X", help="tolerance of the check (see below)")
    add("--save_inputs", metavar="NPZ", help="write the inputs used")
    add("--save_outputs", metavar="NPZ", help="write the outputs of the first inference")
    args = parser.parse_args(argv)
    if args.atol is not None and not (args.atol >= 0 and math.isfinite(args.atol)):
        parser.error("--atol must be a finite number, at least 0")
    if not 0 <= args.seed < 2 ** 32:
        parser.error("--seed must be between 0 and 4294967295")
    for flag, path in (("--save_inputs", args.save_inputs), ("--save_outputs", args.save_outputs)):
        if path and (os.path.isdir(path) or not os.path.isdir(os.path.dirname(path) or ".")):
            parser.error(f"{flag} {path}: " + ("is a directory" if os.path.isdir(path)
                                                 else "its directory does not exist"))
        if path and os.path.isfile(path) and os.path.isfile(args.model) \
                and os.path.samefile(path, args.model):
            parser.error(f"{flag} {path} is the model itself; name another file")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    result_stream = claim_stdout()
    status, facts = {"status": "ok"}, {"model": args.model, "delegate": args.delegate,
                                      "threads": args.threads, **host_facts()}
    try:
        benchmark(args, facts)
    except Failed as err:
        status = {"status": "failed", "reason": str(err)}
    except Exception as err:  # a bug: still one JSON line; the traceback goes to stderr
        traceback.print_exc()
        status = {"status": "failed", "reason": f"internal error: {type(err).__name__}: "
                                                f"{one_line(err)}"}
    result_stream.write(json.dumps(json_safe({**status, **facts})) + "\n")
    result_stream.flush()
    return 0 if status["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
