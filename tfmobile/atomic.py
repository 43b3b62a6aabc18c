"""Writing files whole or not at all: a temporary name in the same directory, then a rename."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import tempfile


@contextlib.contextmanager
def replacing(path: str | os.PathLike):
    """Yields a temporary path beside `path`; renames it over `path` if the block succeeds."""
    path = pathlib.Path(path)
    # Keep the suffixes: some writers (Keras's save_weights) insist on ".weights.h5".
    suffixes = "".join(path.suffixes)
    stem = path.name[: -len(suffixes)] if suffixes else path.name
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".part{suffixes}", dir=path.parent)
    os.close(fd)
    try:
        yield pathlib.Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_bytes(path, data: bytes) -> None:
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_json(path, obj) -> None:
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")
