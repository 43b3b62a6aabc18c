"""edgetpu_compiler's output, read: its stdout (one block per compiled model when several are
co-compiled or a model is cut into -n segments) and its operation logs (*_edgetpu.log).

tests/data/edgetpu holds published examples of every shape read here (SOURCES.md there).
"""

from __future__ import annotations

import re

from converters.edgetpu import MAPPED

_SIZE_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
_LINES = {  # key: (the whole line, how to read the captured value)
    "compiler_version": (r"Edge TPU Compiler version (\S+)", str),
    "compile_ms": (r"Models? compiled successfully in (\d+) ms\.", int),
    "input_model": (r"Input(?: model)?: (.+)", str),
    "output_model": (r"Output(?: model)?: (.+)", str),
    "input_size_bytes": (r"Input size: (\S+)", "size"),
    "output_size_bytes": (r"Output size: (\S+)", "size"),
    "on_chip_memory_used_bytes":
        (r"On-chip memory used for caching model parameters: (\S+)", "size"),
    "on_chip_memory_remaining_bytes":
        (r"On-chip memory remaining for caching model parameters: (\S+)", "size"),
    "off_chip_memory_used_bytes":
        (r"Off-chip memory used for streaming uncached model parameters: (\S+)", "size"),
    "edgetpu_subgraphs": (r"Number of Edge TPU subgraphs: (\d+)", int),
    "total_operations": (r"Total number of operations: (\d+)", int),
    "operation_log": (r"Operation log: (.+)", str),
    "edgetpu_operations": (r"Number of operations that will run on Edge TPU: (\d+)", int),
    "cpu_operations": (r"Number of operations that will run on CPU: (\d+)", int),
}
_HEADER = re.compile(r"Operator\s+Count\s+Status")
_ROW = re.compile(r"(\S+)\s+(\d+)\s+(\S.*)")


def _bytes(text: str) -> int:
    number, unit = re.fullmatch(r"([\d.]+)(B|KiB|MiB|GiB)", text).groups()
    return round(float(number) * _SIZE_UNITS[unit])


# Lines that belong to one compiled model (co-compilation and -n segments print one block each).
PER_MODEL = ("input_model", "output_model", "input_size_bytes", "output_size_bytes",
              "on_chip_memory_used_bytes", "on_chip_memory_remaining_bytes",
              "off_chip_memory_used_bytes", "edgetpu_subgraphs", "total_operations",
              "operation_log")
_ERRORS = re.compile(r"(ERROR: .*|Compilation failed: .*|Internal compiler error.*|"
                     r"Model could not be parsed|Invalid model: .*|libc\+\+abi: .*)")


def parse_compiler_log(text: str) -> dict:
    """Reads edgetpu_compiler's stdout and/or its operation log (*_edgetpu.log).

    Returns the figures printed (None where absent; sizes in bytes; for several models, the
    first one's), `models`: one dict of those figures per compiled model (co-compilation, or the
    segments of -n), `compiled` (True, False or None when the text does not say), `errors` (the
    compiler's error lines), `search_step` and `attempts` (-d: the ops of each segment tried),
    `operators` as {operator, count, status} rows in the order printed, and `table`:
    "complete", "unmapped-only" (compiler 16 lists only the unmapped ops on stdout, then "...
    All other operators were mapped successfully") or "absent". An operation log alone prints
    no counts; they are then summed from its table.
    """
    parsed: dict = dict.fromkeys(_LINES)
    parsed.update(compiled=None, not_all_supported=False, table="absent", operators=[],
                  models=[], errors=[], search_step=None, attempts=[])
    table = None  # None, "header" (blank lines may follow it) or "rows" (a blank line ends them)
    for line in (raw.strip() for raw in text.splitlines()):
        if _HEADER.fullmatch(line):
            table, parsed["table"] = "header", "complete"
            continue
        if table:
            row = _ROW.fullmatch(line)
            if row:
                parsed["operators"].append(
                    {"operator": row[1], "count": int(row[2]), "status": row[3].strip()})
                table = "rows"
                continue
            if line.startswith("... All other operators were mapped"):
                parsed["table"] = "unmapped-only"
                continue
            if not line and table == "header":
                continue
            table = None
        _read_line(line, parsed)
    if parsed["table"] == "complete" and parsed["edgetpu_operations"] is None:
        mapped = sum(r["count"] for r in parsed["operators"] if r["status"] == MAPPED)
        parsed["edgetpu_operations"] = mapped
        parsed["cpu_operations"] = sum(r["count"] for r in parsed["operators"]) - mapped
    return parsed


def _read_line(line: str, parsed: dict) -> None:
    if line.startswith("Model successfully compiled but not all operations are supported"):
        parsed["not_all_supported"] = True
    elif line.startswith("Compilation failed"):
        parsed["compiled"] = False
    elif line == "Compilation succeeded!" or re.match(r"Models? compiled successfully", line):
        parsed["compiled"] = parsed["compiled"] is not False
    elif line == "Model could not be parsed":
        parsed["compiled"] = False
    if _ERRORS.fullmatch(line):
        parsed["errors"].append(line)
    if match := re.fullmatch(r"Searching for valid delegate with step (\d+)", line):
        parsed["search_step"] = int(match[1])
    if match := re.fullmatch(r"Try to compile segment with (\d+) ops", line):
        parsed["attempts"].append(int(match[1]))
    for key, (pattern, kind) in _LINES.items():
        match = re.fullmatch(pattern, line)
        if not match:
            continue
        value = _bytes(match[1]) if kind == "size" else kind(match[1])
        if key == "input_model":  # a new model's block
            parsed["models"].append({})
        if key in PER_MODEL and parsed["models"]:
            parsed["models"][-1][key] = value
        if parsed[key] is None:  # co-compiled models: the first model's figures
            parsed[key] = value
