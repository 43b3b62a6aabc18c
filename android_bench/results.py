"""The results store: one JSON line per benchmark cell (a BenchmarkRecord), raw tool output kept
beside it.

JSON Lines because a record is appended and flushed the moment its cell finishes: a run that
is interrupted, or whose device disappears, keeps everything measured so far, and `--resume`
reads back which cells are done. A line torn by a kill (an interrupted write) is ended before
the next record is appended, so it never swallows it, and it is skipped, and counted, on
reading. Any other damage (a line that is JSON but not a record, a newer schema) is an error
that names the line: the store is never read as something it does not say.
"""

from __future__ import annotations

import json
import os
import pathlib
import threading

from tfmobile_core import atomic
from tfmobile_core.records import BenchmarkRecord, RecordError, parse_json


class StoreError(ValueError):
    """The store cannot be read; the message names the file and line, one line."""


class Store:
    def __init__(self, path: str | os.PathLike):
        self.path = pathlib.Path(path)
        self.raw_dir = self.path.parent / (self.path.stem + "_raw")
        self.torn_lines = 0  # lines an interrupted write left incomplete (set by records())
        self._lock = threading.Lock()

    def check_writable(self) -> None:
        """Raises OSError now rather than after an hour of benchmarks."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a"):
            pass
        if self.raw_dir.exists() and not self.raw_dir.is_dir():  # each cell's output goes there
            raise NotADirectoryError(20, f"{self.raw_dir} is a file, not the directory for "
                                     "each cell's raw output; move it", os.fspath(self.raw_dir))

    def save_raw(self, key: str, text: str) -> str:
        """Keeps a cell's raw output; returns its path relative to the store."""
        self.raw_dir.mkdir(parents=True, exist_ok=True)
        path = self.raw_dir / f"{key}.txt"
        atomic.write_bytes(path, text.encode())
        return os.path.relpath(path, self.path.parent)

    def append(self, record: BenchmarkRecord) -> None:
        line = json.dumps(record.to_json(), sort_keys=True, allow_nan=False) + "\n"
        with self._lock, open(self.path, "a+b") as f:
            f.seek(0, os.SEEK_END)
            if f.tell():
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":  # a line torn by a kill: end it, keep it apart
                    f.write(b"\n")
            f.write(line.encode())
            f.flush()
            os.fsync(f.fileno())

    def records(self) -> list[BenchmarkRecord]:
        """Every record, in the order written. StoreError for a damaged store."""
        if not self.path.exists():
            return []
        try:
            text = self.path.read_bytes().decode("utf-8", errors="replace")
        except OSError as err:
            raise StoreError(f"cannot read the results store {self.path}: {err.strerror}") \
                from None
        found, self.torn_lines = [], 0
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                data = parse_json(line)
            except ValueError:
                if not line.startswith("{"):  # what a kill tears is the start of a record
                    raise StoreError(f"{self.path} line {number} is not a benchmark record (one "
                                     "JSON object a line): is it a results store?") from None
                self.torn_lines += 1  # an interrupted write: it never held a whole record
                continue
            try:
                found.append(BenchmarkRecord.from_json(data))
            except RecordError as err:
                raise StoreError(f"{self.path} line {number}: {err}") from None
        return found

    def done_rounds(self, rounds: int) -> tuple[dict[str, tuple[str | None, set[int]]],
                                                str | None]:
        """For --resume: per cell key, the newest run of `rounds` rounds that measured it and
        which of its rounds succeeded; and the newest such run (the one a resume continues)."""
        done: dict[str, tuple[str | None, set[int]]] = {}
        last_run = None
        for record in self.records():
            if record.status != "ok":
                continue
            run_id, this_round, of = ((record.run.id, record.run.round, record.run.rounds)
                                      if record.run else (None, 1, 1))
            if of != rounds:
                continue
            kept_id, finished = done.get(record.key, (run_id, set()))
            if kept_id != run_id:  # a newer run of this cell
                finished = set()
            done[record.key] = (run_id, finished | {this_round})
            last_run = run_id
        return done, last_run

    def torn_note(self) -> str:
        """'; 1 incomplete line (an interrupted write) ignored', after records()."""
        if not self.torn_lines:
            return ""
        plural = "s" if self.torn_lines > 1 else ""
        return f"; {self.torn_lines} incomplete line{plural} (an interrupted write) ignored"
