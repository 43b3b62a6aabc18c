"""List every reachable benchmark target and what it is.

  python -m android_bench devices
  python -m android_bench devices --connect 192.168.1.20:5555 --ssh mendel@coral.local --json

adb devices (USB, `--connect`ed, or a remote `--adb_server`): serial, manufacturer, model,
SoC, ABI, Android version, cores and each core's maximum frequency (the big cores are the
fastest). ssh boards: the same from /proc and uname. And `local`, this machine.
"""

from __future__ import annotations

import json

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
    parts = [what, soc if soc and soc != what else None, d.get("abi"), os_text,
             f"{d.get('cores')} cores, {freqs}" + (f", big cores mask {big}" if big else ""),
             python]
    return f"{d['name']:28s} " + "; ".join(p for p in parts if p)


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
            descriptions.append(probe.describe(target))
        except targets_lib.TargetError as err:
            descriptions.append({"name": target.name, "kind": target.kind, "error": str(err)})
    descriptions += notes
    if FLAGS.json:
        print(json.dumps(descriptions, indent=2))
    else:
        for d in descriptions:
            print(_line(d))
    return 0
