"""What a target is: one POSIX shell script run on it, its `key=value` lines parsed.

The same script reads an Android phone (getprop, toybox), a Linux board (/proc, device tree)
and this machine, so `devices` and every result record describe targets the same way.
"""

from __future__ import annotations

import pathlib
import re
import shlex

from android_bench import device_runner
from android_bench.targets import Target, TargetError

# Runs under Android's mksh and any POSIX sh; every line is key=value.
SCRIPT = r"""
echo "uname=$(uname -srm)"
echo "cores=$(grep -c '^processor' /proc/cpuinfo)"
for d in /sys/devices/system/cpu/cpu[0-9]*; do
  f="$d/cpufreq/cpuinfo_max_freq"; [ -r "$f" ] && echo "max_khz.${d##*cpu}=$(cat "$f")"
done
grep -m1 -E '^(Hardware|model name|Model)[[:space:]]*:' /proc/cpuinfo \
  | sed 's/[[:space:]]*:[[:space:]]*/=/; s/^/cpuinfo./'
grep -m1 -E '^(Features|flags)[[:space:]]*:' /proc/cpuinfo \
  | sed 's/[[:space:]]*:[[:space:]]*/=/; s/^/cpuinfo./'
[ -r /proc/device-tree/model ] && echo "board=$(tr -d '\000' < /proc/device-tree/model)"
for z in /sys/class/thermal/thermal_zone[0-9]*; do
  [ -r "$z/temp" ] && echo "thermal.${z##*zone}=$(cat "$z/type" 2>/dev/null):$(cat "$z/temp" 2>/dev/null)"
done
command -v taskset >/dev/null 2>&1 && echo "has.taskset=1"
command -v "$PY" >/dev/null 2>&1 \
  && echo "python=$("$PY" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)"
command -v getprop >/dev/null 2>&1 && getprop | sed -n 's/^\[\([^]]*\)\]: \[\(.*\)\]$/prop.\1=\2/p'
true
"""

ANDROID_PROPERTIES = {
    "manufacturer": "ro.product.manufacturer",
    "model": "ro.product.model",
    "soc": ("ro.soc.model", "ro.board.platform", "ro.hardware"),
    "abi": "ro.product.cpu.abi",
    "android": "ro.build.version.release",
    "sdk": "ro.build.version.sdk",
}


def parse(text: str) -> dict:
    """The probe's output as a description: cores, per-core max kHz, thermal zones, props."""
    raw = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            raw[key.strip()] = value.strip()
    props = {k[5:]: v for k, v in raw.items() if k.startswith("prop.")}
    max_khz = {int(k[8:]): int(v) for k, v in raw.items() if k.startswith("max_khz.") and v.isdigit()}
    thermal = {}
    for key, value in raw.items():
        if key.startswith("thermal."):
            kind, _, temp = value.rpartition(":")
            if re.fullmatch(r"-?\d+", temp):
                thermal[f"zone{key[8:]}:{kind}"] = int(temp) / (1000 if abs(int(temp)) > 200 else 1)
    cores = int(raw["cores"]) if raw.get("cores", "").isdigit() else len(max_khz) or None
    description = {
        "os": "android" if props else "linux",
        "uname": raw.get("uname"),
        "cores": cores,
        "max_khz": [max_khz.get(i) for i in range(cores or 0)] if max_khz else None,
        "hardware": raw.get("cpuinfo.Hardware") or raw.get("cpuinfo.Model") or raw.get("board")
        or raw.get("cpuinfo.model name"),
        "thermal_c": thermal,
        "taskset": raw.get("has.taskset") == "1",
        "python_version": raw.get("python"),
        "cpu_features": cpu_features(raw),
    }
    for name, keys in ANDROID_PROPERTIES.items():
        keys = (keys,) if isinstance(keys, str) else keys
        description[name] = next((props[k] for k in keys if props.get(k)), None)
    if description["os"] == "linux":
        description["model"] = raw.get("board") or raw.get("cpuinfo.model name")
        description["abi"] = ((raw.get("uname") or "").split() or [None])[-1]
    return description


def cpu_features(raw: dict) -> list[str] | None:
    """/proc/cpuinfo's feature list: ARM's "Features" whole, x86's "flags" only where they
    change which kernels run."""
    if raw.get("cpuinfo.Features"):
        return raw["cpuinfo.Features"].split()
    if raw.get("cpuinfo.flags"):
        return [f for f in raw["cpuinfo.flags"].split() if f in device_runner.X86_KERNEL_FLAGS]
    return None


def runtime_view(target: Target, pushed: bool = False) -> dict:
    """The target as its Python sees it (device_runner.py --describe): the LiteRT runtime,
    its version and APIs, numpy, the machine, and the CPU's features, from the ELF auxiliary
    vector on arm64. These replace the shell's view where they differ: on a board whose
    Python runs emulated, or in a container, the process that runs the model is what counts.
    `pushed`: device_runner.py is already in the target's workdir."""
    remote = f"{target.workdir}/device_runner.py"
    if not pushed:
        target.shell(f"mkdir -p {shlex.quote(target.workdir)}", timeout=30)
        target.push(pathlib.Path(device_runner.__file__), remote)
    result = target.shell(f"{shlex.quote(target.python)} {shlex.quote(remote)} --describe",
                          timeout=300)
    facts = device_runner.read_result(result.stdout)
    if facts is None:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"runtime": {"package": None, "reason": f"{target.python}: {tail[0][:200]}"}}
    cpu = facts.get("cpu") or {}
    view = {"runtime": facts.get("runtime"), "numpy": facts.get("numpy"),
            "machine": (facts.get("platform") or {}).get("machine"),
            "python_version": facts.get("python")}
    if cpu.get("features") is not None:
        view["cpu_features"] = cpu["features"]
        view["cpu_features_from"] = f"{cpu.get('features_from')} (the runner's Python)"
    return view


def describe(target: Target) -> dict:
    result = target.shell(f"PY={shlex.quote(target.python)}\n{SCRIPT}", timeout=60)
    if result.returncode != 0 and "cores=" not in result.stdout:
        raise TargetError(f"{target.name}: probing failed: {result.stderr.strip()[-200:]}")
    return {"name": target.name, "kind": target.kind, "python": target.python,
            **parse(result.stdout)}


def big_cores_mask(description: dict) -> str | None:
    """Hex CPU mask of the fastest cores (the big cluster), or None when all are alike."""
    khz = description.get("max_khz") or []
    known = [k for k in khz if k]
    if not known or len(set(known)) == 1:
        return None
    top = max(known)
    return format(sum(1 << i for i, k in enumerate(khz) if k == top), "x")


def temperatures(target: Target) -> dict:
    """The thermal zones' temperatures now, in degrees Celsius."""
    result = target.shell(
        'for z in /sys/class/thermal/thermal_zone[0-9]*; do [ -r "$z/temp" ] && '
        'echo "thermal.${z##*zone}=$(cat "$z/type" 2>/dev/null):$(cat "$z/temp")"; done; true',
        timeout=30,
    )
    return parse(result.stdout)["thermal_c"]
