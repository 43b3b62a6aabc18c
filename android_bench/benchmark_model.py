"""TFLite's official `benchmark_model` binary: its command line and its log.

The tool has printed its results in several forms over the years; `parse_output` reads them all,
with or without the `INFO: ` the current tool puts before every line, and inside Android logcat
lines (``11-22 10:41:07.512  8125  8143 I tflite  : ...``, or ``... tflite  : ...`` as the docs
abbreviate them):

    Inference timings in us: Init: 5579, First inference: 1357602, Warmup (avg): 1.3576e+06, Inference (avg): 1.24027e+06
    Average inference timings in us: Warmup: 83235, Init: 38467, Inference: 79760.9      (TF 1.13 - 2.2)
    Average inference timings in us: Warmup: 146161, Init: 4452, no stats: 137722      (TF 1.12)
    count=50 first=249042 curr=250889 min=247067 max=254474 avg=249684 std=1442         (per phase)
    count=50 first=... avg=1.24027e+06 std=2565 p5=1238753 median=1239807 p95=1247415   (2025 on)
    count=1 curr=1357602                                                                (all runs equal)
    Memory footprint delta from the start of the tool (MB): init=6.36328 overall=109.832
    Peak memory footprint (MB): init=4.92969 overall=138.809                           (TF 2.4 name)
    Overall peak memory footprint (MB) via periodic monitoring: 13.4375

Times are microseconds, memory MB. tests/data/benchmark_model holds real published logs in
these forms, SOURCES.md there says where each was published.
"""

from __future__ import annotations

import math
import re
import shlex

# C++ iostream prints doubles like %g (1.24027e+06), int64 as integers, an empty phase's mean as nan.
_NUMBER = r"[-+]?(?:nan|inf|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"

_TIMINGS = re.compile(rf"""
    Inference\ timings\ in\ us:
    \s* Init:             \s* (?P<init>{_NUMBER}),
    \s* First\ inference: \s* (?P<first>{_NUMBER}),
    \s* Warmup\ \(avg\):  \s* (?P<warmup>{_NUMBER}),
    \s* Inference\ \(avg\): \s* (?P<avg>{_NUMBER})
""", re.VERBOSE)

_OLD_TIMINGS = re.compile(rf"""
    Average\ inference\ timings\ in\ us:
    \s* Warmup: \s* (?P<warmup>{_NUMBER}),
    \s* Init:   \s* (?P<init>{_NUMBER}),
    \s* (?:Inference|no\ stats): \s* (?P<avg>{_NUMBER})
""", re.VERBOSE)

# One phase's statistics (tensorflow/core/util/stats_calculator.h). When every run took the same
# time the tool prints only count and curr, with "(all same)" after curr if there was more than one.
_STATISTICS = re.compile(rf"""
    (?<!\(microseconds\):\ )   # not the op profiler's "Timings (microseconds): count=..." summaries,
    (?<!\(bytes\):\ )          # nor its "Memory (bytes): count=0"
    \b count=(?P<count>\d+)
    (?P<fields> (?:\ +\w+={_NUMBER}(?:\(all\ same\))?)* )
    \s*$
""", re.VERBOSE)
_FIELD = re.compile(rf"(?P<key>\w+)=(?P<value>{_NUMBER})")

# Each phase (warm-up, then the timed runs) is announced before its statistics line, and a new
# session starts the count again.
_PHASE = re.compile(r"Running benchmark for ")
_SESSION = re.compile(r"Initialized session in ")

# The same quantity, the growth of the process's maximum resident set since the tool started,
# was called "Peak memory footprint" until TF 2.4.
_FOOTPRINT = re.compile(rf"""
    (?:Memory\ footprint\ delta\ from\ the\ start\ of\ the\ tool|Peak\ memory\ footprint)
    \ \(MB\): \s* init=(?P<init>{_NUMBER}) \s+ overall=(?P<overall>{_NUMBER})
""", re.VERBOSE)
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: \s*(?P<peak>{_NUMBER})")

# What became of each delegate asked for (benchmark_tflite_model.cc, tools/delegates/*).
COMPLETE, PARTIAL, UNUSED, UNAVAILABLE = "complete", "partial", "unused", "unavailable"
_DELEGATE_OUTCOMES = [
    (re.compile(r"Explicitly applied (?P<name>\w+) delegate, and the model graph will be "
                r"(?P<how>completely|partially) executed by the delegate"), None),
    (re.compile(r"Though (?P<name>\w+) delegate is explicitly applied, the model graph will "
                r"not be executed by the delegate"), UNUSED),
    # The tool then goes on without it, on the CPU.
    (re.compile(r"(?P<name>\w+) acceleration is unsupported on this platform"), UNAVAILABLE),
    (re.compile(r"Unable to load external delegate from"), UNAVAILABLE),
]

_FAILED = "Benchmarking failed."
# --require_full_delegation refused a delegate that left ops to the CPU (benchmark_tflite_model.cc)
CPU_FALLBACK = "Disallowed CPU fallback detected."

DELEGATE_FLAGS = {
    "cpu": {"use_xnnpack": False},  # the plain builtin kernels
    "xnnpack": {"use_xnnpack": True},
    "gpu": {"use_gpu": True},
    "nnapi": {"use_nnapi": True},
    # The Edge TPU runtime is a TFLite external delegate plugin (tflite_plugin_create_delegate).
    "edgetpu": {"external_delegate_path": "libedgetpu.so.1"},
}


class BenchmarkOutputError(ValueError):
    """The log holds no timings, or says the benchmark failed; the message quotes its last lines."""


def parse_output(text: str) -> dict:
    """The figures of one benchmark_model run, from its log (stdout and stderr together).

    Keys, each None when the log does not print it:

    - ``init_us``, ``first_us``, ``warmup_avg_us``, ``avg_us``: the summary line. The pre-2.3
      "Average inference timings" line has no first inference, so ``first_us`` stays None. A log
      without any summary line takes ``avg_us`` from the timed runs' statistics.
    - ``warmup_stats``, ``run_stats``: the warm-up's and the timed runs' statistics lines as
      dicts: ``count`` (int) and float ``first curr min max avg std`` (plus ``p5 median p95``
      in tools from 2025 on). When all runs took the same time the tool prints ``count`` and ``curr``
      only; min, max and avg are then ``curr`` and std 0.
    - ``std_us``, ``median_us``: from ``run_stats``.
    - ``init_mb``, ``overall_mb``: the memory footprint delta after initialisation and at the end.
      ``peak_mb``: the peak seen by periodic monitoring (``--report_peak_memory_footprint``).
    - ``delegates``: delegate name as the tool prints it (XNNPACK, GPU, NNAPI, EXTERNAL...) ->
      ``"complete"`` / ``"partial"`` (the graph runs wholly / partly on it), ``"unused"`` (applied
      but given no ops) or ``"unavailable"`` (not on this platform). In the last two cases the
      tool benchmarks the CPU and still exits 0, so a caller asking for a delegate checks here.

    Raises BenchmarkOutputError when there are no timings or the tool reports "Benchmarking
    failed." (a model or delegate that would not load, an invoke that failed).
    """
    result: dict = dict.fromkeys(
        ["init_us", "first_us", "warmup_avg_us", "avg_us", "std_us", "median_us",
         "warmup_stats", "run_stats", "init_mb", "overall_mb", "peak_mb", "delegates"])
    delegates: dict[str, str] = {}
    statistics: list[tuple[int, dict]] = []  # (phase announced before it, statistics)
    phase = 0
    failed = False
    for line in text.splitlines():
        if _SESSION.search(line):
            phase = 0
        elif _PHASE.search(line):
            phase += 1
        elif m := _STATISTICS.search(line):
            statistics.append((phase, _statistics(m)))
        elif m := _TIMINGS.search(line):
            result.update(init_us=float(m["init"]), first_us=float(m["first"]),
                          warmup_avg_us=float(m["warmup"]), avg_us=float(m["avg"]))
        elif m := _OLD_TIMINGS.search(line):
            result.update(init_us=float(m["init"]), first_us=None,
                          warmup_avg_us=float(m["warmup"]), avg_us=float(m["avg"]))
        elif m := _FOOTPRINT.search(line):
            result.update(init_mb=float(m["init"]), overall_mb=float(m["overall"]))
        elif m := _PEAK.search(line):
            result["peak_mb"] = float(m["peak"])
        elif _FAILED in line:
            failed = True
        else:
            for pattern, outcome in _DELEGATE_OUTCOMES:
                if m := pattern.search(line):
                    name = m.groupdict().get("name", "EXTERNAL")
                    how = m.groupdict().get("how")
                    delegates[name] = outcome or (COMPLETE if how == "completely" else PARTIAL)
    result["warmup_stats"], result["run_stats"] = _phases(statistics)
    if runs := result["run_stats"]:
        if result["avg_us"] is None:
            result["avg_us"] = runs.get("avg")
        result["std_us"], result["median_us"] = runs.get("std"), runs.get("median")
    result["delegates"] = delegates or None
    if failed or result["avg_us"] is None:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        said = "failed" if failed else "printed no timings"
        raise BenchmarkOutputError(f"benchmark_model {said}; its output ended: "
                                   + (" | ".join(lines[-5:]) or "(nothing)"))
    return result


def _statistics(match: re.Match) -> dict:
    stats: dict = {"count": int(match["count"])}
    for field in _FIELD.finditer(match["fields"]):
        stats[field["key"]] = float(field["value"])
    if stats["count"] and "avg" not in stats and "curr" in stats:  # every run took curr
        stats.update(first=stats["curr"], min=stats["curr"], max=stats["curr"],
                     avg=stats["curr"], std=0.0)
    return stats


def _phases(statistics: list[tuple[int, dict]]) -> tuple[dict | None, dict | None]:
    """(warm-up, timed runs) statistics of the last session in the log.

    The tool announces the warm-up, then the timed runs, with "Running benchmark for ...". A
    log cut down to its statistics lines has no announcements: its last line is then the timed
    runs' and the one before it the warm-up's. A log whose timed runs never started (the
    benchmark died in the warm-up) has no timed runs' statistics.
    """
    if any(phase for phase, _ in statistics):
        by_phase = {phase: stats for phase, stats in statistics}
        return by_phase.get(1), by_phase.get(2)
    stats = [stats for _, stats in statistics]
    return (stats[-2] if len(stats) > 1 else None), (stats[-1] if stats else None)


def flags(graph: str, *, num_threads: int, warmup_runs: int, num_runs: int, delegate: str,
          extra: dict | None = None, max_secs: float | None = None) -> list[str]:
    """The tool's command line for one benchmark of `graph` (a path on the device).

    `delegate` is one of DELEGATE_FLAGS; `extra` adds further tool flags, by name without the
    dashes (``{"enable_op_profiling": True}``). Booleans are written true/false, the only
    spellings besides 0/1 the tool's flag parser accepts.
    """
    if delegate not in DELEGATE_FLAGS:
        raise ValueError(f"unknown delegate {delegate!r}; choose from {', '.join(DELEGATE_FLAGS)}")
    chosen = {
        "graph": graph, "num_threads": num_threads,
        "warmup_runs": warmup_runs, "num_runs": num_runs,
        # Each phase runs until it has done at least its count AND lasted at least its seconds
        # (min_secs defaults to 1, warmup_min_secs to 0.5; benchmark_model.cc), so a fast model
        # would run far more than asked. Zero seconds make the counts exact. max_secs (150)
        # still stops a phase that overruns; run_stats' count says how many ran.
        "min_secs": 0, "warmup_min_secs": 0,
        **({"max_secs": f"{max_secs:g}"} if max_secs else {}),
        **DELEGATE_FLAGS[delegate],
    }
    for name, value in (extra or {}).items():
        if name in chosen:
            # The tool reads the first occurrence and ignores later ones as unconsumed.
            raise ValueError(f"extra flag {name!r} is already set to {chosen[name]!r}")
        chosen[name] = value
    return [f"--{name}={_flag_value(value)}" for name, value in chosen.items()]


def _flag_value(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


# --- Sustained runs ------------------------------------------------------------------------
# benchmark_model prints statistics only at the end of a run, so a sustained run is a loop of
# back-to-back windows of a few seconds each; before each window the shell prints the time,
# every CPU's current frequency and the hottest thermal zone. The model is loaded again for
# each window (a few tens of milliseconds between windows), the phone's heat is not reset.
SAMPLE_MARK = "@@tfmobile-sample"


def window_seconds(duration_s: float) -> float:
    """About 20 windows, each 1 to 5 seconds long."""
    return max(1.0, min(5.0, duration_s / 20))


def sustained_script(graph: str, duration_s: float, **tool_flags) -> str:
    """The shell loop of a sustained run of `duration_s` seconds (flags as for `flags`)."""
    window = window_seconds(duration_s)
    tool_flags.update(num_runs=10 ** 9, max_secs=window)  # each window runs for its seconds
    args = shlex.join(["./benchmark_model", *flags(graph, **tool_flags)])
    return (
        f"end=$(( $(date +%s) + {math.ceil(duration_s)} )); "
        "while [ \"$(date +%s)\" -lt \"$end\" ]; do "
        f"echo \"{SAMPLE_MARK} t=$(date +%s) "
        "khz=$(cat /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq 2>/dev/null "
        "| tr '\\n' ,) "
        "milli_c=$(cat /sys/class/thermal/thermal_zone*/temp 2>/dev/null | sort -n | tail -1)\"; "
        f"{args} || exit $?; done"
    )


def parse_sustained(text: str) -> list[dict]:
    """The windows of a sustained run's log: t_s, runs, median_ms (the mean on tools that print
    no median), mean_khz and hottest_c, as the device runner's samples are."""
    samples, start = [], None
    chunks = text.split(SAMPLE_MARK)[1:]
    for chunk in chunks:
        header, _, log = chunk.partition("\n")
        fields = dict(f.split("=", 1) for f in header.split() if "=" in f)
        try:
            parsed = parse_output(log)
        except BenchmarkOutputError:
            if chunk is chunks[-1]:  # the last window cut short by the end of the run
                break
            raise
        t = int(fields.get("t", "0") or 0)
        start = t if start is None else start
        khz = [int(k) for k in fields.get("khz", "").split(",") if k.isdigit()]
        milli = fields.get("milli_c", "")
        stats = parsed["run_stats"] or {}
        typical = parsed["median_us"] if parsed["median_us"] is not None else parsed["avg_us"]
        samples.append({
            "t_s": t - start, "runs": stats.get("count"),
            "median_ms": round(typical / 1000, 4),
            "max_ms": round(stats["max"] / 1000, 4) if stats.get("max") is not None else None,
            "mean_khz": round(sum(khz) / len(khz)) if khz else None,
            "hottest_c": (int(milli) / 1000 if abs(int(milli)) > 200 else float(milli))
            if re.fullmatch(r"-?\d+", milli) else None,
        })
    if not samples:
        raise BenchmarkOutputError("the sustained run printed no complete window; its output "
                                   "ended: " + " | ".join(text.strip().splitlines()[-3:]))
    return samples
