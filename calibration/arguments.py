"""The argparse pieces the calibration set builders' commands share: one-line errors with exit
status 2 (argparse prints its usage first), and whole-number arguments with a minimum."""

from __future__ import annotations

import argparse
import sys


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit status 2 (argparse prints its usage first)
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)

    def cannot_write(self, err: OSError, out_dir) -> None:
        """One line naming what could not be written, and exit status 1 (the machine's fault)."""
        print(f"{self.prog}: error: cannot write {err.filename or out_dir}: "
              f"{err.strerror or err}", file=sys.stderr)
        sys.exit(1)


def whole_number(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse
