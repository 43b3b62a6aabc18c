"""From stored results to the tables and plots of the papers' latency figures.

Per target (and configuration): a Markdown and a CSV table of model, MACs, params, size and
latency, with the speed-up against a baseline model and each int8 model against its float
twin; and a PNG of latency against MACs (and against top-1, or a detector's mAP@.5, where
accuracy is known), in the style of the MobileNet V3 paper's Pixel figures. The @ssdlite_paper
suite's detectors get a table of their own beside the paper's published Table 6 (Pixel 1).

Accuracy, by model name as the tables show it: a classifier's top-1, a detector's COCO mAP@.5
and mAP@[.5:.95] ("map_50", "map": the keys of `tfmobile.evaluate --json`), as fractions.
"""

from __future__ import annotations

import csv
import json
import dataclasses
import hashlib
import io
import pathlib
import re
import statistics

from android_bench import op_profile
from tfmobile_core import atomic, cli
from tfmobile_core.records import (parse_json, MODES, ArtifactId, BenchConfig, BenchmarkRecord, Conversion,
                                   Latency, Metrics)

COLUMNS = ["model", "mode", "MACs (M)", "params (M)", "size (MB)", "latency (ms)", "p90 (ms)",
           "std (ms)", "statistic", "rounds", "peak memory (MB)", "partitions", "vs baseline",
           "vs stock", "int8 speed-up"]


def checked(metrics: Metrics) -> str:
    """'identical', 'max 1 step', 'max 2.4e-06': what the interpreter test found."""
    check = metrics.check
    if not check:
        return ""
    worst = check.get("max_abs_diff")
    if worst == 0:
        return "identical"
    rows = check.get("outputs") or []
    units = {row.get("unit") for row in rows}
    if units == {"quantization steps"}:
        text = f"max {worst:g} step{'s' if worst != 1 else ''}"
        tracked = [row["sqnr_db"] for row in rows
                   if row.get("tolerance") is None and row.get("sqnr_db") is not None]
        # Against another runtime the rule is tracking, not steps: show how closely.
        return text + (f", SQNR {min(tracked):.0f} dB" if tracked else "")
    return f"max {worst:.2g}" if worst is not None else ""


def sustained(metrics: Metrics) -> str:
    """'1.24 -> 1.50 ms (+21%), throttled': the first sample against the settled latency."""
    run = metrics.sustained
    if not run:
        return ""
    text = f"{run['cold_ms']:.2f} -> {run['settled_ms']:.2f} ms"
    if run.get("latency_rise") is not None:
        text += f" ({run['latency_rise']:+.0%})"
    if run.get("frequency_drop"):
        text += f", frequency {-run['frequency_drop']:+.0%}"
    return text + (", throttled" if run.get("throttled") else ", steady")


def partitions(metrics: Metrics) -> str:
    """'1', or '4 (CPU: AVERAGE_POOL_2D 3)': the delegate's partitions and the ops it left to
    the builtin kernels (device runner cells; benchmark_model does not say)."""
    count, outside = metrics.partitions, metrics.ops_outside_delegate or {}
    if count is None:
        return ""
    if not outside:
        return str(count)
    return f"{count} (CPU: " + ", ".join(f"{op} {n}" for op, n in outside.items()) + ")"


def spread(rounds: tuple[float, ...] | None) -> str:
    """'5 (1.21-1.34)': how many rounds the median is over, and their range."""
    if not rounds:
        return ""
    return f"{len(rounds)} ({min(rounds):.2f}-{max(rounds):.2f})"


def on_edgetpu(metrics: Metrics) -> str:
    """Whether the Edge TPU ran the model: its delegate took edgetpu-custom-op nodes."""
    ops = metrics.edgetpu_ops
    if ops is None:
        return ""
    return f"yes ({ops} custom op{'s' if ops != 1 else ''})" if ops else "no"


def latest_ok(records: list[BenchmarkRecord]) -> list[BenchmarkRecord]:
    """The newest successful measurement of every (target, model, configuration).

    A run with --rounds left one record per round (a resumed run adds its missing rounds under
    the same run id); those of the cell's newest run merge into one whose latency statistics
    are the medians over the rounds (metrics.rounds keeps each round's figure).
    """
    runs: dict[str, dict[str | None, list[BenchmarkRecord]]] = {}
    newest: dict[str, str | None] = {}
    for record in records:  # the store is in time order
        if record.status != "ok":
            continue
        run_id = record.run.id if record.run else None
        runs.setdefault(record.key, {}).setdefault(run_id, []).append(record)
        newest[record.key] = run_id
    return [merge_rounds(runs[key][run_id]) for key, run_id in newest.items()]


def merge_rounds(rounds: list[BenchmarkRecord]) -> BenchmarkRecord:
    if len(rounds) == 1:
        return rounds[0]
    stats = [r.metrics.latency_ms for r in rounds]
    latency = Latency(**{field.name: statistics.median(getattr(s, field.name) for s in stats)
                         for field in dataclasses.fields(Latency)
                         if all(getattr(s, field.name) is not None for s in stats)})
    last = rounds[-1]
    metrics = dataclasses.replace(last.metrics, latency_ms=latency,
                                  rounds=tuple(round(_latency(r), 4) for r in rounds))
    return dataclasses.replace(last, metrics=metrics)


def _latency(record: BenchmarkRecord) -> float:
    return record.metrics.latency_ms.typical


Group = tuple[str, str, BenchConfig]  # target name, runner, configuration


def group(records: list[BenchmarkRecord]) -> dict[Group, list[BenchmarkRecord]]:
    """Records by target, runner and configuration: one table each."""
    groups: dict[Group, list[BenchmarkRecord]] = {}
    for record in records:
        groups.setdefault((record.target_name, record.runner, record.config), []).append(record)
    return groups


def title(key: Group) -> str:
    target, runner, config = key
    runs = "" if config.duration_s else f", {config.num_runs} runs"
    return f"{target} ({config.label()}{runs}; {runner})"


def _by_artifact(records: list[BenchmarkRecord]) -> dict:
    """Records by what they ran: (ArtifactId, compiled_for); models from elsewhere left out."""
    return {(r.model.artifact, r.model.compiled_for): r for r in records if r.model.artifact}


def _zoo_cell(by_artifact: dict, entry: str, size: int, mode: str) -> BenchmarkRecord | None:
    """The record of zoo entry `entry` at `size` in `mode` (the paper tables' cells), or None."""
    from android_bench import models  # the zoo's registry, only where a paper table is made

    try:
        identity, _ = models.zoo_identity(entry, size)
    except models.ModelError:  # a size the zoo does not build (a store from elsewhere)
        return None
    return by_artifact.get((ArtifactId(identity, Conversion(mode=mode)), None))


# Accuracy metrics (fractions) -> their columns. A detector's mAP@.5 is the headline: COCO's
# mAP@[.5:.95] beside it.
ACCURACY_COLUMNS = {"top1": "top-1", "map_50": "mAP@.5", "map": "mAP"}


def is_detector(record: BenchmarkRecord) -> bool:
    """Whether the record timed a zoo detector (by its records, not its file name)."""
    from android_bench import models

    artifact = record.model.artifact
    return artifact is not None and models.is_detector(artifact.model.name)


def accuracy_of(record: BenchmarkRecord, accuracy: dict | None) -> dict[str, float]:
    """The accuracy file's figures for the record's model, as {metric: fraction}. A plain
    number is a classifier's top-1 and a detector's mAP@.5; an object gives its metrics by
    name (top1, map_50, map)."""
    value = (accuracy or {}).get(record.model.name)
    if value is None:
        return {}
    if isinstance(value, dict):
        return {key: value[key] for key in ACCURACY_COLUMNS if value.get(key) is not None}
    return {"map_50" if is_detector(record) else "top1": value}


def headline_accuracy(records: list[BenchmarkRecord], accuracy: dict | None
                      ) -> tuple[dict[str, float], str]:
    """({model name: accuracy in %}, its axis label) for the latency-accuracy plot: top-1 of
    classifiers, or mAP@.5 of detectors when no classifier has a figure (one axis, one
    metric)."""
    found = {r.model.name: accuracy_of(r, accuracy) for r in records}
    for metric in ("top1", "map_50"):
        points = {name: 100 * got[metric] for name, got in found.items() if metric in got}
        if points:
            return points, f"{ACCURACY_COLUMNS[metric]} (%)"
    return {}, ""


def table_rows(records: list[BenchmarkRecord], baseline: str | None = None,
               accuracy: dict | None = None) -> list[dict]:
    by_name = {r.model.name: r for r in records}
    by_artifact = _by_artifact(records)
    base = by_name.get(baseline) if baseline else None
    # Accuracy columns: those any model of the table has (top-1 always, as before, when given).
    shown = {metric for r in records for metric in accuracy_of(r, accuracy)}
    if accuracy and not shown & {"map_50", "map"}:
        shown.add("top1")
    rows = []
    for record in sorted(records, key=lambda r: (r.model.macs or 0, r.model.name)):
        model, stats = record.model, record.metrics.latency_ms
        latency = _latency(record)
        artifact = model.artifact
        twin = stock = None
        if artifact is not None and not model.compiled_for:
            if artifact.conversion.mode == "int8":
                twin = by_artifact.get((artifact.float_twin(), None))
            if artifact.conversion.path == "tfmobile":
                stock = by_artifact.get((artifact.stock_twin(), None))
        row = {
            "model": model.name,
            "mode": model.mode or "",
            "MACs (M)": f"{model.macs / 1e6:.1f}" if model.macs else "",
            "params (M)": f"{model.params / 1e6:.2f}" if model.params else "",
            "size (MB)": f"{model.size_bytes / 1e6:.2f}",
            "latency (ms)": f"{latency:.2f}",
            "p90 (ms)": f"{stats.p90:.2f}" if stats.p90 is not None else "",
            "std (ms)": f"{stats.std:.2f}" if stats.std is not None else "",
            "statistic": record.metrics.latency_statistic,
            "rounds": spread(record.metrics.rounds),
            "peak memory (MB)": f"{record.metrics.peak_rss_mb:.1f}"
            if record.metrics.peak_rss_mb is not None else "",
            "partitions": partitions(record.metrics),
            "vs baseline": f"{_latency(base) / latency:.2f}x" if base else "",
            # > 1: ours is faster than keras.applications converted the stock way
            "vs stock": f"{_latency(stock) / latency:.2f}x" if stock else "",
            "int8 speed-up": f"{_latency(twin) / latency:.2f}x" if twin else "",
        }
        if record.config.delegate == "edgetpu":
            row["on Edge TPU"] = on_edgetpu(record.metrics)
        if record.config.check:
            row["check"] = checked(record.metrics)
        if record.config.duration_s:
            row["sustained (first -> settled)"] = sustained(record.metrics)
        if record.config.op_profiling:
            row["top ops"] = (op_profile.summary(record.metrics.op_profile)
                              if record.metrics.op_profile else "")
        if accuracy:
            figures = accuracy_of(record, accuracy)
            for metric, column in ACCURACY_COLUMNS.items():
                if metric in shown:
                    row[column] = f"{figures[metric]:.1%}" if metric in figures else ""
        rows.append(row)
    return rows


def fd_mobilenet_rows(records: list[BenchmarkRecord]) -> list[dict]:
    """The FD-MobileNet paper's speed comparison at equal MFLOPs (android_bench/suites.py),
    from whichever of its models the records hold: one row per (mode, cost level, peer)."""
    from android_bench import suites

    by_artifact = _by_artifact(records)
    ours = [r.model.artifact for r in records if r.model.artifact and not r.model.compiled_for]
    sizes = sorted({a.model.input_size for a in ours if a.model.name == "fd_mobilenet"})
    modes = [m for m in MODES if any(a.conversion.mode == m for a in ours)]

    def find(entry: str, size: int, mode: str) -> BenchmarkRecord | None:
        return _zoo_cell(by_artifact, entry, size, mode)

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
                        "FD-MobileNet": fd.model.name,
                        "FD MACs (M)": _millions(fd.model.macs),
                        "FD (ms)": f"{_latency(fd):.2f}",
                        "peer": label, "peer MACs (M)": _millions(peer.model.macs),
                        "peer (ms)": f"{_latency(peer):.2f}",
                        "FD speed-up": f"{_latency(peer) / _latency(fd):.2f}x",
                        "paper (ARM, NCNN)": f"{paper:.2f}x" if paper else "",
                    })
    return rows


PUBLISHED = "published (paper, Pixel 1)"
MEASURED = "measured (this target)"


def ssdlite_paper_rows(records: list[BenchmarkRecord], accuracy: dict | None = None
                       ) -> list[dict]:
    """The MobileNet V3 paper's SSDLite table (android_bench/suites.py, SSDLITE_PAPER) beside
    what the records measured: per network its published row (the paper's Pixel 1 latency and
    COCO mAP, the MAdds of its card in tfmobile.models.cards), then one measured row
    per input size and mode. Phones differ, so the rows compare by their speed-up over the
    MobileNet V2 row of the same source (and mode), as the paper compares. No params column:
    the cards count conv weights, the reports Keras's parameters (batch norm too), and one
    column of both would compare unlike counts. Empty unless the records hold one of its
    networks."""
    from android_bench import models, suites
    from tfmobile.models import cards

    by_artifact = _by_artifact(records)
    names = {models.parse_zoo_entry(row.entry)[0] for row in suites.SSDLITE_PAPER}
    ours = [r.model.artifact for r in records
            if r.model.artifact and not r.model.compiled_for and r.model.artifact.model.name in names]
    sizes = sorted({a.model.input_size for a in ours})
    modes = [m for m in MODES if any(a.conversion.mode == m for a in ours)]

    def find(entry: str, size: int, mode: str) -> BenchmarkRecord | None:
        return _zoo_cell(by_artifact, entry, size, mode)

    def card(entry: str):
        name, variants = models.parse_zoo_entry(entry)
        return next((c for c in cards.DETECTION_CARDS
                     if c.model == name and dict(c.variants) == variants), None)

    measured = {(row.label, size, mode): find(row.entry, size, mode)
                for row in suites.SSDLITE_PAPER for size in sizes for mode in modes}
    if not any(measured.values()):
        return []
    reference = next(r for r in suites.SSDLITE_PAPER if r.label == suites.SSDLITE_REFERENCE)
    rows = []
    for paper in suites.SSDLITE_PAPER:
        published = card(paper.entry)
        rows.append({
            "network": f"SSDLite {paper.label}", "source": PUBLISHED, "input": paper.input_size,
            "mode": "", "MACs (M)": published.macs_m if published else "",
            "latency (ms)": f"{paper.latency_ms:g}",
            f"vs {reference.label}": f"{reference.latency_ms / paper.latency_ms:.2f}x",
            "mAP": f"{paper.map:.1f}%", "mAP@.5": ""})
        for size in sizes:
            for mode in modes:
                record = measured[(paper.label, size, mode)]
                if record is None:
                    continue
                base = measured[(reference.label, size, mode)]
                figures = accuracy_of(record, accuracy)
                rows.append({
                    "network": f"SSDLite {paper.label}", "source": MEASURED, "input": size,
                    "mode": mode, "MACs (M)": _millions(record.model.macs),
                    "latency (ms)": f"{_latency(record):.2f}",
                    f"vs {reference.label}": f"{_latency(base) / _latency(record):.2f}x"
                    if base else "",
                    "mAP": f"{figures['map']:.1%}" if "map" in figures else "",
                    "mAP@.5": f"{figures['map_50']:.1%}" if "map_50" in figures else ""})
    return rows


def ssdlite_paper_note() -> str:
    """What the published rows are, under their table."""
    from android_bench import suites

    return (f"\nPublished rows: {suites.SSDLITE_SOURCE}, figures as printed (COCO test-dev mAP "
            "@[.5:.95]; MAdds from tfmobile.models.cards), not measured here. Their "
            "phone is not this target: compare the speed-ups over MobileNet V2, not the "
            "milliseconds. Measured mAP comes from --accuracy.\n")


def _millions(count: int | None) -> str:
    """'140.2', or '' for a model whose report (the operation count) was not found."""
    return f"{count / 1e6:.1f}" if count else ""


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


def plot(records: list[BenchmarkRecord], title: str, path: pathlib.Path,
         accuracy: dict | None = None) -> None:
    """Latency against MACs (and against top-1, or detectors' mAP@.5, where known), one
    marker per mode."""
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # its font-cache notice
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores, accuracy_label = headline_accuracy(records, accuracy)
    with_acc = [r for r in records if r.model.name in scores]
    panels = 2 if with_acc else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 5), squeeze=False)
    markers = {"float32": "o", "float16": "s", "dynamic": "^", "int8": "D"}
    for mode in sorted({r.model.mode or "other" for r in records}):
        chosen = [r for r in records if (r.model.mode or "other") == mode]
        points = [(r.model.macs / 1e6, _latency(r), r.model.name) for r in chosen if r.model.macs]
        if points:
            x, y, names = zip(*points, strict=True)
            axes[0][0].scatter(x, y, marker=markers.get(mode, "x"), label=mode)
            for xi, yi, name in points:
                axes[0][0].annotate(name.rsplit("_", 1)[0], (xi, yi), fontsize=7,
                                    xytext=(3, 3), textcoords="offset points")
        if with_acc:
            acc_points = [(_latency(r), scores[r.model.name]) for r in chosen
                          if r.model.name in scores]
            if acc_points:
                lat, top1 = zip(*acc_points, strict=True)
                axes[0][1].scatter(lat, top1, marker=markers.get(mode, "x"), label=mode)
    axes[0][0].set_xlabel("MACs (millions)")
    axes[0][0].set_ylabel("latency (ms)")
    axes[0][0].grid(alpha=0.3)
    if axes[0][0].get_legend_handles_labels()[0]:  # no MACs known: no points, no legend
        axes[0][0].legend()
    if with_acc:
        axes[0][1].set_xlabel("latency (ms)")
        axes[0][1].set_ylabel(accuracy_label)
        axes[0][1].grid(alpha=0.3)
        axes[0][1].legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic.replacing(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def latency_over_time(record: BenchmarkRecord, width: int = 12) -> str:
    """'name: latency over time (ms, 6 samples from 1 to 6 s): 1.37 1.10 ...; settled 1.09 ms,
    steady', at most `width` samples shown, evenly spread."""
    run = record.metrics.sustained
    samples = run["samples"]
    shown = samples if len(samples) <= width else [
        samples[round(i * (len(samples) - 1) / (width - 1))] for i in range(width)]
    span = f"{len(shown)} samples from {shown[0]['t_s']:.0f} to {shown[-1]['t_s']:.0f} s"
    values = " ".join(f"{s['median_ms']:.2f}" for s in shown)
    verdict = "throttled" if run.get("throttled") else "steady"
    return (f"{record.model.name}: latency over time (ms, {span}): {values}; settled "
            f"{record.metrics.latency_ms.typical:.2f} ms, {verdict} (threshold "
            f"{run.get('threshold', 0):.0%})")


def plot_sustained(records: list[BenchmarkRecord], title: str, path: pathlib.Path) -> None:
    """Latency over time (and the mean CPU frequency, where read) of sustained runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_khz = any(s.get("mean_khz") for r in records for s in r.metrics.sustained["samples"])
    fig, axes = plt.subplots(2 if with_khz else 1, 1, figsize=(7, 6 if with_khz else 4),
                             sharex=True, squeeze=False)
    for record in records:
        samples = record.metrics.sustained["samples"]
        t = [s["t_s"] for s in samples]
        line, = axes[0][0].plot(t, [s["median_ms"] for s in samples], marker=".",
                                label=record.model.name)
        axes[0][0].axhline(record.metrics.latency_ms.typical, color=line.get_color(),
                           linestyle=":", linewidth=1)  # the settled latency reported
        if with_khz:
            axes[1][0].plot(t, [(s.get("mean_khz") or float("nan")) / 1e6 for s in samples],
                            color=line.get_color())
    axes[0][0].set_ylabel("median latency per sample (ms)")
    axes[0][0].set_ylim(bottom=0)  # a rise of 10% looks like 10%
    axes[0][0].grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    if with_khz:
        axes[1][0].set_ylabel("mean CPU frequency (GHz)")
        axes[1][0].grid(alpha=0.3)
    axes[-1][0].set_xlabel("time (s)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic.replacing(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def file_stem(*parts: str, digest_of: str) -> str:
    """A file name for a table: readable (letters, digits, _ and -: no dot for a suffix to cut
    at, no colon), and unique by a digest of the table's full title, so targets and
    configurations that read alike never share a file."""
    readable = re.sub(r"[^A-Za-z0-9-]+", "_", " ".join(parts)).strip("_")[:80]
    return f"{readable}-{hashlib.sha256(digest_of.encode()).hexdigest()[:8]}"


def write_table(out_dir: pathlib.Path, stem: str, rows: list[dict], heading: str,
                records: list[BenchmarkRecord] | None = None,
                accuracy: dict | None = None) -> tuple[str, list[pathlib.Path]]:
    """<stem>.md and <stem>.csv (and <stem>.png of `records`); returns the Markdown and the
    files written."""
    text = markdown(rows, heading)
    files = [out_dir / f"{stem}.md", out_dir / f"{stem}.csv"]
    atomic.write_bytes(files[0], text.encode())
    atomic.write_bytes(files[1], csv_text(rows).encode())
    if records is not None:
        files.append(out_dir / f"{stem}.png")
        plot(records, heading, files[2], accuracy)
    return text, files


def check_output_dir(out_dir: pathlib.Path, what: str, fix: str = "name another") -> None:
    """UsageError when the tables' directory is a file (found before the work, not after)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise cli.UsageError(f"{what} {out_dir} is a file, not a directory for the tables; {fix}")


def check_baseline(baseline: str, names: set[str], where: str) -> None:
    """UsageError unless `baseline` names one of the models (else its column stays empty)."""
    if baseline not in names:
        listed = ", ".join(sorted(names)[:6]) + (", ..." if len(names) > 6 else "")
        raise cli.UsageError(f"--baseline {baseline!r} names none of {where}"
                             + (f" ({listed})" if names else ""))


def write_comparison(records: list[BenchmarkRecord], out_dir: pathlib.Path, *,
                     baseline: str | None = None, accuracy: dict | None = None,
                     ) -> list[tuple[str, str, list[pathlib.Path]]]:
    """Writes the tables and plot of every (target, runner, configuration); returns (title,
    Markdown, files) of each table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    groups = group(latest_ok(records))
    for key in sorted(groups, key=title):
        chosen, heading = groups[key], title(key)
        stem = file_stem(key[0], key[2].label(), digest_of=heading)
        text, files = write_table(out_dir, stem, table_rows(chosen, baseline, accuracy), heading,
                                  chosen, accuracy)
        over_time = [r for r in chosen if r.metrics.sustained]
        if over_time:
            path = out_dir / f"{stem}_sustained.png"
            plot_sustained(over_time, f"Sustained: {heading}", path)
            text += "".join(f"\n{latency_over_time(r)}\n" for r in over_time)
            atomic.write_bytes(files[0], text.encode())  # the table's .md, with the samples
            files.append(path)
        written.append((heading, text, files))
        profiled = [(r.model.name, r.metrics.op_profile) for r in chosen if r.metrics.op_profile]
        if profiled:
            ops_heading = f"Top ops: {heading}"
            text_ops = f"### {ops_heading}\n\n" + op_profile.markdown_table(profiled)
            atomic.write_bytes(out_dir / f"{stem}_ops.md", text_ops.encode())
            op_profile.plot(profiled, out_dir / f"{stem}_ops.png")
            written.append((ops_heading, text_ops,
                            [out_dir / f"{stem}_ops.md", out_dir / f"{stem}_ops.png"]))
        fd_rows = fd_mobilenet_rows(chosen)
        if fd_rows:
            fd_heading = f"FD-MobileNet at equal MFLOPs: {heading}"
            text, files = write_table(out_dir, f"{stem}_fd_mobilenet_paper", fd_rows, fd_heading)
            written.append((fd_heading, text, files))
        ssd_rows = ssdlite_paper_rows(chosen, accuracy)
        if ssd_rows:
            ssd_heading = f"SSDLite, MobileNet V3 paper Table 6, measured and published: {heading}"
            text, files = write_table(out_dir, f"{stem}_ssdlite_paper", ssd_rows, ssd_heading)
            text += ssdlite_paper_note()
            atomic.write_bytes(files[0], text.encode())
            written.append((ssd_heading, text, files))
    return written


# --accuracy files (cmd_compare) -------------------------------------------------------------

ACCURACY_KEYS = ("top1", "map_50", "map")


def read_accuracy(path: str) -> dict[str, float | dict[str, float]]:
    """{"model name": a fraction (top-1, or a detector's mAP@.5), or {metric: fraction} of
    ACCURACY_KEYS (other keys, and nulls, ignored: an evaluate --json object as printed)};
    UsageError (one line) for anything else."""
    try:
        accuracy = parse_json(pathlib.Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise cli.UsageError(f"--accuracy {path}: {getattr(err, 'strerror', None) or err}") \
            from None
    if not isinstance(accuracy, dict):
        raise cli.UsageError(f"--accuracy {path} must be a JSON object of model name -> top-1 "
                             "(or a detector's mAP@.5, or an object of top1, map_50, map)")
    read: dict[str, float | dict[str, float]] = {}
    for name, value in accuracy.items():
        if isinstance(value, dict):
            figures = {key: value[key] for key in ACCURACY_KEYS if value.get(key) is not None}
            if not figures:
                raise cli.UsageError(f"--accuracy {path}: the object of {name!r} has none of "
                                     f"{', '.join(ACCURACY_KEYS)} (fractions)")
            read[name] = {key: _fraction(path, name, key, got) for key, got in figures.items()}
        else:
            read[name] = _fraction(path, name, "top-1", value)
    return read


def _fraction(path: str, name: str, metric: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise cli.UsageError(f"--accuracy {path}: the {metric} of {name!r} must be a fraction "
                             f"between 0 and 1, got {json.dumps(value)}")
    return float(value)
