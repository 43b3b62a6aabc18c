"""List every reachable benchmark target and what it is.

  python -m android_bench devices
  python -m android_bench devices --connect 192.168.1.20:5555 --ssh mendel@coral.local --json

adb devices (USB, `--connect`ed, or a remote `--adb_server`): serial, manufacturer, model,
SoC, ABI, Android version, cores and each core's maximum frequency (the big cores are the
fastest), and the CPU's features. ssh boards and `local` (this machine): the same from /proc
and uname, and from their Python (the device runner's --describe): the LiteRT runtime, its
version and APIs, and the CPU's features as the process that runs models sees them.
"""

from __future__ import annotations

import json
import shlex

from absl import flags

from android_bench import cli as bench_cli
from android_bench import probe, targets as targets_lib

FLAGS = flags.FLAGS
bench_cli.define_target_flags()
flags.DEFINE_boolean("json", False, "Print the descriptions as JSON.")


def _line(d: dict) -> str:
    if d.get("error"):
        return f"{d['name']:28s} unreachable: {d['error']}"
    khz = [k for k in d.get("max_khz") or [] if k]
    freqs = "/".join(f"{k / 1e6:.2f}" for k in sorted(set(khz))) + " GHz" if khz else "max freq unknown"
    big = probe.big_cores_mask(d)
    what = " ".join(filter(None, [d.get("manufacturer"), d.get("model")])) or "?"
    soc = d.get("soc") or d.get("hardware")
    os_text = f"Android {d['android']} (SDK {d.get('sdk')})" if d.get("android") else d.get("uname")
    python = None
    if d.get("kind") != "adb" or d.get("python_version"):
        python = f"python {d.get('python')} " + (d.get("python_version") or "not found")
    runtime = d.get("runtime") or {}
    if runtime.get("package"):
        apis = ", ".join(runtime.get("apis") or [])
        runtime_text = f"{runtime['package']} {runtime.get('version')}" + (f" ({apis})" if apis
                                                                           else "")
    else:
        runtime_text = f"no LiteRT runtime: {runtime['reason']}" if runtime.get("reason") else None
    features = d.get("cpu_features")
    parts = [what, soc if soc and soc != what else None, d.get("machine") or d.get("abi"),
             os_text,
             f"{d.get('cores')} cores, {freqs}" + (f", big cores mask {big}" if big else ""),
             f"CPU features: {' '.join(kernel_features(features))}" if features else None,
             python, runtime_text]
    return f"{d['name']:28s} " + "; ".join(p for p in parts if p)


# The features that decide which int8 and float kernels XNNPACK runs (arm64, then x86).
KERNEL_FEATURES = ("asimd", "asimddp", "i8mm", "bf16", "fphp", "sve", "sve2", "sme", "sme2",
                   "neon", "vfpv4", "avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def kernel_features(features: list[str]) -> list[str]:
    """The ones of KERNEL_FEATURES the CPU has (the full list is in --json)."""
    shown = [f for f in KERNEL_FEATURES if f in features]
    return shown or features[:8]


def main(argv):
    del argv
    found = [targets_lib.LocalTarget()]
    notes = []
    server = bench_cli.adb_server()
    try:
        for entry in bench_cli.adb_devices(server):
            if entry["state"] == "device":
                found.append(targets_lib.AdbTarget(entry["serial"], server))
            else:
                notes.append({"name": f"adb:{entry['serial']}", "error": f"state {entry['state']}"})
    except targets_lib.TargetError as err:
        notes.append({"name": "adb", "error": str(err)})
    found += [bench_cli.ssh_target(spec) for spec in FLAGS.ssh]

    descriptions = []
    for target in found:
        try:
            description = probe.describe(target)
            if target.kind != "adb":  # boards and this machine run the Python device runner
                description.update(probe.runtime_view(target))
                target.shell(f"rm -rf {shlex.quote(target.workdir)}", timeout=60)
            descriptions.append(description)
        except targets_lib.TargetError as err:
            descriptions.append({"name": target.name, "kind": target.kind, "error": str(err)})
    descriptions += notes
    if FLAGS.json:
        print(json.dumps(descriptions, indent=2))
    else:
        for d in descriptions:
            print(_line(d))
    return 0
