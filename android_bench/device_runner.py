#!/usr/bin/env python3
"""Times a .tflite model with the LiteRT interpreter and prints one JSON line.

This single file is copied to Linux boards (Coral Dev Board, Raspberry Pi with a Coral USB
Accelerator) and run there with whatever they have: Python 3.7+, numpy, and ai_edge_litert or
tflite_runtime. It imports nothing else, so argparse rather than absl.

  python3 device_runner.py model.tflite --threads 1 --warmup 10 --runs 50 --delegate xnnpack
  python3 device_runner.py model_edgetpu.tflite --delegate edgetpu
  python3 device_runner.py model.tflite --inputs in.npz --expect out.npz   # an interpreter test

Delegates: cpu (plain builtin kernels), xnnpack (LiteRT's default CPU delegate), edgetpu
(libedgetpu.so.1). With --expect it also checks the outputs against reference outputs computed
on the host: integer outputs may differ by --atol quantization steps (default 1), float ones by
--atol absolute (default 1e-4) plus 1e-4 relative. Exit status: 0 ok, 1 failed, 2 usage.
"""

import argparse
import collections
import hashlib
import json
import os
import platform
import sys
import time

import numpy as np

EDGETPU_LIBRARY = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib",
                   "Windows": "edgetpu.dll"}


class Failed(Exception):
    """The model could not be run as asked; the message is the reason, one line."""


def runtime():
    """(package name, version, interpreter module): ai_edge_litert, else tflite_runtime."""
    try:
        from ai_edge_litert import interpreter as module
        package = "ai_edge_litert"
    except ImportError:
        try:
            from tflite_runtime import interpreter as module
            package = "tflite_runtime"
        except ImportError:
            raise Failed("neither ai_edge_litert nor tflite_runtime is installed: "
                         "pip install ai-edge-litert (or tflite-runtime)")
    try:
        from importlib import metadata
        version = metadata.version(package.replace("_", "-"))
    except Exception:  # Python 3.7 has no importlib.metadata; the package may not say
        version = getattr(sys.modules.get(package), "__version__", None)
    return package, version, module


def make_interpreter(module, path, threads, delegate, edgetpu_library):
    kwargs = {"model_path": path, "num_threads": threads}
    if delegate == "cpu":
        resolver = getattr(module, "OpResolverType", None)
        if resolver is None:
            raise Failed("this runtime cannot turn XNNPACK off (no OpResolverType)")
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    elif delegate == "edgetpu":
        library = edgetpu_library or EDGETPU_LIBRARY.get(platform.system(), "libedgetpu.so.1")
        try:
            kwargs["experimental_delegates"] = [module.load_delegate(library)]
        except (ValueError, OSError) as err:
            raise Failed("cannot load the Edge TPU delegate {} ({}): install the Edge TPU "
                         "runtime (Debian package libedgetpu1-std, https://coral.ai/software/) "
                         "and attach an Edge TPU".format(library, str(err).splitlines()[0]))
    try:
        interpreter = module.Interpreter(**kwargs)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as err:
        raise Failed("the model does not load: {}".format(" ".join(str(err).split())[:300]))
    return interpreter


def execution(interpreter):
    """Delegate partitions and the ops left to the plain kernels.

    The interpreter lists every original op and, after them, one DELEGATE node per partition
    (with the partition's boundary tensors as its inputs and outputs). An op belongs to a
    partition when it lies on a path from the partition's inputs to its outputs; walking back
    from the outputs to the inputs finds them.
    """
    try:
        ops = interpreter._get_ops_details()  # noqa: SLF001 - the only view of the plan
    except AttributeError:
        return {}
    partitions = [op for op in ops if op["op_name"] == "DELEGATE"]
    originals = [op for op in ops if op["op_name"] != "DELEGATE"]
    producer = {int(t): op["index"] for op in originals for t in op["outputs"]}
    inputs_of = {op["index"]: [int(t) for t in op["inputs"] if t >= 0] for op in originals}
    delegated = set()
    for partition in partitions:
        boundary = set(int(t) for t in partition["inputs"])
        stack = [int(t) for t in partition["outputs"]]
        while stack:
            tensor = stack.pop()
            op = producer.get(tensor)
            if tensor in boundary or op is None or op in delegated:
                continue
            delegated.add(op)
            stack.extend(inputs_of[op])
    outside = collections.Counter(op["op_name"] for op in originals
                                  if op["index"] not in delegated)
    return {"partitions": len(partitions), "ops_outside_delegate": dict(outside),
            "edgetpu_ops": outside.pop("edgetpu-custom-op", 0)}


def random_inputs(details, seed):
    rng = np.random.RandomState(seed)
    inputs = []
    for d in details:
        dtype = np.dtype(d["dtype"])
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            inputs.append(rng.randint(info.min, info.max + 1, size=d["shape"]).astype(dtype))
        else:
            inputs.append(rng.uniform(-1, 1, size=d["shape"]).astype(dtype))
    return inputs


def load_arrays(path, details):
    """Arrays of an .npz by tensor name, else in order (arr_0, arr_1, ...)."""
    with np.load(path) as archive:
        names = list(archive.keys())
        arrays = []
        for i, d in enumerate(details):
            key = d["name"] if d["name"] in archive else (names[i] if i < len(names) else None)
            if key is None:
                raise Failed("{} has no array for tensor {}".format(path, d["name"]))
            arrays.append(archive[key].astype(d["dtype"]).reshape(d["shape"]))
    return arrays


def invoke(interpreter, inputs):
    for d, value in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(d["index"], value)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()]


def check(outputs, expected, details, atol):
    """Largest difference, in quantization steps for integer outputs, else absolute."""
    worst, passed = 0.0, True
    for out, ref, d in zip(outputs, expected, details):
        if np.issubdtype(out.dtype, np.integer):
            diff = float(np.max(np.abs(out.astype(np.int64) - ref.astype(np.int64))))
            ok = diff <= (1 if atol is None else atol)
        else:
            diff = float(np.max(np.abs(out - ref)))
            tolerance = (1e-4 if atol is None else atol) + 1e-4 * float(np.max(np.abs(ref)))
            ok = diff <= tolerance
        worst, passed = max(worst, diff), passed and ok
    return {"passed": passed, "max_abs_diff": worst,
            "atol": atol if atol is not None else "1 step (integer) / 1e-4 (float)"}


def save_npz(path, arrays):
    tmp = "{}.part{}.npz".format(path, os.getpid())
    np.savez(tmp, *arrays)
    os.replace(tmp, path)


def peak_rss_mb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if platform.system() == "Darwin" else peak / 1024


def tensor_info(details):
    return [{"name": d["name"], "shape": [int(s) for s in d["shape"]],
             "dtype": np.dtype(d["dtype"]).name,
             "quantization": [float(d["quantization"][0]), int(d["quantization"][1])]}
            for d in details]


def measure(args):
    package, version, module = runtime()
    with open(args.model, "rb") as f:
        content = f.read()
    result = {"model": args.model, "sha256": hashlib.sha256(content).hexdigest(),
              "size_bytes": len(content), "runtime": {"package": package, "version": version},
              "python": platform.python_version(),
              "platform": dict(zip(("system", "node", "release", "version", "machine"),
                                   platform.uname()[:5])),
              "delegate": args.delegate, "threads": args.threads}
    started = time.perf_counter()
    interpreter = make_interpreter(module, args.model, args.threads, args.delegate,
                                   args.edgetpu_library)
    result["init_ms"] = (time.perf_counter() - started) * 1e3
    inputs_details = interpreter.get_input_details()
    inputs = (load_arrays(args.inputs, inputs_details) if args.inputs
              else random_inputs(inputs_details, args.seed))

    started = time.perf_counter()
    first_outputs = invoke(interpreter, inputs)
    result["first_ms"] = (time.perf_counter() - started) * 1e3
    warmups = []
    for _ in range(args.warmup):
        started = time.perf_counter()
        invoke(interpreter, inputs)
        warmups.append((time.perf_counter() - started) * 1e3)
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        invoke(interpreter, inputs)
        times.append((time.perf_counter() - started) * 1e3)
    t = np.array(times)
    result.update(
        warmup_avg_ms=float(np.mean(warmups)) if warmups else None,
        runs=len(times),
        latency_ms={"median": float(np.median(t)), "p90": float(np.percentile(t, 90)),
                    "mean": float(t.mean()), "std": float(t.std()), "min": float(t.min()),
                    "max": float(t.max())},
        peak_rss_mb=peak_rss_mb(),
        inputs=tensor_info(inputs_details),
        outputs=tensor_info(interpreter.get_output_details()),
        **execution(interpreter))
    if args.save_outputs:
        save_npz(args.save_outputs, first_outputs)
    if args.expect:
        output_details = interpreter.get_output_details()
        expected = load_arrays(args.expect, output_details)
        result["check"] = check(invoke(interpreter, inputs), expected, output_details, args.atol)
    return result


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("model", help="the .tflite file")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    parser.add_argument("--runs", type=int, default=50, help="timed runs (default 50)")
    parser.add_argument("--delegate", choices=("cpu", "xnnpack", "edgetpu"), default="xnnpack")
    parser.add_argument("--edgetpu_library", help="path of libedgetpu (default: the platform's)")
    parser.add_argument("--inputs", help=".npz of input arrays (default: random, seeded)")
    parser.add_argument("--expect", help=".npz of reference outputs to check against")
    parser.add_argument("--atol", type=float, help="tolerance of the --expect check")
    parser.add_argument("--save_outputs", help="write the first inference's outputs (.npz)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.runs < 1 or args.warmup < 0:
        parser.error("--threads and --runs must be at least 1, --warmup at least 0")
    return args


def _quiet_failed_delegate_cleanup():
    """LiteRT's Delegate.__del__ raises after a failed load_delegate; keep stderr to one line."""
    if not hasattr(sys, "unraisablehook"):  # Python 3.7
        return
    default = sys.unraisablehook

    def hook(unraisable):
        if "Delegate.__del__" not in repr(unraisable.object):
            default(unraisable)

    sys.unraisablehook = hook


def main(argv=None):
    args = parse_args(argv)
    _quiet_failed_delegate_cleanup()
    # Native code may print on stdout; keep it for the one JSON line only.
    sys.stdout.flush()
    json_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    try:
        if not os.path.isfile(args.model):
            raise Failed("model file {} does not exist".format(args.model))
        result = dict(status="ok", **measure(args))
        code = 0 if result.get("check", {}).get("passed", True) else 1
        if code:
            result["status"], result["reason"] = "failed", "outputs differ from the reference"
    except Failed as err:
        result, code = {"status": "failed", "reason": str(err), "model": args.model}, 1
    json_out.write(json.dumps(result) + "\n")
    json_out.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
