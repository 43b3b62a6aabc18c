"""TFLite's official `benchmark_model` binary: its command line and its log.

The tool's log has changed over the years; `parse_output` reads every form it has printed:

    INFO: Inference timings in us: Init: 3530, First inference: 15466, Warmup (avg): 1.32715e+04, Inference (avg): 12866.1
    Average inference timings in us: Warmup: 83235, Init: 4578, Inference: 81632     (before TF 2.3)
    Average inference timings in us: Warmup: 146161, Init: 4452, no stats: 137722   (TF 1.x)
    count=50 first=13002 curr=12771 min=12587 max=13412 avg=12866.1 std=195          (per-run stats)
    count=50 ... avg=1.24027e+06 std=2565 p5=1238753 median=1239807 p95=1247415     (newer: percentiles)
    Memory footprint delta from the start of the tool (MB): init=3.42578 overall=9.44531
    Peak memory footprint (MB): init=2.88281 overall=9.51172                         (older)
    Overall peak memory footprint (MB) via periodic monitoring: 13.4375

with or without an `INFO: ` or Android logcat prefix. The figures are microseconds and MB.
"""

from __future__ import annotations

import re

_NUMBER = r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?"

_TIMINGS = re.compile(
    rf"Inference timings in us:\s*Init:\s*(?P<init>{_NUMBER}),\s*"
    rf"First inference:\s*(?P<first>{_NUMBER}),\s*"
    rf"Warmup \(avg\):\s*(?P<warmup>{_NUMBER}),\s*"
    rf"Inference \(avg\):\s*(?P<avg>{_NUMBER})")
_OLD_TIMINGS = re.compile(  # no first-inference figure in this form; TF 1.x said "no stats"
    rf"Average inference timings in us:\s*Warmup:\s*(?P<warmup>{_NUMBER}),\s*"
    rf"Init:\s*(?P<init>{_NUMBER}),\s*(?:Inference|no stats):\s*(?P<avg>{_NUMBER})")
_STATS = re.compile(rf"\bcount=(?P<count>\d+)(?P<rest>(?:\s+\w+={_NUMBER})+)")
_FOOTPRINT = re.compile(
    rf"(?P<kind>Memory footprint delta from the start of the tool|Peak memory footprint) "
    rf"\(MB\):\s*init=(?P<init>{_NUMBER})\s+overall=(?P<overall>{_NUMBER})")
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring:\s*(?P<peak>{_NUMBER})")

DELEGATE_FLAGS = {
    "cpu": ["--use_xnnpack=false"],  # the plain builtin kernels
    "xnnpack": ["--use_xnnpack=true"],
    "gpu": ["--use_gpu=true"],
    "nnapi": ["--use_nnapi=true"],
    # The Edge TPU runtime loads as an external delegate.
    "edgetpu": ["--external_delegate_path=libedgetpu.so.1"],
}


class BenchmarkOutputError(ValueError):
    """The text holds no timings (the tool failed); the message quotes its last lines."""


def _stats(match) -> dict:
    stats = {"count": int(match["count"])}
    for key, value in re.findall(rf"(\w+)=({_NUMBER})", match["rest"]):
        stats[key] = float(value)
    return stats


def parse_output(text: str) -> dict:
    """Timings (µs) and memory (MB) from a benchmark_model log; see the module docstring.

    Keys: init_us, first_us (None in the old form), warmup_avg_us, avg_us, std_us, median_us
    (newer tools), and where printed warmup_stats / run_stats (count, first, curr, min, max,
    avg, std, and p5 / median / p95 in newer tools), init_mb /
    overall_mb (footprint delta), peak_init_mb / peak_overall_mb (older peak form), peak_mb.
    """
    result: dict = {}
    stats = []
    for line in text.splitlines():
        if m := _TIMINGS.search(line):
            result.update(init_us=float(m["init"]), first_us=float(m["first"]),
                          warmup_avg_us=float(m["warmup"]), avg_us=float(m["avg"]))
        elif m := _OLD_TIMINGS.search(line):
            result.update(init_us=float(m["init"]), first_us=None,
                          warmup_avg_us=float(m["warmup"]), avg_us=float(m["avg"]))
        elif m := _STATS.search(line):
            stats.append(_stats(m))
        elif m := _FOOTPRINT.search(line):
            prefix = "" if m["kind"].startswith("Memory") else "peak_"
            result[f"{prefix}init_mb"], result[f"{prefix}overall_mb"] = float(m["init"]), float(m["overall"])
        elif m := _PEAK.search(line):
            result["peak_mb"] = float(m["peak"])
    if stats:
        # The tool prints the warm-up's statistics first, then the timed runs'.
        result["run_stats"] = stats[-1]
        if len(stats) > 1:
            result["warmup_stats"] = stats[-2]
        result.setdefault("avg_us", stats[-1].get("avg"))
        result["std_us"] = stats[-1].get("std")
        result["median_us"] = stats[-1].get("median")
    if result.get("avg_us") is None:
        tail = " | ".join(line.strip() for line in text.strip().splitlines()[-5:] if line.strip())
        raise BenchmarkOutputError(f"benchmark_model printed no timings; its output ended: "
                                   f"{tail or '(nothing)'}")
    return result


def flags(graph: str, *, num_threads: int, warmup_runs: int, num_runs: int, delegate: str,
          extra: dict | None = None) -> list[str]:
    """The tool's command-line flags for one benchmark."""
    if delegate not in DELEGATE_FLAGS:
        raise ValueError(f"unknown delegate {delegate!r}; choose from {', '.join(DELEGATE_FLAGS)}")
    args = [f"--graph={graph}", f"--num_threads={num_threads}", f"--warmup_runs={warmup_runs}",
            f"--num_runs={num_runs}",
            # The tool runs at least num_runs AND at least min_secs (1 s by default) and warms
            # up for at least warmup_min_secs (0.5 s): zero both so the counts asked for hold.
            "--min_secs=0", "--warmup_min_secs=0",
            *DELEGATE_FLAGS[delegate]]
    args += [f"--{key}={value}" for key, value in (extra or {}).items()]
    return args
