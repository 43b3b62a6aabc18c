"""edgetpu_compiler's command-line options, as a user passes them through.

  edgetpu_compiler [options] model...      (https://coral.ai/docs/edgetpu/compiler/)

Every option of compiler 16.0 is accepted and handed to the compiler unchanged; the ones that
change where ops run are read so that the offline analysis (converters.edgetpu) follows them:

  -m, --min_runtime_version N   rows of the supported-operations table apply from a runtime
  -a, --enable_multiple_subgraphs   (experimental) ops after an unsupported one map again, in
                                  further Edge TPU subgraphs
  -i, --intermediate_tensors A,B  "All operators following these tensors will not be compiled
                                  for the Edge TPU"
  -n, --num_segments N            the model is cut into N segments, one compiled model each
  -d, --search_delegate           on a failed compile, retry with an earlier stopping point
  -k, --delegate_search_step N    how many ops each retry steps back (-d)

and -s (--show_operations), -t (--timeout_sec), -o (--out_dir), -v (--version), -h (--help).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex

LATEST_RUNTIME = 14  # compiler 16.0's default -m (google-coral/edgetpu#439: "Default was 14")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ValueError(message)


def _parser() -> _Parser:
    parser = _Parser(prog="edgetpu_compiler", add_help=False, allow_abbrev=False)
    parser.add_argument("-m", "--min_runtime_version", type=int, default=None)
    parser.add_argument("-a", "--enable_multiple_subgraphs", action="store_true")
    parser.add_argument("-i", "--intermediate_tensors", default="")
    parser.add_argument("-n", "--num_segments", type=int, default=1)
    parser.add_argument("-d", "--search_delegate", action="store_true")
    parser.add_argument("-k", "--delegate_search_step", type=int, default=1)
    parser.add_argument("-s", "--show_operations", action="store_true")
    parser.add_argument("-t", "--timeout_sec", type=int, default=180)
    parser.add_argument("-o", "--out_dir", default=None)
    parser.add_argument("-v", "--version", action="store_true")
    parser.add_argument("-h", "--help", action="store_true")
    return parser


@dataclasses.dataclass(frozen=True)
class CompilerFlags:
    """The options of one edgetpu_compiler call; `args` is what the user wrote, passed on as is."""

    args: tuple[str, ...] = ()
    min_runtime_version: int = LATEST_RUNTIME
    multiple_subgraphs: bool = False
    intermediate_tensors: tuple[str, ...] = ()
    num_segments: int = 1
    search_delegate: bool = False
    delegate_search_step: int = 1
    out_dir: str | None = None

    @classmethod
    def parse(cls, args: str | list[str] | tuple[str, ...]) -> CompilerFlags:
        """Options as a string ("-d -k 10") or a list. ValueError, in one line, for an option the
        compiler does not have, a missing or malformed value, or a model path among them."""
        words = shlex.split(args) if isinstance(args, str) else list(args)
        try:
            parsed, rest = _parser().parse_known_args(words)
        except ValueError as err:
            raise ValueError(f"edgetpu_compiler options: {err}") from None
        if rest:
            raise ValueError(f"edgetpu_compiler has no option {rest[0]!r} (its options: -a -d -i "
                             "-k -m -n -o -s -t; see https://coral.ai/docs/edgetpu/compiler/)")
        if parsed.version or parsed.help:
            raise ValueError("-v/--version and -h/--help make edgetpu_compiler print and exit "
                             "without compiling; leave them out")
        for name in ("min_runtime_version", "num_segments", "delegate_search_step", "timeout_sec"):
            if getattr(parsed, name) is not None and getattr(parsed, name) < 1:
                raise ValueError(f"edgetpu_compiler --{name} must be a positive whole number")
        tensors = tuple(t.strip() for t in parsed.intermediate_tensors.split(",") if t.strip())
        runtime = LATEST_RUNTIME if parsed.min_runtime_version is None \
            else parsed.min_runtime_version
        return cls(tuple(words), runtime, parsed.enable_multiple_subgraphs,
                   tensors, parsed.num_segments, parsed.search_delegate,
                   parsed.delegate_search_step, parsed.out_dir)

    @classmethod
    def passed_through(cls, args: str | list[str], runtime: int | None = None) -> CompilerFlags:
        """Options a tfmobile command hands on to the compiler: as `parse`, without -o/--out_dir
        (the compiled models go beside the models given), and with `runtime`, where the command
        takes it as a flag of its own, written as the compiler's -m so that the compiler and the
        analysis target the same runtime."""
        chosen = cls.parse(args)
        if chosen.out_dir is not None:
            raise ValueError("drop -o/--out_dir: the compiled models go beside the models given")
        if runtime is None:
            return chosen
        if _parser().parse_known_args(list(chosen.args))[0].min_runtime_version is not None:
            raise ValueError("-m and --runtime both set the Edge TPU runtime; give one")
        return cls.parse(chosen.args + ("-m", str(runtime)))

    def placement(self) -> dict:
        """The options the analysis follows that differ from the compiler's defaults."""
        chosen = {"min_runtime_version": self.min_runtime_version,
                  "multiple_subgraphs": self.multiple_subgraphs,
                  "intermediate_tensors": self.intermediate_tensors,
                  "num_segments": self.num_segments, "search_delegate": self.search_delegate}
        default = CompilerFlags()
        return {k: list(v) if isinstance(v, tuple) else v for k, v in chosen.items()
                if v != getattr(default, k)}
