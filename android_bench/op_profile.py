"""The per-op profile `benchmark_model --enable_op_profiling=true` prints, read from its log.

The tool prints its profile (tensorflow/core/util/stats_calculator.cc) as tables of tab-separated,
right-aligned columns under ``==== <title> ====`` lines, each followed by a short summary
(columns abridged here):

    Operator-wise Profiling Info for Regular Benchmark Runs:        (absent in older tools)
    ============================== Run Order ==============================
      [node type]  [start]  [first] [avg ms]     [%]  [cdf%] [mem KB] [times called] [Name]
          CONV_2D    0.066   87.754   60.957  2.066%  2.066%    0.000        1 [.../Conv2d_0/Relu6]:0
    ============================== Top by Computation Time ======...      (read past)
    ============================== Top by Memory Use ======...            (TF 1.x; read past)
    Number of nodes executed: 31
    ============================== Summary by node type ==============================
      [Node type]  [count]  [avg ms]  [avg %]  [cdf %]  [mem KB]  [times called]
          CONV_2D       15  2651.853  89.897%  89.897%     0.000              15
    Timings (microseconds): count=50 first=2989660 ... avg=2.9499e+06 std=109770
    Memory (bytes): count=0
    31 nodes observed

Newer tools drop the ``[start]`` column and widen ``[node type]`` for XNNPACK's op names
("Convolution (NHWC, QU8) GEMM"). Before the regular runs' profile a tool may print "Profiling Info
for Benchmark Initialization:" (or another phase's) with the same tables: only the regular runs'
are read. Within it, "Primary graph ... profile:" and "Subgraph (index: N, ...) profile:" split
the tables by subgraph, and "Delegate internal:" starts a delegate's own per-op tables. The
columns are found from each table's header, and a row may have lost its tabs to spaces (as pasted
into a web page); lines may carry the prefixes benchmark_model.py's docstring lists (``INFO: ``,
Android logcat's). The CSV and protobuf output modes (--op_profiling_output_mode) are not read.
tests/data/benchmark_model holds real published profiles; SOURCES.md there says where each was
published.
"""

from __future__ import annotations

import re

from android_bench.benchmark_model import _NUMBER, _statistics
from tfmobile_core import atomic

# What may stand before a line of the tool's output: logcat's columns (threadtime, brief, or
# "... tflite  : " as the docs abbreviate them), then the tool's own severity. The other parser
# never needed this: it searches its lines unanchored, while a table row starts with its type.
_PREFIX = re.compile(r"""
    ^\s*
    (?: \d\d-\d\d\ \d\d:\d\d:\d\d\.\d+ \s+ \d+ \s+ \d+ \s+ [VDIWEF] \s+ [^:]*?:\ ?   # threadtime
      | [VDIWEF]/[^(:]*\(\s*\d+\):\ ?                                                 # brief
      | \.\.\.\ [\w.-]+\s*:\ ?                                                        # abbreviated
    )?
    (?: (?:INFO|WARNING|WARN|ERROR|VERBOSE|DEBUG):\ )?
""", re.VERBOSE)

_TITLE = re.compile(r"^={5,} (?P<title>.+?) ={5,}$")
_PHASE = re.compile(r"Profiling Info for (?P<phase>.+?):\s*$")
_REGULAR_RUNS = "Regular Benchmark Runs"
_PRIMARY_GRAPH = re.compile(r"^Primary graph\b.*\bprofile:$")
_SUBGRAPH = re.compile(r"^Subgraph \(index: (?P<index>\d+)(?:, name: (?P<name>.*))?\) profile:$")
_DELEGATE = re.compile(r"^Delegate internal:\s*$")
_TIMINGS = re.compile(rf"""
    Timings\ \(microseconds\):\ count=(?P<count>\d+)
    (?P<fields> (?:\ +\w+={_NUMBER}(?:\(all\ same\))?)* )
""", re.VERBOSE)
_NODES_OBSERVED = re.compile(r"^(?P<count>\d+) nodes observed")
_NODES_EXECUTED = re.compile(r"^Number of nodes executed: (?P<count>\d+)")
_MEMORY = re.compile(r"^Memory \(bytes\):")

# Column header (as printed, lower case) -> (key in the result, the value's form). The tool prints
# times and memory with std::fixed and three decimals, so a float column always has its point.
_FLOAT, _PERCENT, _INT = r"-?\d+\.\d+", r"-?\d+\.\d+%", r"\d+"
_COLUMNS = {
    "start": ("start_ms", _FLOAT), "first": ("first_ms", _FLOAT), "avg ms": ("avg_ms", _FLOAT),
    "%": ("percent", _PERCENT), "avg %": ("percent", _PERCENT),
    "cdf%": ("cdf_percent", _PERCENT), "cdf %": ("cdf_percent", _PERCENT),
    "mem kb": ("mem_kb", _FLOAT), "times called": ("times_called", _INT), "count": ("count", _INT),
}
_NODE_KEYS = ["type", "name", "start_ms", "first_ms", "avg_ms", "percent", "cdf_percent", "mem_kb",
              "times_called"]
_TYPE_KEYS = ["type", "count", "avg_ms", "percent", "cdf_percent", "mem_kb", "times_called"]
_TABLES = {"Run Order": "nodes", "Summary by node type": "by_type"}


class OpProfileError(ValueError):
    """A profile table holds a line that is not a whole row (a log cut or torn mid-table)."""


def parse(text: str) -> dict | None:
    """The regular benchmark runs' per-op profile in a benchmark_model log, or None if it has none.

    Keys:

    - ``nodes``: the "Run Order" table, in run order: dicts of ``type``, ``name`` (as printed,
      e.g. ``[MobilenetV1/Conv2d_0/Relu6]:0``), ``start_ms`` (None in tools without that column),
      ``first_ms``, ``avg_ms``, ``percent``, ``cdf_percent``, ``mem_kb``, ``times_called``.
    - ``by_type``: the "Summary by node type" table in its order: dicts of ``type``, ``count``,
      ``avg_ms``, ``percent``, ``cdf_percent``, ``mem_kb``, ``times_called``.
    - ``total_ms``: the profiled runs' average in ms, from "Timings (microseconds): ... avg=".
    - ``nodes_observed``: from "N nodes observed" (or, without it, "Number of nodes executed: N").
    - ``delegate_internal``: the same four keys for the "Delegate internal:" tables, or None.
    - ``subgraphs``: the same four keys plus ``index`` and ``name`` for each subgraph other than
      the primary one, in the order printed.

    Any value a log does not print is None (an empty list for the tables). Only the regular runs'
    profile is read; a log from before TF 1.14 prints it with no heading. Raises OpProfileError,
    naming the line, when a table row is torn: rather no profile than wrong rows.
    """
    headless = _new_part()  # tables before any "Profiling Info for ..." heading
    regular: dict | None = None  # {"graphs": {index: part}, "delegate": part or None}
    part: dict | None = headless  # where the tables now read go; None: a phase not kept
    table: dict | None = None  # the table being read: its title, columns and row pattern
    for number, line in enumerate(text.splitlines(), start=1):
        body = line[_PREFIX.match(line).end():].strip()
        if table is not None:
            if table["columns"] is None:  # the line after the title: the column header
                table.update(_header(body, table["title"], number))
                continue
            if body and not _ends_table(body):
                row = _row(body, table, number)
                if part is not None and table["key"]:
                    part[table["key"]].append(row)
                continue
            table = None
        if m := _TITLE.match(body):
            table = {"title": m["title"], "key": _TABLES.get(m["title"]), "columns": None}
            if part is not None and table["key"]:
                part[table["key"]] = []  # a table printed again replaces the first
        elif m := _PHASE.search(body):
            if _REGULAR_RUNS in m["phase"]:
                regular = {"graphs": {0: _new_part()}, "delegate": None}
                part = regular["graphs"][0]
            else:
                part = None
        elif regular is not None and part is not None and _PRIMARY_GRAPH.match(body):
            part = regular["graphs"][0]
        elif regular is not None and part is not None and (m := _SUBGRAPH.match(body)):
            part = regular["graphs"].setdefault(int(m["index"]), _new_part())
            part["name"] = m["name"]
        elif regular is not None and part is not None and _DELEGATE.match(body):
            part = regular["delegate"] = _new_part()
        elif part is None:
            continue
        elif m := _TIMINGS.search(body):
            stats = _statistics(m)
            part["total_ms"] = stats["avg"] / 1000 if "avg" in stats else None
        elif m := _NODES_OBSERVED.match(body):
            part["nodes_observed"] = int(m["count"])
        elif m := _NODES_EXECUTED.match(body):
            part["nodes_executed"] = int(m["count"])
    graphs = regular["graphs"] if regular else {0: headless}
    if not (graphs[0]["nodes"] or graphs[0]["by_type"]):
        return None
    profile = _finish(graphs[0])
    profile["delegate_internal"] = _finish(regular["delegate"]) if regular and \
        regular["delegate"] else None
    profile["subgraphs"] = [{"index": index, "name": graph["name"], **_finish(graph)}
                            for index, graph in graphs.items() if index != 0]
    return profile


def _new_part() -> dict:
    return {"nodes": [], "by_type": [], "total_ms": None, "nodes_observed": None,
            "nodes_executed": None, "name": None}


def _finish(part: dict) -> dict:
    observed = part["nodes_observed"]
    return {"nodes": part["nodes"], "by_type": part["by_type"], "total_ms": part["total_ms"],
            "nodes_observed": observed if observed is not None else part["nodes_executed"]}


def _ends_table(body: str) -> bool:
    """A line that is no row: the next title, or what the tool prints after a table."""
    return bool(_TITLE.match(body) or _PHASE.search(body) or _TIMINGS.search(body)
                or _NODES_OBSERVED.match(body) or _NODES_EXECUTED.match(body)
                or _MEMORY.match(body) or _DELEGATE.match(body) or _PRIMARY_GRAPH.match(body)
                or _SUBGRAPH.match(body))


def _header(body: str, title: str, number: int) -> dict:
    """The columns of a table from its header line, and the pattern its rows match."""
    names = re.findall(r"\[([^\]]+)\]", body)
    if not names or names[0].lower() != "node type":
        raise OpProfileError(f"line {number}: the {title!r} table has no column header "
                             f"([node type] ...); found {body!r}")
    # The type comes first and may hold spaces and digits ("convolution_2d 0 -> relu 1"): it is
    # the shortest start after which every other column takes its form. The name, last, is
    # whatever is left (it may hold spaces too).
    columns, pattern = ["type"], r"(?P<c0>\S.*?)"
    for i, name in enumerate(names[1:], start=1):
        if name.lower() == "name" and i == len(names) - 1:
            key, form = "name", r"\S.*"
        else:
            key, form = _COLUMNS.get(name.lower(), (name, r"\S+"))
        columns.append(key)
        pattern += rf"\s+(?P<c{i}>{form})"
    return {"columns": columns, "row": re.compile(pattern + r"$")}


def _row(body: str, table: dict, number: int) -> dict:
    m = table["row"].match(body)
    values = dict(zip(table["columns"], m.groups(), strict=True)) if m else {}
    name = values.get("name", "")
    if not m or (name.startswith("[") and "]" not in name):  # a bracketed name cut short
        raise OpProfileError(f"line {number}: not a whole row of the {table['title']!r} table "
                             f"({' '.join(table['columns'])}): {body!r}")
    row = {}
    for key in (_NODE_KEYS if table["key"] == "nodes" else _TYPE_KEYS):
        value = values.get(key)
        if value is None or key in ("type", "name"):
            row[key] = value
        elif key in ("times_called", "count"):
            row[key] = int(value)
        else:
            row[key] = float(value.rstrip("%"))
    return row


def top_types(profile: dict, n: int = 5) -> list[dict]:
    """The n node types that took most time: dicts of ``type``, ``avg_ms`` and ``percent``.

    From "Summary by node type"; a profile cut before that table sums its Run Order instead.
    """
    types = profile["by_type"] or _types_from_nodes(profile["nodes"])
    ranked = sorted(types, key=lambda t: t["percent"], reverse=True)  # stable: ties keep order
    return [{"type": t["type"], "avg_ms": t["avg_ms"], "percent": t["percent"]}
            for t in ranked[:n]]


def _types_from_nodes(nodes: list[dict]) -> list[dict]:
    total = sum(node["avg_ms"] for node in nodes)
    by_type: dict[str, float] = {}
    for node in nodes:
        by_type[node["type"]] = by_type.get(node["type"], 0.0) + node["avg_ms"]
    return [{"type": kind, "avg_ms": ms, "percent": 100 * ms / total if total else 0.0}
            for kind, ms in by_type.items()]


def summary(profile: dict, n: int = 3) -> str:
    """One line: "CONV_2D 61%, DEPTHWISE_CONV_2D 22%, ADD 6%"."""
    return ", ".join(f"{t['type']} {t['percent']:.0f}%" for t in top_types(profile, n))


def markdown_table(rows: list[tuple[str, dict]], n: int = 5) -> str:
    """A Markdown table, one row per (model name, profile): its total and its top n node types."""
    lines = ["| model | total ms | " + " | ".join(f"top {i}" for i in range(1, n + 1)) + " |",
             "|---|---:|" + "---|" * n]
    for model, profile in rows:
        cells = [f"{t['type']} {t['percent']:.1f}%" for t in top_types(profile, n)]
        cells += [""] * (n - len(cells))
        total = "" if profile["total_ms"] is None else f"{profile['total_ms']:.3f}"
        lines.append("| " + " | ".join(_cell(c) for c in [model, total, *cells]) + " |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", r"\|")


def plot(rows: list[tuple[str, dict]], path) -> None:
    """A PNG at `path`: per model a horizontal bar of its op time split by node type, its top
    5 types and "other", each type the same colour in every bar. Written whole or not at all."""
    if not rows:
        raise ValueError("no profiles to plot")
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # its font-cache notice
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shares = [(model, top_types(profile, 5)) for model, profile in rows]
    kinds = list(dict.fromkeys(t["type"] for _, top in shares for t in top))
    palette = plt.get_cmap("tab20").colors
    colours = {kind: palette[i % len(palette)] for i, kind in enumerate(kinds)}
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.5 * len(rows)))
    labelled = set()
    for y, (_, top) in enumerate(shares):
        left = 0.0
        for t in top:
            label = None if t["type"] in labelled else t["type"]
            labelled.add(t["type"])
            ax.barh(y, t["percent"], left=left, color=colours[t["type"]], label=label)
            left += t["percent"]
        if 100 - left > 0.05:  # the summary's percents add up to 100 but for rounding
            ax.barh(y, 100 - left, left=left, color="0.8",
                    label=None if "other" in labelled else "other")
            labelled.add("other")
    ax.set_yticks(range(len(rows)), [model for model, _ in rows])
    ax.invert_yaxis()  # the first model on top, as in the table
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of op time (%)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.tight_layout()
    with atomic.replacing(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
