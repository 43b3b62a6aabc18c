"""Running the benchmark matrix: models x targets x configurations.

Each target gets one worker thread; the cells on a target run one at a time with a cool-down
between them, because two benchmarks sharing a phone (or its heat) measure each other. Every
finished cell is appended to the results store at once; a target that disappears fails its
remaining cells with the reason while the other targets go on.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import pathlib
import shlex
import subprocess
import sys
import threading
import time
import uuid
from importlib import metadata

from android_bench import benchmark_model, device_runner, op_profile, probe
from android_bench.results import Store
from android_bench.targets import Target, TargetError
from tfmobile_core import atomic
from tfmobile_core.records import (BenchConfig, BenchmarkRecord, Metrics, ModelFile,
                                   RecordError, RunInfo, build_record)

DELEGATES = ("cpu", "xnnpack", "gpu", "nnapi", "edgetpu")
DEVICE_RUNNER = pathlib.Path(__file__).with_name("device_runner.py")
THROTTLE_THRESHOLD = 0.1  # latency up, or frequency down, by more than this is throttling
NNAPI_DEPRECATED_SDK = 35  # Android 15
Config = BenchConfig  # the record is the configuration


class CellFailed(Exception):
    """The cell ran but produced no figures (model will not load, delegate missing...)."""


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


class DeviceRunner:
    """android_bench/device_runner.py under the Python the target names (Target.python): the
    harness's own interpreter here, the board's (a venv's, say) over ssh."""

    name = "device_runner"
    delegates = ("cpu", "xnnpack", "edgetpu")

    def __init__(self, python: str = "python3"):
        self.python = python

    @property
    def identity(self) -> str:
        """What the cells' keys and tables tell apart: the runner and the interpreter."""
        return f"{self.name} ({self.python})"

    def files(self) -> dict[str, pathlib.Path]:
        return {"device_runner.py": DEVICE_RUNNER}

    def unsupported(self, config: Config) -> str | None:
        """Why this runner cannot run `config`, or None."""
        if config.delegate not in self.delegates:
            return (f"the {self.name} runner has no {config.delegate} delegate "
                    f"({', '.join(self.delegates)})")
        if config.op_profiling:
            return ("the LiteRT Python API gives no per-op profile; time the model with "
                    "--runner benchmark_model (TFLite's tool) for one")
        return None

    def command(self, model_remote: str, config: Config,
                references: tuple[str, str, str] | None = None) -> str:
        """`references`: the pushed inputs and outputs of the check, and their runtime."""
        argv = [self.python, "device_runner.py", model_remote,
                "--threads", str(config.threads), "--warmup", str(config.warmup_runs),
                "--runs", str(config.num_runs), "--delegate", config.delegate]
        if config.runtime != "interpreter":
            argv += ["--runtime", config.runtime]
        if config.duration_s:
            argv += ["--duration_s", f"{config.duration_s:g}"]
        if config.require_full_delegation:
            argv.append("--require_full_delegation")
        if references:
            argv += ["--inputs", references[0], "--expect", references[1],
                     "--reference_runtime", references[2]]
        return shlex.join(argv)

    def parse(self, stdout: str, stderr: str, returncode: int, config: Config) -> Metrics:
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        if not lines and returncode in (126, 127):  # the shell found no such interpreter
            raise CellFailed(f"{self.python} not found on the target ({_tail(stderr or stdout, 1)}"
                             "): name the Python that has LiteRT, ssh:user@host:python=PATH or "
                             "--ssh_python")
        if not lines and returncode in (132, -4):  # killed by SIGILL (128 + 4 from a shell)
            raise CellFailed("the runtime died on an illegal instruction (SIGILL): it was built "
                             "for a newer CPU than this one (see the target's cpu_features); "
                             "try the other API (--runtime) or an older runtime build")
        if not lines:
            raise CellFailed(f"device runner printed no result (exit {returncode}): "
                             f"{_tail(stderr or stdout)}")
        try:
            result = json.loads(lines[-1])
        except ValueError:
            raise CellFailed(f"device runner printed a damaged result: {lines[-1][:120]}") from None
        if not isinstance(result, dict):
            raise CellFailed(f"device runner printed no result object: {lines[-1][:120]}")
        if result.get("status") != "ok":
            raise CellFailed(result.get("reason") or f"device runner exit {returncode}")
        fields = {key: result.get(key) for key in (
            "init_ms", "first_ms", "warmup_avg_ms", "runs", "peak_rss_mb", "partitions",
            "ops_outside_delegate", "edgetpu_ops", "runtime", "check", "sustained",
            "fully_accelerated")}
        return _metrics({"latency_ms": result.get("latency_ms"), "latency_statistic": "median",
                         **fields}, "device runner")


class BenchmarkModelRunner:
    """TFLite's official `benchmark_model` binary (Android)."""

    name = "benchmark_model"
    delegates = ("cpu", "xnnpack", "gpu", "nnapi", "edgetpu")

    def __init__(self, binary: pathlib.Path):
        self.binary = binary

    def files(self) -> dict[str, pathlib.Path]:
        return {"benchmark_model": self.binary}

    def unsupported(self, config: Config) -> str | None:
        if config.runtime != "interpreter":
            return ("benchmark_model times the Interpreter; time the CompiledModel API with "
                    "--runner device_runner (a Python with ai_edge_litert 2 on the target)")
        if config.check:
            return ("benchmark_model cannot check outputs against references; check them with "
                    "--runner device_runner (a Python with LiteRT on the target)")
        return None

    def command(self, model_remote: str, config: Config,
                references: tuple[str, str, str] | None = None) -> str:
        extra = {"report_peak_memory_footprint": True}
        if config.op_profiling:
            extra["enable_op_profiling"] = True
        if config.require_full_delegation:
            extra["require_full_delegation"] = True
        tool_flags = dict(num_threads=config.threads, warmup_runs=config.warmup_runs,
                          num_runs=config.num_runs, delegate=config.delegate, extra=extra)
        if config.duration_s:
            return benchmark_model.sustained_script(model_remote, config.duration_s, **tool_flags)
        return shlex.join(["./benchmark_model", *benchmark_model.flags(model_remote, **tool_flags)])

    def parse(self, stdout: str, stderr: str, returncode: int, config: Config) -> Metrics:
        text = stdout + "\n" + stderr
        if config.duration_s:
            return self._parse_sustained(stdout, returncode, config)
        if benchmark_model.CPU_FALLBACK in text:
            raise CellFailed(f"--require_full_delegation: the {config.delegate} delegate did not "
                             f"take the whole graph (benchmark_model: {benchmark_model.CPU_FALLBACK})")
        try:
            parsed = benchmark_model.parse_output(text)
        except benchmark_model.BenchmarkOutputError as err:
            raise CellFailed(str(err)) from None
        if returncode != 0:
            raise CellFailed(f"benchmark_model exit {returncode}: {_tail(text)}")
        # The tool falls back to the CPU, exit 0, when NNAPI or an external delegate takes
        # nothing: those figures are not the delegate's.
        declined = {name: outcome for name, outcome in (parsed.get("delegates") or {}).items()
                    if outcome in (benchmark_model.UNUSED, benchmark_model.UNAVAILABLE)}
        if config.delegate in ("gpu", "nnapi", "edgetpu") and declined:
            raise CellFailed(f"the {config.delegate} delegate ran nothing ("
                             + ", ".join(f"{n}: {o}" for n, o in declined.items())
                             + "); the figures would be the CPU's")
        run = parsed.get("run_stats") or {}
        # nan: a phase that did not run (--warmup_runs 0 prints "Warmup (avg): nan")
        ms = lambda us: None if us is None or math.isnan(us) else us / 1000  # noqa: E731
        return _metrics({
            # Older tools print the runs' mean and std only; newer ones add p5/median/p95.
            "latency_ms": {"mean": ms(parsed["avg_us"]), "std": ms(parsed.get("std_us")),
                           "min": ms(run.get("min")), "max": ms(run.get("max")),
                           "median": ms(parsed.get("median_us")), "p90": None,
                           "p5": ms(run.get("p5")), "p95": ms(run.get("p95"))},
            "latency_statistic": "median" if parsed.get("median_us") is not None else "mean",
            "init_ms": ms(parsed.get("init_us")),
            "first_ms": ms(parsed.get("first_us")),
            "warmup_avg_ms": ms(parsed.get("warmup_avg_us")),
            "runs": run.get("count"),
            "peak_rss_mb": parsed.get("peak_mb") or parsed.get("overall_mb"),
            "op_profile": op_profile.parse(text) if config.op_profiling else None,
        }, "benchmark_model")

    def _parse_sustained(self, stdout: str, returncode: int, config: Config) -> Metrics:
        """The windows of a sustained run (benchmark_model.sustained_script) as samples; the
        latency is the last quarter's, as the device runner reports it."""
        try:
            samples = benchmark_model.parse_sustained(stdout)
        except benchmark_model.BenchmarkOutputError as err:
            raise CellFailed(str(err)) from None
        if returncode != 0:
            raise CellFailed(f"benchmark_model exit {returncode}: {_tail(stdout)}")
        verdict = device_runner.throttling(samples, THROTTLE_THRESHOLD)
        medians = [s["median_ms"] for s in device_runner.settled_samples(samples)]
        return _metrics({
            "latency_ms": {"median": verdict["settled_ms"], "min": min(medians),
                           "max": max(medians)},
            "latency_statistic": "median",
            "runs": sum(s["runs"] or 0 for s in samples),
            "sustained": {"duration_s": config.duration_s,
                          "sample_s": benchmark_model.window_seconds(config.duration_s),
                          "samples": samples, **verdict},
        }, "benchmark_model")

    @property
    def identity(self) -> str:
        return self.name


def _metrics(data: dict, tool: str) -> Metrics:
    """The figures a tool printed as the record's Metrics; a value of the wrong type or out of
    range (a negative or non-finite time) fails the cell instead of entering the results."""
    try:
        return build_record(Metrics, {k: v for k, v in data.items() if v is not None}, "metrics")
    except RecordError as err:
        raise CellFailed(f"{tool} printed unusable figures: {err}") from None


def cell_key(target_name: str, model: ModelFile, config: Config, runner: str) -> str:
    identity = json.dumps([target_name, model.sha256, config.to_json(), runner], sort_keys=True)
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def _versions() -> dict:
    found = {}
    for package in ("tfmobile", "ai-edge-litert"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


@dataclasses.dataclass
class Cooldown:
    """Between two cells: a fixed pause, or waiting until the thermal zones fall below a limit."""

    seconds: float = 2.0
    below_c: float | None = None
    max_wait_s: float = 300.0

    def wait(self, target: Target) -> dict:
        if self.below_c is None:
            time.sleep(self.seconds)
            return {"paused_s": self.seconds}
        started = time.monotonic()
        readings = []  # the hottest zone at each look, as the record keeps them
        while True:
            temps = probe.temperatures(target)
            hottest = max(temps.values()) if temps else None
            waited = time.monotonic() - started
            if hottest is None:  # no thermal zones: fall back to the fixed pause
                time.sleep(self.seconds)
                return {"paused_s": self.seconds, "note": "no thermal zones readable"}
            readings.append(hottest)
            if hottest < self.below_c or waited >= self.max_wait_s:
                return {"waited_s": round(waited, 1), "hottest_c": hottest,
                        "limit_c": self.below_c, "reached": hottest < self.below_c,
                        "readings_c": readings}
            time.sleep(2.0)


class TargetWorker:
    """Runs one target's cells in order, pushing each file once and cleaning up after."""

    def __init__(self, target: Target, runner, store: Store, cooldown: Cooldown, on_cell=None,
                 references: dict | None = None):
        self.target = target
        self.runner = runner
        self.store = store
        self.cooldown = cooldown
        # model sha256 -> (inputs.npz, outputs.npz) computed on the host, for config.check
        self.references = references or {}
        self.on_cell = on_cell or (lambda record: None)
        self.description: dict | None = None
        self._pushed: set[str] = set()

    def _push_once(self, local: pathlib.Path, remote_name: str) -> str:
        remote = f"{self.target.workdir}/{remote_name}"
        if remote not in self._pushed:
            self.target.push(local, remote)
            self._pushed.add(remote)
        return remote

    def _prepare(self) -> None:
        self.description = probe.describe(self.target)
        result = self.target.shell(f"mkdir -p {shlex.quote(self.target.workdir)}", timeout=30)
        if result.returncode != 0:
            raise TargetError(f"{self.target.name}: cannot create {self.target.workdir}: "
                              f"{_tail(result.stderr)}")
        for remote_name, local in self.runner.files().items():
            self._push_once(local, remote_name)
        executables = " ".join(shlex.quote(f"{self.target.workdir}/{n}") for n in self.runner.files())
        self.target.shell(f"chmod +x {executables}", timeout=30)
        if isinstance(self.runner, DeviceRunner):  # the runtime and the CPU as the runner sees them
            self.description.update(probe.runtime_view(self.target, pushed=True))

    def _cpu_mask(self, config: Config) -> tuple[str | None, str | None]:
        """(mask, note): None when no pinning applies."""
        if config.cpus == "all":
            return None, None
        mask = probe.big_cores_mask(self.description) if config.cpus == "big" else config.cpus
        if mask and not self.description.get("taskset"):
            return None, "taskset not found on the target: ran unpinned"
        return mask, None

    def _record(self, key, model, config, started, status, **fields) -> BenchmarkRecord:
        record = BenchmarkRecord(
            key=key, status=status, runner=self.runner.identity,
            target=self.description or {"name": self.target.name, "kind": self.target.kind},
            model=model, config=config, host_versions=_versions(), started=started,
            finished=_now(), **fields)
        self.store.append(record)
        self.on_cell(record)
        return record

    def run_cell(self, key: str, model: ModelFile, config: Config, cooled: dict | None = None,
                 run: RunInfo | None = None) -> BenchmarkRecord:
        started = _now()
        refused = self.runner.unsupported(config)
        if config.check and not refused:
            refused = self._check_refused(model)
        if refused:
            return self._record(key, model, config, started, "failed", cooldown=cooled, run=run,
                                reason=refused)
        remote = self._push_once(pathlib.Path(model.path), f"{model.sha256[:16]}.tflite")
        references = None
        if config.check:
            inputs, outputs, runtime = self.references[model.sha256]
            references = (self._push_once(inputs, f"{model.sha256[:16]}_inputs.npz"),
                          self._push_once(outputs, f"{model.sha256[:16]}_expected.npz"), runtime)
        mask, note = self._cpu_mask(config)
        command = _pinned(self.runner.command(remote, config, references), mask)
        result = self.target.shell(f"cd {shlex.quote(self.target.workdir)} && {command}",
                                   timeout=600)
        raw_name = key if not run or run.rounds == 1 else f"{key}_r{run.round}"
        raw = self.store.save_raw(raw_name, f"$ {command}\n[exit {result.returncode}]\n"
                                       f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")
        fields = {"raw_output": raw, "pinning": {"cpu_mask": mask, "note": note},
                  "cooldown": cooled, "run": run, "notes": self._notes(config) or None}
        try:
            metrics = self.runner.parse(result.stdout, result.stderr, result.returncode, config)
        except CellFailed as err:
            # A device that vanished mid-command can look like a command that printed nothing
            # (adb's client then exits 0): ask the transport before blaming the model.
            gone = self.target.unreachable()
            if gone:
                raise TargetError(gone) from None
            return self._record(key, model, config, started, "failed", reason=str(err), **fields)
        return self._record(key, model, config, started, "ok", metrics=metrics, **fields)

    def _check_refused(self, model: ModelFile) -> str | None:
        if model.sha256 in self.references:
            return None
        if model.compiled_for == "edgetpu":
            return ("an Edge TPU model cannot be run on this machine for reference outputs; "
                    "check the int8 model it was compiled from")
        return "no reference outputs were computed on this machine for this model"

    def _notes(self, config: Config) -> list[str]:
        """What a reader of the figures must know about this device and configuration."""
        notes = []
        sdk = (self.description or {}).get("sdk")
        if config.delegate == "nnapi" and sdk and str(sdk).isdigit() \
                and int(sdk) >= NNAPI_DEPRECATED_SDK:
            notes.append(f"NNAPI is deprecated from Android 15 (this device: SDK {sdk}): its "
                         "drivers may be missing or unmaintained; Google points to the GPU "
                         "delegate and LiteRT's NPU accelerators instead")
        return notes

    def run(self, cells: list[tuple[str, ModelFile, Config, RunInfo]]) -> None:
        reason = None
        try:
            self._prepare()
        except TargetError as err:
            reason = str(err)
        except Exception as err:  # noqa: BLE001 - every cell still gets its record
            reason = f"harness error while preparing {self.target.name}: {type(err).__name__}: {err}"
        for index, (key, model, config, run) in enumerate(cells):
            started = _now()
            if reason:
                self._record(key, model, config, started, "failed", reason=reason, run=run)
                continue
            try:
                cooled = self.cooldown.wait(self.target) if index else None
                self.run_cell(key, model, config, cooled, run)
            except TargetError as err:
                # The transport failed: if the target has gone, the rest of its cells fail too.
                gone = self.target.unreachable()
                reason = gone
                self._record(key, model, config, started, "failed", reason=gone or str(err),
                             run=run)
            except Exception as err:  # noqa: BLE001 - a harness bug must not lose the cell
                self._record(key, model, config, started, "failed", run=run,
                             reason=f"harness error: {type(err).__name__}: {err}")
        if reason is None:
            self._cleanup()

    def _cleanup(self) -> None:
        try:
            self.target.shell(f"rm -rf {shlex.quote(self.target.workdir)}", timeout=60)
        except TargetError:
            pass


def host_references(models: list[ModelFile], directory: pathlib.Path, log=None) -> dict:
    """Reference outputs for the interpreter test (config.check), computed on this machine.

    Each model runs once through the same device runner the boards run, under this Python's
    LiteRT with XNNPACK, on seeded random inputs (device_runner.random_inputs). The inputs,
    the outputs and the runtime that made them ("ai_edge_litert==2.3.0", which sets the int8
    tolerance on a board with another runtime) are kept beside the results: model sha256 ->
    (inputs.npz, outputs.npz, runtime). Edge TPU models cannot run here and get none.
    """
    directory.mkdir(parents=True, exist_ok=True)
    found = {}
    for model in models:
        if model.compiled_for == "edgetpu" or model.sha256 in found:
            continue
        stem = directory / model.sha256[:16]
        inputs, outputs = stem.with_name(stem.name + "_inputs.npz"), \
            stem.with_name(stem.name + "_expected.npz")
        runtime_file = stem.with_name(stem.name + "_runtime.txt")
        if not (inputs.exists() and outputs.exists() and runtime_file.exists()):
            if log:
                log(f"reference outputs on this machine: {model.name}")
            proc = subprocess.run(
                [sys.executable, str(DEVICE_RUNNER), model.path, "--runs", "1", "--warmup", "0",
                 "--save_inputs", str(inputs), "--save_outputs", str(outputs)],
                capture_output=True, text=True, timeout=600)
            result = device_runner.read_result(proc.stdout) or {}
            if result.get("status") != "ok":
                raise CellFailed(f"{model.name} does not run on this machine, so it has no "
                                 f"reference outputs: {result.get('reason') or _tail(proc.stderr)}")
            runtime = result["runtime"]
            atomic.write_bytes(runtime_file, f"{runtime['package']}=={runtime['version']}".encode())
        found[model.sha256] = (inputs, outputs, runtime_file.read_text().strip())
    return found


def _pinned(command: str, mask: str | None) -> str:
    """The command under taskset; a loop (a sustained benchmark_model run) is pinned as a
    whole, its children inheriting the mask."""
    if not mask:
        return command
    return f"taskset {mask} " + (f"sh -c {shlex.quote(command)}" if ";" in command else command)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def plan(targets: list[Target], models: list[ModelFile], configs: list[Config], runners: dict,
         done: dict[str, tuple[str | None, set[int]]] | None = None, rounds: int = 1,
         run_id: str | None = None) -> dict[str, list[tuple[str, ModelFile, Config, RunInfo]]]:
    """The cells each target still has to run, `rounds` times over.

    Rounds interleave: every cell runs once before any runs again, so a noisy minute on a
    shared machine (or a phone warming up) touches every model alike instead of one, and the
    comparison takes each cell's median over the rounds (compare.latest_ok).

    `done` (Store.done_rounds, for --resume): per cell, the run it was last measured in and
    which of that run's rounds succeeded. A cell with every round done is skipped; one with
    some is finished in its own run, so its rounds still merge into one median. `run_id`: the
    run the others join (the interrupted one, when resuming); by default a new one.
    """
    done = done or {}
    new_run = run_id or f"{_now()}/{uuid.uuid4().hex[:8]}"
    cells = {}
    for target in targets:
        runner = runners[target.name]
        wanted = []
        for model in models:
            for config in configs:
                key = cell_key(target.name, model, config, runner.identity)
                run_id, finished = done.get(key, (new_run, set()))
                wanted.append((key, model, config, run_id or new_run, finished))
        cells[target.name] = [(key, model, config, RunInfo(run_id, r, rounds))
                              for r in range(1, rounds + 1)
                              for key, model, config, run_id, finished in wanted
                              if r not in finished]
    return cells


def run_matrix(targets: list[Target], models: list[ModelFile], configs: list[Config],
               runners: dict, store: Store, cooldown: Cooldown, *, resume: bool = False,
               rounds: int = 1, on_cell=None, references: dict | None = None) -> dict:
    """Runs every cell (`rounds` times, interleaved); returns {"ok": n, "failed": n,
    "skipped": n} counting cell runs (a cell in one round)."""
    done, last_run = store.done_rounds(rounds) if resume else ({}, None)
    cells = plan(targets, models, configs, runners, done, rounds, last_run)
    counts = {"ok": 0, "failed": 0,
              "skipped": len(targets) * len(models) * len(configs) * rounds
              - sum(map(len, cells.values()))}
    lock = threading.Lock()

    def count(record: BenchmarkRecord):
        with lock:
            counts[record.status] += 1
        if on_cell:
            on_cell(record)

    workers = [TargetWorker(t, runners[t.name], store, cooldown, on_cell=count,
                            references=references) for t in targets]
    threads = [threading.Thread(target=w.run, args=(cells[w.target.name],), name=w.target.name)
               for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts
