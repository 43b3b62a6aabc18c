"""From stored results to the tables and plots of the papers' latency figures.

Per target (and configuration): a Markdown and a CSV table of model, MACs, params, size and
latency, with the speed-up against a baseline model and each int8 model against its float
twin; and a PNG of latency against MACs (and against top-1 where accuracy is known), in the
style of the MobileNet V3 paper's Pixel figures.
"""

from __future__ import annotations

import csv
import io
import pathlib
import re
import statistics

from converters import stock as stock_artifacts
from tfmobile import atomic

COLUMNS = ["model", "mode", "MACs (M)", "params (M)", "size (MB)", "latency (ms)", "p90 (ms)",
           "std (ms)", "statistic", "rounds", "partitions", "vs baseline", "vs stock",
           "int8 speed-up"]


def partitions(metrics: dict) -> str:
    """'1', or '4 (CPU: AVERAGE_POOL_2D 3)': the delegate's partitions and the ops it left to
    the builtin kernels (device runner cells; benchmark_model does not say)."""
    count, outside = metrics.get("partitions"), metrics.get("ops_outside_delegate") or {}
    if count is None:
        return ""
    if not outside:
        return str(count)
    return f"{count} (CPU: " + ", ".join(f"{op} {n}" for op, n in outside.items()) + ")"


def spread(rounds: list[float] | None) -> str:
    """'5 (1.21-1.34)': how many rounds the median is over, and their range."""
    if not rounds:
        return ""
    return f"{len(rounds)} ({min(rounds):.2f}-{max(rounds):.2f})"


def on_edgetpu(metrics: dict) -> str:
    """Whether the Edge TPU ran the model: its delegate took edgetpu-custom-op nodes."""
    ops = metrics.get("edgetpu_ops")
    if ops is None:
        return ""
    return f"yes ({ops} custom op{'s' if ops != 1 else ''})" if ops else "no"


def latest_ok(records: list[dict]) -> list[dict]:
    """The newest successful measurement of every (target, model, configuration).

    A run with --rounds left one record per round; those of the newest run merge into one
    whose latency statistics are the medians over the rounds (metrics["rounds"] keeps each
    round's median).
    """
    runs: dict[str, list[dict]] = {}
    for record in records:  # the store is in time order
        if record.get("status") != "ok":
            continue
        run_id = (record.get("run") or {}).get("id")
        kept = runs.get(record["key"])
        if kept and run_id is not None and (kept[-1].get("run") or {}).get("id") == run_id:
            kept.append(record)
        else:
            runs[record["key"]] = [record]
    return [merge_rounds(found) for found in runs.values()]


def merge_rounds(rounds: list[dict]) -> dict:
    if len(rounds) == 1:
        return rounds[0]
    merged = dict(rounds[-1])
    stats = [r["metrics"]["latency_ms"] for r in rounds]
    latency = {key: statistics.median(s[key] for s in stats)
               for key in stats[0] if all(s.get(key) is not None for s in stats)}
    merged["metrics"] = {**rounds[-1]["metrics"], "latency_ms": latency,
                         "rounds": [round(_latency(r), 4) for r in rounds]}
    return merged


def _latency(record: dict) -> float:
    stats = record["metrics"]["latency_ms"]
    return stats.get("median") if stats.get("median") is not None else stats["mean"]


def float_twin(name: str) -> str | None:
    """fd_mobilenet_1_224_int8 -> fd_mobilenet_1_224_float32."""
    return re.sub(r"_int8$", "_float32", name) if name.endswith("_int8") else None


def group(records: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Records by (target name, configuration label)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for record in records:
        c = record["config"]
        label = f"{c['delegate']}, {c['threads']} thread{'s' if c['threads'] > 1 else ''}"
        groups.setdefault((record["target"]["name"], label), []).append(record)
    return groups


def table_rows(records: list[dict], baseline: str | None = None,
               accuracy: dict | None = None) -> list[dict]:
    by_name = {r["model"]["name"]: r for r in records}
    base = by_name.get(baseline) if baseline else None
    rows = []
    for record in sorted(records, key=lambda r: (r["model"].get("macs") or 0, r["model"]["name"])):
        model, stats = record["model"], record["metrics"]["latency_ms"]
        latency = _latency(record)
        twin = by_name.get(float_twin(model["name"]) or "")
        stock = by_name.get(stock_artifacts.PREFIX + model["name"])
        row = {
            "model": model["name"],
            "mode": model.get("mode") or "",
            "MACs (M)": f"{model['macs'] / 1e6:.1f}" if model.get("macs") else "",
            "params (M)": f"{model['params'] / 1e6:.2f}" if model.get("params") else "",
            "size (MB)": f"{model['size_bytes'] / 1e6:.2f}",
            "latency (ms)": f"{latency:.2f}",
            "p90 (ms)": f"{stats['p90']:.2f}" if stats.get("p90") is not None else "",
            "std (ms)": f"{stats['std']:.2f}" if stats.get("std") is not None else "",
            "statistic": record["metrics"].get("latency_statistic", ""),
            "rounds": spread(record["metrics"].get("rounds")),
            "partitions": partitions(record["metrics"]),
            "vs baseline": f"{_latency(base) / latency:.2f}x" if base else "",
            # > 1: ours is faster than keras.applications converted the stock way
            "vs stock": f"{_latency(stock) / latency:.2f}x" if stock else "",
            "int8 speed-up": f"{_latency(twin) / latency:.2f}x" if twin else "",
        }
        if record["config"]["delegate"] == "edgetpu":
            row["on Edge TPU"] = on_edgetpu(record["metrics"])
        if accuracy:
            row["top-1"] = f"{accuracy[model['name']]:.1%}" if model["name"] in accuracy else ""
        rows.append(row)
    return rows


def fd_mobilenet_rows(records: list[dict]) -> list[dict]:
    """The FD-MobileNet paper's speed comparison at equal MFLOPs (android_bench/suites.py),
    from whichever of its models the records hold: one row per (mode, cost level, peer)."""
    from android_bench import models, suites

    by_name = {r["model"]["name"]: r for r in records}
    sizes = sorted({r["model"].get("input_size") for r in records
                    if r["model"].get("architecture") == "fd_mobilenet"} - {None})
    modes = sorted({r["model"].get("mode") for r in records} - {None},
                   key=lambda m: models.MODES.index(m) if m in models.MODES else len(models.MODES))

    def find(entry: str, size: int, mode: str) -> dict | None:
        name, args = models.parse_zoo_entry(entry)
        return by_name.get(models.artifact_stem(name, {"alpha": 1.0, "input_size": size, **args},
                                                mode))

    rows = []
    for size in sizes:
        for mode in modes:
            for level in suites.fd_mobilenet_levels(size):
                fd = find(level.fd_mobilenet, size, mode)
                if fd is None:
                    continue
                for label, entry in level.peers.items():
                    peer = find(entry, size, mode)
                    if peer is None:
                        continue
                    paper = level.paper_speedup.get(label)
                    rows.append({
                        "mode": mode, "MFLOPs (paper)": level.mflops,
                        "FD-MobileNet": fd["model"]["name"],
                        "FD MACs (M)": f"{fd['model']['macs'] / 1e6:.1f}",
                        "FD (ms)": f"{_latency(fd):.2f}",
                        "peer": label, "peer MACs (M)": f"{peer['model']['macs'] / 1e6:.1f}",
                        "peer (ms)": f"{_latency(peer):.2f}",
                        "FD speed-up": f"{_latency(peer) / _latency(fd):.2f}x",
                        "paper (ARM, NCNN)": f"{paper:.2f}x" if paper else "",
                    })
    return rows


def markdown(rows: list[dict], title: str) -> str:
    columns = list(rows[0]) if rows else COLUMNS
    lines = [f"### {title}", "", "| " + " | ".join(columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def csv_text(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def plot(records: list[dict], title: str, path: pathlib.Path, accuracy: dict | None = None) -> None:
    """Latency against MACs (and against top-1 where known), one marker per mode."""
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # its font-cache notice
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_acc = [r for r in records if accuracy and r["model"]["name"] in accuracy]
    panels = 2 if with_acc else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 5), squeeze=False)
    markers = {"float32": "o", "float16": "s", "dynamic": "^", "int8": "D"}
    for mode in sorted({r["model"].get("mode") or "other" for r in records}):
        chosen = [r for r in records if (r["model"].get("mode") or "other") == mode]
        points = [(r["model"]["macs"] / 1e6, _latency(r), r["model"]["name"])
                  for r in chosen if r["model"].get("macs")]
        if points:
            x, y, names = zip(*points)
            axes[0][0].scatter(x, y, marker=markers.get(mode, "x"), label=mode)
            for xi, yi, name in points:
                axes[0][0].annotate(name.rsplit("_", 1)[0], (xi, yi), fontsize=7,
                                    xytext=(3, 3), textcoords="offset points")
        if with_acc:
            acc_points = [(_latency(r), accuracy[r["model"]["name"]] * 100) for r in chosen
                          if r["model"]["name"] in accuracy]
            if acc_points:
                lat, top1 = zip(*acc_points)
                axes[0][1].scatter(lat, top1, marker=markers.get(mode, "x"), label=mode)
    axes[0][0].set_xlabel("MACs (millions)")
    axes[0][0].set_ylabel("latency (ms)")
    axes[0][0].grid(alpha=0.3)
    axes[0][0].legend()
    if with_acc:
        axes[0][1].set_xlabel("latency (ms)")
        axes[0][1].set_ylabel("top-1 (%)")
        axes[0][1].grid(alpha=0.3)
        axes[0][1].legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic.replacing(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def also_written(stem: pathlib.Path) -> str:
    """The table's other files: '<stem>.csv, <stem>.png'."""
    return ", ".join(str(stem.with_suffix(ext)) for ext in (".csv", ".png")
                     if stem.with_suffix(ext).exists())


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_")


def write_comparison(records: list[dict], out_dir: pathlib.Path, *, baseline: str | None = None,
                     accuracy: dict | None = None) -> list[tuple[str, pathlib.Path, str]]:
    """Writes the tables and plot of every (target, configuration); returns (title, stem, md)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for (target, label), chosen in sorted(group(latest_ok(records)).items()):
        title = f"{target} ({label})"
        rows = table_rows(chosen, baseline, accuracy)
        stem = out_dir / slug(f"{target}_{label}")
        text = markdown(rows, title)
        atomic.write_bytes(stem.with_suffix(".md"), text.encode())
        atomic.write_bytes(stem.with_suffix(".csv"), csv_text(rows).encode())
        plot(chosen, title, stem.with_suffix(".png"), accuracy)
        written.append((title, stem, text))
        fd_rows = fd_mobilenet_rows(chosen)
        if fd_rows:
            fd_title = f"FD-MobileNet at equal MFLOPs: {title}"
            fd_stem = out_dir / slug(f"{target}_{label}_fd_mobilenet_paper")
            fd_text = markdown(fd_rows, fd_title)
            atomic.write_bytes(fd_stem.with_suffix(".md"), fd_text.encode())
            atomic.write_bytes(fd_stem.with_suffix(".csv"), csv_text(fd_rows).encode())
            written.append((fd_title, fd_stem, fd_text))
    return written
