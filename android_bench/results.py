"""The results store: one JSON line per benchmark cell, raw tool output kept beside it.

JSON Lines because a record is appended and flushed the moment its cell finishes: a run that
is interrupted, or whose device disappears, keeps everything measured so far, and `--resume`
reads back which cells are done. A torn last line (power cut mid-write) is skipped on reading.
"""

from __future__ import annotations

import json
import os
import pathlib
import threading

from tfmobile import atomic


class Store:
    def __init__(self, path: str | os.PathLike):
        self.path = pathlib.Path(path)
        self.raw_dir = self.path.parent / (self.path.stem + "_raw")
        self._lock = threading.Lock()

    def check_writable(self) -> None:
        """Raises OSError now rather than after an hour of benchmarks."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a"):
            pass

    def save_raw(self, key: str, text: str) -> str:
        """Keeps a cell's raw output; returns its path relative to the store."""
        self.raw_dir.mkdir(parents=True, exist_ok=True)
        path = self.raw_dir / f"{key}.txt"
        atomic.write_bytes(path, text.encode())
        return os.path.relpath(path, self.path.parent)

    def append(self, record: dict) -> None:
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._lock, open(self.path, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        found = []
        for line in self.path.read_text().splitlines():
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn line from an interrupted write
        return found

    def done_keys(self) -> set[str]:
        return {r["key"] for r in self.records() if r.get("status") == "ok"}
