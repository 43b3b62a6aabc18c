"""Benchmark a matrix of models x targets x configurations, then compare.

  python -m android_bench run --models fd_mobilenet,mobilenet_v2 --modes float32,int8
  python -m android_bench run --models a.tflite,b.tflite --targets adb --threads 1,4 \\
      --delegates xnnpack,gpu --benchmark_binary ~/android_aarch64_benchmark_model
  python -m android_bench run --targets ssh:mendel@coral.local --delegates edgetpu --models m_edgetpu.tflite
  python -m android_bench run --models @zoo,@fd_mobilenet_paper --rounds 5 --cooldown_s 0
  python -m android_bench run --models @ssdlite_paper --modes float32,int8 --targets adb

Models are .tflite paths, zoo names (name[:alpha=0.5][:groups=3][:minimalistic]) that the
converter builds first into --artifacts_dir, stock:NAME for the keras.applications network
converted the stock way (to time ours against), or @zoo / @fd_mobilenet_paper /
@ssdlite_paper for the benchmark suites (android_bench/suites.py). Detectors
(ssdlite_mobilenet_v3_small[:reduced_tail], ...) are zoo names too: converted with their
post-processing op (TFLite_Detection_PostProcess), which benchmark_model and LiteRT's
interpreter resolve as a builtin custom op. --rounds N runs every cell N times, interleaved
(each cell once per round), and compares the median over the rounds: on a shared or warming
machine that compares models side by side rather than minute by minute.

Targets: local (this machine, under this very Python), adb (every device the adb server
lists), adb:SERIAL, ssh:user@host[:port][:python=PATH][:identity=KEY]. Targets run in
parallel; the cells of one target run one at a time, pinned to its big cores, with a cool-down
between them.

Android runs TFLite's official benchmark_model binary, pushed to /data/local/tmp/tfmobile:
download the prebuilt one for the phone's ABI from
  https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/lite/tools/nightly/latest/android_aarch64_benchmark_model
(android_arm for 32-bit phones) and pass --benchmark_binary, or put it in
~/.cache/tfmobile/benchmark_model/. Linux boards and this machine run the single-file
android_bench/device_runner.py under the target's Python (numpy plus ai_edge_litert or
tflite_runtime): a board's python3 unless the target or --ssh_python names another, this
machine's the harness's own. Every cell is appended to --results as it finishes (JSON Lines,
raw output beside it); --resume runs only what is missing, rounds included.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import pathlib
import re
import sys

from absl import flags

from android_bench import bench, cli as bench_cli, compare, models as models_lib, probe
from android_bench import targets as targets_lib
from android_bench.results import Store, StoreError
from tfmobile.artifacts import ConversionError, WriteError
from tfmobile_core import cli

FLAGS = flags.FLAGS
bench_cli.define_target_flags()
flags.DEFINE_list("models", ["fd_mobilenet", "mobilenet_v2"], ".tflite files, zoo names "
                  "(name[:alpha=..][:input_size=..][:groups=..][:minimalistic]), stock:NAME "
                  "(keras.applications converted the stock way) and suites (@zoo, "
                  "@fd_mobilenet_paper, @ssdlite_paper). Detectors (ssdlite_*) are zoo "
                  "names too.")
flags.DEFINE_integer("rounds", 1, "Run every cell this many times, interleaved (all cells "
                     "once per round); the comparison takes the median over the rounds.",
                     lower_bound=1)
flags.DEFINE_list("modes", ["float32", "int8"], "Zoo models: the converter modes to build "
                  "(float32, float16, dynamic, int8).")
flags.DEFINE_integer("input_size", 224, "Zoo models: input size unless the entry gives one. "
                     "Not given: each network's default, 224 for classifiers and the paper's "
                     "320 for SSDLite detectors.")
flags.DEFINE_boolean("rebuild", False, "Zoo models: convert again even when --artifacts_dir "
                     "has them (after a converter upgrade).")
flags.DEFINE_string("artifacts_dir", "artifacts", "Where zoo models are converted to (reused "
                    "when already there).")
flags.DEFINE_list("targets", ["local"], "local, adb (every adb device), adb:SERIAL "
                  "(adb:SERIAL:python=PATH names its Python for --runner device_runner), "
                  "ssh:user@host[:port][:python=PATH][:identity=KEY].")
flags.DEFINE_list("threads", ["1"], "Thread counts to run (one cell each).")
flags.DEFINE_list("delegates", ["xnnpack"], f"Delegates to run: {', '.join(bench.DELEGATES)} "
                  "(cpu = the plain builtin kernels).")
flags.DEFINE_string("cpus", "big", "CPU pinning with taskset: big (the fastest cores), all, "
                    "or a hex mask such as f0.")
flags.DEFINE_integer("warmup_runs", 10, "Untimed inferences before the timed ones.", lower_bound=0)
flags.DEFINE_integer("num_runs", 50, "Timed inferences per cell.", lower_bound=1)
flags.DEFINE_list("runtime", ["interpreter"], "Device runner: the LiteRT APIs to time, one cell "
                  "each: interpreter (tflite_runtime's and ai_edge_litert's Interpreter), "
                  "compiled_model (ai_edge_litert 2's CompiledModel).")
flags.DEFINE_boolean("expect", False, "Interpreter test: run each model once on this machine "
                     "(XNNPACK, seeded random inputs) and check every target's outputs against "
                     "those references: int8 within 1 quantization step on the same runtime, "
                     "tracking them (SQNR >= 10 dB) on another runtime, whose kernels round "
                     "differently; float within 1e-4 + 1e-4 x the largest output. A failing "
                     "cell says whether the outputs still track the host's (kernels rounding "
                     "differently) or not, and then whether the builtin kernels agree (the "
                     "delegate's kernels on that CPU at fault) or not (a broken model or "
                     "runtime). A detector's TFLite_Detection_PostProcess outputs compare as "
                     "floats, num_detections and the detection slots it filled. Device runner "
                     "only.")
flags.DEFINE_float("duration_s", None, "Sustained run: run each model continuously for this "
                   "many seconds (instead of --num_runs), sampling latency with CPU frequency "
                   "and temperature; the latency reported is the last quarter's, and a rise of "
                   "latency (or fall of frequency) over 10% from the start is flagged as "
                   "throttling. The comparison draws latency over time.")
flags.DEFINE_boolean("require_full_delegation", False, "Fail a cell whose delegate leaves any "
                     "op to the CPU (benchmark_model's --require_full_delegation; the device "
                     "runner checks its partitions).")
flags.DEFINE_boolean("op_profiling", False, "benchmark_model: record the per-op profile "
                     "(--enable_op_profiling); the comparison shows each model's top ops.")
flags.DEFINE_enum("runner", "auto", ["auto", "benchmark_model", "device_runner"],
                  "How cells are timed: auto = benchmark_model on adb devices, the Python "
                  "device runner elsewhere (use device_runner on an adb device with python3).")
flags.DEFINE_string("benchmark_binary", None, "TFLite's benchmark_model for the adb devices.")
flags.DEFINE_float("cooldown_s", 2.0, "Pause between two cells on one target.", lower_bound=0)
flags.DEFINE_float("cooldown_below_c", None, "Instead of the pause, wait until every thermal "
                   "zone of the target is below this temperature (Celsius).")
flags.DEFINE_float("cooldown_max_s", 300, "Longest wait for --cooldown_below_c.")
flags.DEFINE_string("results", "bench_results/results.jsonl", "Results store (JSON Lines).")
flags.DEFINE_boolean("resume", False, "Skip the cells the results store already has.")
flags.DEFINE_string("baseline", None, "Model name the comparison's speed-ups are against "
                    "(e.g. mobilenet_v1_1_224_float32).")
flags.DEFINE_boolean("compare", True, "Write the comparison tables and plots after the run.")
flags.DEFINE_boolean("verbose", False, "Show TensorFlow's and the converter's own logging.")

CACHE = pathlib.Path(os.path.expanduser("~/.cache/tfmobile/benchmark_model"))
ABI_BINARIES = {"arm64-v8a": "android_aarch64", "armeabi-v7a": "android_arm",
                "x86_64": "android_x86_64", "x86": "android_x86"}


def configs_from_flags() -> list[bench.Config]:
    for name in ("models", "threads", "delegates"):
        if not FLAGS[name].value:
            raise cli.UsageError(f"--{name} is empty: nothing to run (see --help)")
    unknown = [d for d in FLAGS.delegates if d not in bench.DELEGATES]
    if unknown:
        raise cli.UsageError(f"unknown delegate {unknown[0]!r}; choose from {', '.join(bench.DELEGATES)}")
    if not all(t.isdigit() and int(t) > 0 for t in FLAGS.threads):
        raise cli.UsageError(f"--threads must be positive integers, got {','.join(FLAGS.threads)}")
    # A hex mask as taskset reads it ("-f", "1_0" and "0" pass int(x, 16) but pin to nothing).
    if FLAGS.cpus not in ("big", "all") and not (
            re.fullmatch(r"(0x)?[0-9a-fA-F]+", FLAGS.cpus) and int(FLAGS.cpus, 16) > 0):
        raise cli.UsageError(f"--cpus must be big, all or a hex mask of at least one CPU (such as "
                             f"f0), got {FLAGS.cpus!r}")
    unknown = [r for r in FLAGS.runtime if r not in ("interpreter", "compiled_model")]
    if unknown or not FLAGS.runtime:
        raise cli.UsageError(f"--runtime must be interpreter and/or compiled_model, got "
                             f"{','.join(FLAGS.runtime) or 'nothing'}")
    if FLAGS.duration_s is not None and not (0 < FLAGS.duration_s < float("inf")):
        raise cli.UsageError(f"--duration_s must be a positive number of seconds, got "
                             f"{FLAGS.duration_s}")
    threads = dict.fromkeys(int(t) for t in FLAGS.threads)  # a cell named twice runs once
    return [bench.Config(threads=t, delegate=d, cpus=FLAGS.cpus,
                         warmup_runs=FLAGS.warmup_runs, num_runs=FLAGS.num_runs, runtime=r,
                         check=FLAGS.expect, duration_s=FLAGS.duration_s,
                         require_full_delegation=FLAGS.require_full_delegation,
                         op_profiling=FLAGS.op_profiling)
            for t, d, r in itertools.product(threads, dict.fromkeys(FLAGS.delegates),
                                             dict.fromkeys(FLAGS.runtime))]


def targets_from_flags() -> list[targets_lib.Target]:
    chosen: list[targets_lib.Target] = []
    server, listed = None, None
    for spec in FLAGS.targets + [f"ssh:{s}" for s in FLAGS.ssh]:
        kind, _, rest = spec.partition(":")
        if spec == "local":
            chosen.append(targets_lib.LocalTarget())
        elif kind == "adb":
            try:
                serial, options = targets_lib.split_options(rest, ("python",))
            except ValueError as err:
                raise cli.UsageError(str(err)) from None
            if server is None:  # connect and list once, however many adb targets are named
                server = bench_cli.adb_server()
                listed = bench_cli.adb_devices(server)
            ready = [d["serial"] for d in listed if d["state"] == "device"]
            if serial:
                if serial not in ready:
                    raise targets_lib.TargetError(f"adb device {serial} is not attached "
                                                  f"(attached: {', '.join(ready) or 'none'})")
                ready = [serial]
            elif not ready:
                raise targets_lib.TargetError("no adb device attached (see `adb devices`)")
            chosen += [targets_lib.AdbTarget(s, server, **options) for s in ready]
        elif kind == "ssh" and rest:
            chosen.append(bench_cli.ssh_target(rest))
        else:
            raise cli.UsageError(f"unknown target {spec!r}; use local, adb, adb:SERIAL[:python=PATH]"
                                 f" or ssh:{targets_lib.SshTarget.SPEC}")
    if not chosen:
        raise cli.UsageError("--targets is empty: nothing to run on (local, adb, adb:SERIAL or "
                             f"ssh:{targets_lib.SshTarget.SPEC})")
    unique = {t.name: t for t in chosen}
    return list(unique.values())


def input_size_from_flags() -> int | None:
    """--input_size when given; else None, so that each zoo network takes its own default (a
    detector is not converted at the classifiers' 224 by accident)."""
    return FLAGS.input_size if FLAGS["input_size"].present else None


def runner_for(target: targets_lib.Target):
    kind = FLAGS.runner
    if kind == "auto":
        kind = "benchmark_model" if target.kind == "adb" else "device_runner"
    if kind == "device_runner":
        return bench.DeviceRunner(target.python)
    if FLAGS.benchmark_binary:
        binary = pathlib.Path(FLAGS.benchmark_binary).expanduser()
        if not binary.is_file():
            raise cli.UsageError(f"--benchmark_binary {binary} does not exist")
        return bench.BenchmarkModelRunner(binary)
    abi = probe.describe(target).get("abi") or "arm64-v8a"
    name = f"{ABI_BINARIES.get(abi, 'android_aarch64')}_benchmark_model"
    for candidate in (CACHE / name, CACHE / "benchmark_model"):
        if candidate.is_file():
            return bench.BenchmarkModelRunner(candidate)
    raise cli.UsageError(
        f"no benchmark_model binary for {target.name} ({abi}): download "
        f"https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/lite/"
        f"tools/nightly/latest/{name} to {CACHE / name} or pass --benchmark_binary")


def _progress(total: int):
    from tqdm import tqdm

    bar = tqdm(total=total, desc="benchmarking", unit="cell", file=sys.stderr, leave=False,
               disable=not cli.interactive())

    def on_cell(record):
        bar.update(1)
        if record.status != "ok":
            bar.write(f"failed: {record.target_name} {record.model.name}: {record.reason}")

    return bar, on_cell


def main(argv):
    del argv
    configs = configs_from_flags()
    store = Store(FLAGS.results)
    try:
        store.check_writable()
    except OSError as err:
        raise cli.UsageError(f"cannot write --results {FLAGS.results}: {err.strerror}") from None
    if FLAGS.compare:
        compare.check_output_dir(store.path.parent / "compare", "the comparison's directory",
                                 "move it, or pass --nocompare")
    try:
        recorded = store.records()  # a damaged store is found now, before an hour of benchmarks
    except StoreError as err:
        raise cli.UsageError(f"{err}; repair that line or choose another --results") from None
    try:
        targets = targets_from_flags()
        runners = {t.name: runner_for(t) for t in targets}
    except targets_lib.TargetError as err:
        raise cli.Failure(str(err)) from None
    # A mode no runner of this run has (--expect with benchmark_model alone, say) is a usage
    # error now; a delegate a runner lacks stays a failed cell with its reason, as before.
    asked = dataclasses.replace(configs[0], delegate="xnnpack")
    refusals = {runner.unsupported(asked) for runner in runners.values()}
    if None not in refusals:
        raise cli.UsageError(sorted(refusals)[0])
    if any(not e.endswith(".tflite") for e in FLAGS.models):
        cli.quiet_tensorflow(FLAGS.verbose)
    try:
        models = models_lib.resolve(FLAGS.models, FLAGS.modes, pathlib.Path(FLAGS.artifacts_dir),
                                    input_size=input_size_from_flags(),
                                    rebuild=FLAGS.rebuild,
                                    log=lambda m: print(m, file=sys.stderr))
    except models_lib.ModelError as err:
        raise cli.UsageError(str(err).splitlines()[0]) from None
    except ConversionError as err:
        raise cli.Failure(f"converting a zoo model failed: {err}") from None
    except WriteError as err:
        raise cli.Failure(str(err)) from None
    references = None
    if FLAGS.expect:
        try:
            references = bench.host_references(models, store.raw_dir / "references",
                                               log=lambda m: print(m, file=sys.stderr))
        except bench.CellFailed as err:
            raise cli.Failure(str(err)) from None
    if FLAGS.baseline and FLAGS.compare:
        known = {m.name for m in models} | {r.model.name for r in recorded}
        compare.check_baseline(FLAGS.baseline, known, "the models of this run or of --results")

    total = len(targets) * len(models) * len(configs) * FLAGS.rounds
    bar, on_cell = _progress(total)
    cooldown = bench.Cooldown(FLAGS.cooldown_s, FLAGS.cooldown_below_c, FLAGS.cooldown_max_s)
    with bar:
        counts = bench.run_matrix(targets, models, configs, runners, store, cooldown,
                                  resume=FLAGS.resume, rounds=FLAGS.rounds, on_cell=on_cell,
                                  references=references)
    rounds = f" ({FLAGS.rounds} rounds)" if FLAGS.rounds > 1 else ""
    print(f"{total} cells{rounds} on {len(targets)} target(s): {counts['ok']} ok, {counts['failed']} "
          f"failed, {counts['skipped']} already done; results: {store.path}")
    if FLAGS.compare:
        out_dir = store.path.parent / "compare"
        records = store.records()
        for _, text, files in compare.write_comparison(records, out_dir, baseline=FLAGS.baseline):
            print(f"\n{text}(files: {', '.join(map(str, files))})")
        if store.torn_lines:
            print(store.torn_note().lstrip("; ").capitalize())
    return 1 if counts["failed"] else 0
