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

--expect tolerance: int8 outputs within 1 step of references from the same runtime; against
  another runtime (--reference_runtime) they must track the references, SQNR >= 10 dB, since
  releases round requantization differently and a step grows through the layers (measured:
  tflite_runtime 2.14 against ai_edge_litert 2.3, up to 4 steps on a trained MobileNet V2, 17
  on an untrained one). A failing check says whether the outputs still track the host's (SQNR
  >= 10 dB: kernels rounding differently) or not; if not, the inputs run once more on the
  builtin kernels alone, which tells a delegate's kernels at fault on this CPU (the builtin
  ones agree with the host) from a broken model or runtime.

--duration_s T: a sustained run. Invokes back to back for T seconds; every --sample_s the
  window's median latency, the mean CPU frequency (cpufreq) and the hottest thermal zone. The
  latency reported is the last quarter's (what the device settles to, not its cold speed);
  "sustained" holds the samples and whether it throttled (latency up, or frequency down, by
  more than --throttle_threshold from the first sample to the last quarter).

--runtime compiled_model times ai_edge_litert's CompiledModel API (2.0 and later, CPU)
  instead of the Interpreter; "runtime.api" says which ran. --describe prints the runtime, its
  APIs and the CPU's features (arm64: from the ELF auxiliary vector) and times nothing.

output: one JSON line on stdout, and nothing else there (status "ok" | "failed", reason,
  model, delegate, threads, python, platform, cpu {features, features_from, model}, sha256,
  size_bytes, runtime {package, version, api}, init_ms (load and allocate), inputs, outputs,
  partitions (delegate kernels), ops_outside_delegate, edgetpu_ops (or fully_accelerated for
  compiled_model), input_source, first_ms, warmup_avg_ms, runs, latency_ms {median p90 mean std
  min max}, peak_rss_mb, vm_hwm_mb, check, sustained); a failure keeps what was learnt before
  it.
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


class InterpreterSession:
    """The classic `Interpreter` API: what tflite_runtime and every ai_edge_litert offer."""

    def __init__(self, interpreter):
        self.interpreter = interpreter

    def input_details(self) -> list:
        return self.interpreter.get_input_details()

    def output_details(self) -> list:
        return self.interpreter.get_output_details()

    def set_inputs(self, arrays: list) -> None:
        for detail, array in zip(self.input_details(), arrays):
            self.interpreter.set_tensor(detail["index"], array)

    def invoke(self) -> None:
        self.interpreter.invoke()

    def outputs(self) -> list:
        return [self.interpreter.get_tensor(d["index"]) for d in self.output_details()]  # copies


class CompiledModelSession:
    """ai_edge_litert's `CompiledModel` API (2.0 and later): the runtime LiteRT now builds on,
    with tensor buffers allocated once, as an app using it would."""

    def __init__(self, model: str, threads: int):
        try:
            from ai_edge_litert.compiled_model import CompiledModel
            from ai_edge_litert.cpu_options import CpuOptions
            from ai_edge_litert.hardware_accelerator import HardwareAccelerator
            from ai_edge_litert.options import Options
        except ImportError as err:
            raise Failed("this runtime has no CompiledModel API (ai_edge_litert 2.0 and later "
                         f"have it): {one_line(err)}; time it with --runtime interpreter") from None
        options = Options(hardware_accelerators=HardwareAccelerator.CPU,
                          cpu_options=CpuOptions(num_threads=threads))
        try:
            self.model = CompiledModel.from_file(model, options=options)
            self.inputs = self.model.create_input_buffers(0)
            self.output_buffers = self.model.create_output_buffers(0)
        except (ValueError, RuntimeError) as err:
            raise Failed(f"the model does not load: {one_line(err)}") from None
        signature = next(iter(self.model.get_signature_list()))
        inputs = self.model.get_input_tensor_details(signature)
        outputs = self.model.get_output_tensor_details(signature)
        self._inputs = [dict(inputs[name], quantization=(0.0, 0)) for name in inputs]
        self._outputs = [dict(outputs[name], quantization=(0.0, 0)) for name in outputs]

    def input_details(self) -> list:
        return self._inputs

    def output_details(self) -> list:
        return self._outputs

    def set_inputs(self, arrays: list) -> None:
        for buffer, array in zip(self.inputs, arrays):
            buffer.write(array)

    def invoke(self) -> None:
        self.model.run_by_index(0, self.inputs, self.output_buffers)

    def outputs(self) -> list:
        arrays = []
        for buffer, detail in zip(self.output_buffers, self._outputs):
            shape = tuple(int(d) for d in detail["shape"])
            count = int(np.prod(shape)) if shape else 1
            arrays.append(buffer.read(count, np.dtype(detail["dtype"])).reshape(shape))
        return arrays


def time_invokes(session, count: int) -> list:
    """Milliseconds of each of `count` invokes, nothing else inside the clock."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        try:
            session.invoke()
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

# What the check allows, measured on the emulated arm64 board (tests/test_arm64_board.py):
# - int8, the references' own runtime: 1 step. Bit-identical on x86 and on arm64 Cortex-A72,
#   A76 and Neoverse N1 in our measurements.
# - int8, another runtime: releases round requantization differently, and a step's difference
#   grows through the layers. tflite_runtime 2.14 against ai_edge_litert 2.3 differed by up to
#   4 steps on a trained MobileNet V2 (SQNR 29 dB), 17 on an untrained one (16 dB). So the
#   outputs must track the references (SQNR of at least TRACKING_SQNR_DB), not match them.
# - A difference that does not track the references (SQNR under 10 dB: the error has a tenth of
#   the outputs' power or more) is no rounding difference. XNNPACK's int8 kernels on qemu's
#   SME CPU gave 0.4 and -11.8 dB; every rounding difference above measured 16 dB or more.
SAME_RUNTIME_STEPS = 1
TRACKING_SQNR_DB = 10.0


def check_rule(runtime: dict, reference_runtime) -> tuple[int | None, str]:
    """(int8 tolerance in steps, or None for "must track the references", and why)."""
    here = f"{runtime.get('package')}=={runtime.get('version')}"
    if reference_runtime is None:
        return SAME_RUNTIME_STEPS, "the default (the references' runtime is not known)"
    if reference_runtime == here:
        return SAME_RUNTIME_STEPS, f"the same runtime as the references' ({here})"
    return None, (f"another runtime than the references' ({here} here, {reference_runtime} "
                  f"there): releases round requantizations differently, so the outputs must "
                  f"track the references (SQNR >= {TRACKING_SQNR_DB:g} dB), not match them")


def compare(outputs: list, references: list, details: list, atol,
            rule=(SAME_RUNTIME_STEPS, "the default")) -> dict:
    """The outputs against host references, each in its own unit (see the module's help).
    `rule`: check_rule()'s int8 tolerance, and why, when --atol does not give one."""
    steps, why = rule if atol is None else (atol, "--atol")
    rows = [_compare_output(out, ref, d, atol, steps) for out, ref, d in
            zip(outputs, references, details)]
    atols = {row["atol"] for row in rows}
    check = {"passed": all(row["passed"] for row in rows),
             "max_abs_diff": max(row["max_abs_diff"] for row in rows),
             "atol": atols.pop() if len(atols) == 1 else None,
             "outputs": rows}
    if any(row["unit"] == "quantization steps" for row in rows):
        check["int8_tolerance_from"] = why
    check["verdict"] = verdict(rows)
    return check


# A detector's last op. Its outputs are max_detections slots, of which it fills the first
# num_detections: the rest hold whatever the tensor arena held (measured: up to 4.8 in the slots
# of a float SSDLite on the builtin kernels, 0 on XNNPACK), so only the filled ones compare.
POSTPROCESS_OP = b"TFLite_Detection_PostProcess"


def detection_layout(model: str, details: list):
    """(position of num_detections, positions of the boxes, classes and scores) among the
    outputs when the model ends in TFLite_Detection_PostProcess (its name is a string in the
    flatbuffer), else None."""
    with open(model, "rb") as f:
        if POSTPROCESS_OP not in f.read():
            return None
    shapes = [tuple(int(d) for d in detail["shape"]) for detail in details]
    counts = [i for i, shape in enumerate(shapes) if shape == (1,)]
    slots = [i for i, shape in enumerate(shapes) if len(shape) >= 2 and shape[0] == 1]
    if len(shapes) != 4 or len(counts) != 1 or len(slots) != 3 \
            or len({shapes[i][1] for i in slots}) != 1:
        return None
    return counts[0], slots


def filled_detections(outputs: list, references: list, layout):
    """(outputs, references, what was compared): the detection slots cut to those both filled,
    the fewer of the two num_detections (a different count fails on num_detections itself).
    Unchanged when there is no layout, or the references do not match the outputs' shapes
    (compare() then says so)."""
    if layout is None or [np.shape(r) for r in references] != [np.shape(o) for o in outputs]:
        return outputs, references, None
    count, slots = layout
    found = [float(np.ravel(arrays[count])[0]) for arrays in (outputs, references)]
    if not all(math.isfinite(n) for n in found):
        return outputs, references, None
    size = int(np.shape(outputs[slots[0]])[1])
    keep = max(0, min(size, int(round(min(found)))))

    def cut(arrays):
        return [array[:, :keep] if i in slots else array for i, array in enumerate(arrays)]

    return cut(outputs), cut(references), {
        "compared": keep, "slots": size,
        "why": "TFLite_Detection_PostProcess fills only the first num_detections slots"}


def _compare_output(out, ref, detail, atol, steps) -> dict:
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
        unit, atol, tolerance = "quantization steps", steps, steps
    else:
        unit, atol = "absolute", FLOAT_ATOL if atol is None else atol
        tolerance = atol + FLOAT_RTOL * (float(np.max(np.abs(ref))) if ref.size else 0.0)
    diff = out.astype(np.float64) - ref.astype(np.float64)
    worst = float(np.max(np.abs(diff))) if diff.size else 0.0
    sqnr = sqnr_db(ref.astype(np.float64), diff)
    if tolerance is None:  # another runtime's int8: the outputs must track the references
        passed = bool(sqnr >= TRACKING_SQNR_DB)  # NaN fails
    else:
        passed = bool(worst <= tolerance)
    return {"name": name, "unit": unit, "max_abs_diff": worst, "atol": atol,
            "tolerance": tolerance, "passed": passed, "sqnr_db": sqnr,
            "differing": int(np.count_nonzero(diff)), "values": int(diff.size)}


def sqnr_db(reference, diff) -> float:
    """The references' variance over the mean squared difference, in dB: inf when identical,
    NaN when the outputs hold NaN."""
    noise = float(np.mean(diff ** 2)) if diff.size else 0.0
    if noise == 0:
        return math.inf
    signal = float(np.var(reference)) if reference.size else 0.0
    return 10 * math.log10(signal / noise) if signal > 0 else -math.inf


def beyond_rounding(rows: list) -> bool:
    """Whether a failed check's outputs no longer track the references (module comment)."""
    return any(not row["passed"] and not row["sqnr_db"] >= TRACKING_SQNR_DB for row in rows)


def verdict(rows: list, cause: str = "the model or the runtime is broken on this board") -> str:
    """One sentence a user can act on: identical, within tolerance, a difference that tracks
    the references (kernels rounding differently), or one that does not, and then `cause`
    (what cross_check found)."""
    if all(row["max_abs_diff"] == 0 for row in rows):
        return "identical to the host's outputs"
    failed = [row for row in rows if not row["passed"]]
    if not failed:
        return "within the tolerance of the host's outputs"
    described = "; ".join(
        f"by up to {row['max_abs_diff']:.3g}{' steps' if row['unit'] == 'quantization steps' else ''}"
        f" in {row['differing']} of {row['values']} values of {row['name']} (SQNR "
        f"{row['sqnr_db']:.1f} dB)" for row in failed)
    text = f"differs {described}: "
    if not beyond_rounding(rows):
        return text + ("the outputs track the host's, as when kernels round differently (this "
                       "board's runtime or CPU does not run the host's kernels), not as with a "
                       "broken model; if its kernels are expected to differ, rerun with a "
                       "wider --atol")
    return text + ("the outputs no longer track the host's: beyond any rounding difference "
                   f"between kernels, {cause}")


def cross_check(module, args, inputs: list, check: dict, rule, features) -> None:
    """After a failure no rounding explains: the same inputs once more on the builtin kernels
    alone (no XNNPACK, no Edge TPU). If those agree with the host, the model and the file are
    sound and the delegate's kernels for this CPU are at fault; if they disagree too, the model
    or the runtime is. The answer goes into the check and its verdict."""
    resolvers = getattr(module, "OpResolverType", None)
    if args.delegate == "cpu" or resolvers is None or args.runtime != "interpreter":
        return
    try:
        interpreter = module.Interpreter(
            model_path=args.model, num_threads=args.threads,
            experimental_op_resolver_type=resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter.allocate_tensors()
        builtin = InterpreterSession(interpreter)
        builtin.set_inputs(inputs)
        builtin.invoke()
        outputs = builtin.outputs()
    except (ValueError, RuntimeError) as err:
        check["builtin_kernels"] = {"error": one_line(err)}
        return
    details = builtin.output_details()
    outputs, references, _ = filled_detections(
        outputs, read_npz(args.expect, details, "output"), detection_layout(args.model, details))
    again = compare(outputs, references, details, args.atol, rule)
    tracking = not beyond_rounding(again["outputs"])
    worst_sqnr = min(row["sqnr_db"] for row in again["outputs"])
    check["builtin_kernels"] = {"passed": again["passed"], "tracks": tracking,
                                "max_abs_diff": again["max_abs_diff"], "sqnr_db": worst_sqnr}
    features = " ".join(f for f in (features or [])
                        if f in ("asimddp", "i8mm", "sve", "sve2", "sme", "sme2", "avx512f",
                                 "avx512_vnni", "amx_int8"))
    if tracking:
        closeness = ("identical" if again["max_abs_diff"] == 0 else
                     f"SQNR {worst_sqnr:.1f} dB, max {again['max_abs_diff']:g}")
        cause = (f"the builtin kernels (--delegate cpu) track the host's outputs ({closeness}), "
                 f"so the model and the file "
                 f"are sound and the {args.delegate} kernels this CPU runs are at fault"
                 + (f" (its features: {features})" if features else "")
                 + ": run this board with --delegate cpu, and report it to LiteRT with the "
                   "CPU's features")
    else:
        cause = (f"the builtin kernels do not track them either (SQNR {worst_sqnr:.1f} dB), so "
                 f"the model file or the runtime is broken on this board (compare the sha256 "
                 f"with the host's; a runtime too old for the model's ops)")
    check["verdict"] = verdict(check["outputs"], cause)


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
                         "cpus": os.cpu_count()},
            "cpu": cpu_facts(uname.machine)}


AT_HWCAP, AT_HWCAP2 = 16, 26
# Linux's arm64 hwcap bits in order (arch/arm64/include/uapi/asm/hwcap.h), under the names
# /proc/cpuinfo's "Features" line gives them (arch/arm64/kernel/cpuinfo.c).
ARM64_HWCAP = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm "
               "jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat "
               "ilrcpc flagm ssbs sb paca pacg").split()
ARM64_HWCAP2 = ("dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm "
                "svef32mm svef64mm svebf16 i8mm bf16 dgh rng bti mte ecv afp rpres mte3 sme "
                "smei16i64 smef64f64 smei8i32 smef16f32 smeb16f32 smef32f32 smefa64 wfxt ebf16 "
                "sveebf16 cssc rprfm sve2p1 sme2 sme2p1 smei16i32 smebi32i32 smeb16b16 "
                "smef16f16 mops hbc").split()
# x86's flags that change which kernels XNNPACK runs (of the hundred /proc/cpuinfo lists).
X86_KERNEL_FLAGS = ("sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw",
                    "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni",
                    "amx_int8", "amx_bf16")


def cpu_facts(machine: str) -> dict:
    """The CPU as this process sees it, which is what decides the kernels it runs.

    On arm64 the features come from the ELF auxiliary vector (AT_HWCAP, AT_HWCAP2), what the
    kernel (or qemu, emulating one) tells every program, and what XNNPACK's own detection
    reads; elsewhere, and where /proc/self/auxv cannot be read, from /proc/cpuinfo's
    "Features" or "flags" line. The model is cpuinfo's name for the CPU.
    """
    facts = {"features": None, "features_from": None, "model": None}
    cpuinfo = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() not in cpuinfo:
                    cpuinfo[key.strip()] = value.strip()
    except OSError:
        pass
    part = cpuinfo.get("CPU part")
    facts["model"] = (cpuinfo.get("model name") or cpuinfo.get("Model") or cpuinfo.get("Hardware")
                      or (f"CPU implementer {cpuinfo.get('CPU implementer')}, part {part}"
                          if part else None))
    if machine in ("aarch64", "arm64"):
        hwcaps = auxiliary_vector((AT_HWCAP, AT_HWCAP2))
        if hwcaps:
            facts["features"] = (
                [name for bit, name in enumerate(ARM64_HWCAP) if hwcaps.get(AT_HWCAP, 0) >> bit & 1]
                + [name for bit, name in enumerate(ARM64_HWCAP2)
                   if hwcaps.get(AT_HWCAP2, 0) >> bit & 1])
            facts["features_from"] = "auxv"
            return facts
    listed = (cpuinfo.get("Features") or cpuinfo.get("flags") or "").split()
    if listed:
        if "flags" in cpuinfo and "Features" not in cpuinfo:
            listed = [flag for flag in listed if flag in X86_KERNEL_FLAGS]
        facts["features"], facts["features_from"] = listed, "/proc/cpuinfo"
    return facts


def auxiliary_vector(wanted: tuple) -> dict:
    """{AT_* type: value} from /proc/self/auxv (pairs of native words), {} where unreadable."""
    import struct

    word = struct.calcsize("P")
    try:
        with open("/proc/self/auxv", "rb") as f:
            data = f.read()
    except OSError:
        return {}
    found = {}
    for offset in range(0, len(data) - 2 * word + 1, 2 * word):
        kind, value = struct.unpack_from(f"{'Q' if word == 8 else 'I'}" * 2, data, offset)
        if kind == 0:  # AT_NULL ends the vector
            break
        if kind in wanted:
            found[kind] = value
    return found


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


def open_session(args, module, result: dict):
    """The model loaded through the API --runtime names, its plan recorded."""
    started = time.perf_counter()
    result["runtime"]["api"] = ("CompiledModel" if args.runtime == "compiled_model"
                                else "Interpreter")
    if args.runtime == "compiled_model":
        if args.delegate != "xnnpack":
            raise Failed(f"--runtime compiled_model runs on LiteRT's CPU accelerator (XNNPACK); "
                         f"time --delegate {args.delegate} with --runtime interpreter")
        session = CompiledModelSession(args.model, args.threads)
        result["fully_accelerated"] = bool(session.model.is_fully_accelerated())
    else:
        session = InterpreterSession(create_interpreter(module, args.model, args.threads,
                                                        args.delegate, args.edgetpu_library))
        result.update(execution(session.interpreter))
    result["init_ms"] = ms((time.perf_counter() - started) * 1e3)
    result.update(inputs=describe_tensors(session.input_details()),
                  outputs=describe_tensors(session.output_details()))
    return session


def benchmark(args, result: dict) -> None:
    """Fills `result` as it goes, so that a failure still reports what was learnt before it."""
    if not os.path.isfile(args.model):
        raise Failed(f"{args.model} does not exist or is not a file")
    result.update(file_facts(args.model))
    package, version, module = import_runtime()
    result["runtime"] = {"package": package, "version": version}
    session = open_session(args, module, result)
    if args.delegate == "edgetpu" and result.get("edgetpu_ops") == 0:
        raise Failed("the model is not compiled for the Edge TPU (it has no edgetpu-custom-op): "
                     "compile it with edgetpu_compiler, or time it with --delegate xnnpack")
    if args.require_full_delegation and result.get("ops_outside_delegate"):
        outside = ", ".join(f"{op} {n}" for op, n in result["ops_outside_delegate"].items())
        raise Failed(f"--require_full_delegation: {args.delegate} left ops to the builtin CPU "
                     f"kernels ({outside}) in {result.get('partitions')} partition(s)")

    for detail in session.input_details():
        signature = [int(d) for d in detail.get("shape_signature", detail["shape"])]
        if any(d < 0 for d in signature[1:]):  # LiteRT allocates them as 1: a 1 x 1 image
            raise Failed(f"input {detail['name']} has dynamic dimensions (shape {signature}); "
                         f"timed at {[int(d) for d in detail['shape']]} the figures would not be "
                         "the model's: convert it with a fixed input shape")
    inputs = choose_inputs(args, session.input_details(), result)
    session.set_inputs(inputs)
    time_runs(session, args, result)
    if args.expect:
        rule = check_rule(result["runtime"], args.reference_runtime)
        result["check"] = check = check_outputs(session, inputs, args.expect, args.atol, rule,
                                                model=args.model)
        if not check["passed"] and beyond_rounding(check["outputs"]):
            cross_check(module, args, inputs, check, rule, result["cpu"]["features"])
        if not result["check"]["passed"]:
            raise Failed(f"the outputs differ from the reference: {result['check']['verdict']}")


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


def time_runs(session, args, result: dict) -> None:
    """The first inference (its outputs saved with --save_outputs), the warm-up, then the
    timed runs, or with --duration_s the sustained run."""
    result["first_ms"] = ms(time_invokes(session, 1)[0])
    if args.save_outputs:
        write_npz(args.save_outputs, session.outputs())
    warmups = time_invokes(session, args.warmup)
    result["warmup_avg_ms"] = ms(np.mean(warmups)) if warmups else None
    if args.duration_s:
        result["sustained"] = sustain(session, args.duration_s, args.sample_s,
                                      args.throttle_threshold)
        times = result["sustained"].pop("settled_times")
    else:
        times = time_invokes(session, args.runs)
    result.update(runs=len(times), latency_ms=latency_summary(times), **peak_memory())


def check_outputs(session, inputs: list, expect: str, atol, default, model=None) -> dict:
    """One more inference on the same inputs, its outputs against the host's references (a
    detector's filled detection slots only, when `model` is given)."""
    details = session.output_details()
    references = read_npz(expect, details, "output")
    session.set_inputs(inputs)
    time_invokes(session, 1)
    layout = detection_layout(model, details) if model else None
    outputs, references, detections = filled_detections(session.outputs(), references, layout)
    check = compare(outputs, references, details, atol, default)
    if detections is not None:
        check["detections"] = detections
    return check


# --- Sustained runs ------------------------------------------------------------------------

SETTLED_SHARE = 0.25  # the last quarter of a sustained run is what the device settles to


def sustain(session, duration_s: float, sample_s: float, threshold: float) -> dict:
    """Invokes back to back for `duration_s`; every `sample_s` one sample: the window's median
    latency with the CPU frequencies and temperatures read at its end.

    A phone that throttles after two minutes must not be reported at its cold speed, so the
    run's latency is that of its last quarter (settled_times), and the record says whether
    latency rose, or the frequency fell, by more than `threshold` from the first sample.
    """
    samples, settled = [], []
    started = time.monotonic()
    while True:
        window_start = time.monotonic()
        times = []
        while not times or time.monotonic() - window_start < sample_s:
            times.extend(time_invokes(session, 1))
        elapsed = time.monotonic() - started
        khz = read_cpu_khz()
        samples.append({"t_s": round(elapsed, 3), "runs": len(times),
                        "median_ms": ms(np.median(times)), "max_ms": ms(max(times)),
                        "mean_khz": round(float(np.mean(khz))) if khz else None,
                        "hottest_c": max(read_thermal_c().values(), default=None)})
        if elapsed >= duration_s * (1 - SETTLED_SHARE):
            settled.extend(times)
        if elapsed >= duration_s:
            break
    return {"duration_s": duration_s, "sample_s": sample_s, "samples": samples,
            **throttling(samples, threshold), "settled_times": settled}


def settled_samples(samples: list) -> list:
    """The samples of the last quarter of a sustained run (at least one)."""
    return samples[-max(1, round(len(samples) * SETTLED_SHARE)):]


def throttling(samples: list, threshold: float) -> dict:
    """First sample against the last quarter's: did latency rise or the frequency fall by more
    than `threshold` (a fraction)?"""
    first, settled = samples[0], settled_samples(samples)
    cold_ms = first["median_ms"]
    hot_ms = float(np.median([s["median_ms"] for s in settled]))
    facts = {"threshold": threshold, "cold_ms": cold_ms, "settled_ms": ms(hot_ms),
             "latency_rise": round(hot_ms / cold_ms - 1, 4) if cold_ms else None,
             "frequency_drop": None}
    khz = [s["mean_khz"] for s in settled if s["mean_khz"]]
    if first["mean_khz"] and khz:
        facts["frequency_drop"] = round(1 - float(np.median(khz)) / first["mean_khz"], 4)
    facts["throttled"] = bool((facts["latency_rise"] or 0) > threshold
                              or (facts["frequency_drop"] or 0) > threshold)
    return facts


def read_cpu_khz() -> list:
    """Each CPU's current frequency (cpufreq), where the kernel exposes it."""
    found = []
    for cpu in range(os.cpu_count() or 0):
        try:
            with open(f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq") as f:
                found.append(int(f.read().strip()))
        except (OSError, ValueError):
            pass
    return found


def read_thermal_c() -> dict:
    """{zone type: degrees Celsius} of the readable thermal zones."""
    found = {}
    for zone in range(64):
        base = f"/sys/class/thermal/thermal_zone{zone}"
        if not os.path.isdir(base):
            continue
        try:
            with open(base + "/temp") as f:
                value = int(f.read().strip())
            with open(base + "/type") as f:
                kind = f.read().strip()
        except (OSError, ValueError):
            continue
        found[f"zone{zone}:{kind}"] = value / 1000 if abs(value) > 200 else float(value)
    return found


# --- Describing the target -----------------------------------------------------------------


def describe() -> dict:
    """What this board runs models with: the runtime, its APIs, the CPU as seen from here."""
    facts = host_facts()
    try:
        package, version, _ = import_runtime()
        facts["runtime"] = {"package": package, "version": version}
        facts["runtime"]["apis"] = ["Interpreter"] + (
            ["CompiledModel"] if package == "ai_edge_litert" and has_module(
                "ai_edge_litert.compiled_model") else [])
    except Failed as err:
        facts["runtime"] = {"package": None, "reason": str(err)}
    facts["numpy"] = np.__version__
    return facts


def has_module(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def read_result(stdout: str):
    """For the host: the JSON object a run printed (its last line starting with "{"), or
    None when it printed none, or a damaged one."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    try:
        result = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    return result if isinstance(result, dict) else None


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
    add("model", nargs="?", help="the .tflite file")
    add("--describe", action="store_true", help="print the runtime, its APIs and the CPU "
        "features as this Python sees them (one JSON line), and time nothing")
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
    add("--reference_runtime", metavar="PACKAGE==VERSION", help="the runtime the --expect "
        "references came from (ai_edge_litert==2.3.0, say): against another one, int8 "
        "outputs must track the references (SQNR >= 10 dB) rather than match them to a step")
    add("--save_inputs", metavar="NPZ", help="write the inputs used")
    add("--save_outputs", metavar="NPZ", help="write the outputs of the first inference")
    add("--runtime", choices=("interpreter", "compiled_model"), default="interpreter",
        help="the API timed: interpreter (tflite_runtime's and ai_edge_litert's Interpreter) "
        "or compiled_model (ai_edge_litert 2's CompiledModel) (interpreter)")
    add("--require_full_delegation", action="store_true",
        help="fail when the delegate leaves any op to the builtin CPU kernels")
    add("--duration_s", type=float, metavar="T", help="sustained run: invoke back to back for "
        "T seconds instead of --runs, sampling latency, CPU frequency and temperature")
    add("--sample_s", type=float, default=1.0, metavar="S",
        help="sustained run: seconds per sample (1)")
    add("--throttle_threshold", type=float, default=0.1, metavar="F",
        help="sustained run: latency rising, or frequency falling, by more than this fraction "
        "from the first sample to the last quarter is throttling (0.1)")
    args = parser.parse_args(argv)
    if args.describe:
        return args
    if not args.model:
        parser.error("the .tflite model is required (or --describe)")
    for flag in ("duration_s", "sample_s"):
        value = getattr(args, flag)
        if value is not None and not (value > 0 and math.isfinite(value)):
            parser.error(f"--{flag} must be a positive number of seconds")
    if not (args.throttle_threshold > 0 and math.isfinite(args.throttle_threshold)):
        parser.error("--throttle_threshold must be a positive fraction, such as 0.1")
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
    if args.describe:
        result_stream.write(json.dumps(json_safe(describe())) + "\n")
        result_stream.flush()
        return 0
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
