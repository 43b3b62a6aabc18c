"""Writing files whole or not at all: a temporary name in the same directory, then a rename."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import tempfile
from collections.abc import Mapping


@contextlib.contextmanager
def replacing(path: str | os.PathLike):
    """Yields a temporary path beside `path`; renames it over `path` if the block succeeds."""
    path = pathlib.Path(path)
    tmp = _temporary(path)
    try:
        yield tmp
        _give_usual_permissions(tmp)
        _rename(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _temporary(path: pathlib.Path, kind: str = "part") -> pathlib.Path:
    """A new empty file beside `path`, hidden, that keeps its last suffix: some writers (Keras's
    save_weights) insist on ".weights.h5"."""
    suffix = ".weights.h5" if path.name.endswith(".weights.h5") else path.suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:-len(suffix) or None]}.",
                               suffix=f".{kind}{suffix}", dir=path.parent)
    os.close(fd)
    return pathlib.Path(tmp)


def _rename(tmp: pathlib.Path, final: pathlib.Path) -> None:
    """os.replace, its error naming the file asked for rather than the temporary one (a
    directory where the file goes: "x.weights.h5: Is a directory")."""
    try:
        os.replace(tmp, final)
    except OSError as err:
        raise OSError(err.errno, err.strerror, os.fspath(final)) from None


def _give_usual_permissions(path: pathlib.Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)  # mkstemp makes 0600


def write_together(contents: Mapping[str | os.PathLike, bytes]) -> None:
    """Writes several files as one result (a model and its report): all of them or none.

    Every file is written under a temporary name first, which is where a full disk or a
    refused write shows; only then are they renamed into place. Should a rename fail, the files
    already renamed are put back as they were, so old files never sit beside new ones.
    """
    staged: list[tuple[pathlib.Path, pathlib.Path]] = []  # (temporary, final)
    backups: dict[pathlib.Path, pathlib.Path] = {}
    try:
        for path, data in contents.items():
            final = pathlib.Path(path)
            staged.append((_temporary(final), final))
            staged[-1][0].write_bytes(data)
        for _, final in staged:
            if final.exists():
                backups[final] = _temporary(final, "old")
                os.unlink(backups[final])
                os.link(final, backups[final])  # the old file, under a second name
        renamed = []
        try:
            for tmp, final in staged:
                _give_usual_permissions(tmp)
                _rename(tmp, final)
                renamed.append(final)
        except OSError:
            for final in renamed:
                if final in backups:
                    os.replace(backups[final], final)
                else:
                    final.unlink()
            raise
    finally:
        for tmp in [tmp for tmp, _ in staged] + list(backups.values()):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def write_bytes(path, data: bytes) -> None:
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def json_bytes(obj) -> bytes:
    """Standard JSON (no NaN or Infinity, which other readers refuse), indented, UTF-8."""
    return (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode()


def write_json(path, obj) -> None:
    write_bytes(path, json_bytes(obj))
