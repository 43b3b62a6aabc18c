"""Stand-ins for hardware the test suite does not have, driven through the real client tools."""

import pathlib
import shlex
import sys

HERE = pathlib.Path(__file__).resolve().parent


def launchers(directory: pathlib.Path) -> pathlib.Path:
    """`directory/benchmark_model` and `directory/edgetpu_compiler`: executables that run the
    stand-in scripts under this test run's interpreter (the one with LiteRT), so that no
    stand-in depends on which python3 PATH holds. Returns `directory`, to put on PATH."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("benchmark_model", "edgetpu_compiler"):
        launcher = directory / name
        launcher.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} "
                            f"{shlex.quote(str(HERE / name))} \"$@\"\n")
        launcher.chmod(0o755)
    return directory
