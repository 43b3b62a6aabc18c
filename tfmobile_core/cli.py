"""How every command behaves: one-line errors (exit status 2 for usage errors, 1 for failures),
--help that explains, native output (TensorFlow's C++ logging, the converter's) hidden unless
asked for, and progress bars only on a terminal."""

from __future__ import annotations

import contextlib
import math
import os
import sys

from absl import app, flags

USAGE_EXIT = 2


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""


class Failure(Exception):
    """The environment let the command down (a download, a device): one line, exit status 1."""


@contextlib.contextmanager
def silenced_stderr(enabled: bool = True):
    """Points file descriptor 2 at /dev/null: TensorFlow's C++ code logs there directly (TF 2.21
    prints its start-up lines before TF_CPP_MIN_LOG_LEVEL is read)."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def native_output_silenced(enabled: bool = True):
    """Silences what native code prints on file descriptors 1 and 2 (the converter logs there
    directly) and yields a stream to the real stderr, for progress bars."""
    console = os.fdopen(os.dup(2), "w", buffering=1)
    if not enabled:
        try:
            yield console
        finally:
            console.close()
        return
    sys.stdout.flush()
    saved_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        with silenced_stderr():
            os.dup2(devnull, 1)
            yield console
    finally:
        sys.stdout.flush()
        os.dup2(saved_out, 1)
        os.close(saved_out)
        os.close(devnull)
        console.close()


def describe_os_error(err: OSError) -> str:
    """'cannot write artifacts/x.tflite: No space left on device', in one line."""
    where = f"{err.filename}: " if err.filename else ""
    return f"{where}{err.strerror or err}"


def interactive() -> bool:
    """Whether progress should be drawn: a terminal, or forced by TFMOBILE_PROGRESS=1."""
    return sys.stderr.isatty() or os.environ.get("TFMOBILE_PROGRESS") == "1"


def progress_bar(stream):
    """A progress(iterable, total, desc) function drawing tqdm bars on `stream`; silent when
    the stream is not a terminal and not forced by TFMOBILE_PROGRESS=1 (CI logs stay short)."""
    from tqdm import tqdm

    show = stream.isatty() or os.environ.get("TFMOBILE_PROGRESS") == "1"

    def wrap(iterable, total, desc):
        return tqdm(iterable, total=total, desc=desc, file=stream, disable=not show,
                    leave=False, unit="img")

    return wrap


def quiet_tensorflow(verbose: bool = False) -> None:
    """Imports TensorFlow with its logging hidden unless verbose."""
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import logging
        import warnings

        warnings.filterwarnings("ignore")
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
    with silenced_stderr(not verbose):
        import keras  # noqa: F401  (imports TensorFlow)
        import tensorflow  # noqa: F401


_command = {"program": None, "doc": None}


def _program() -> str:
    """`python -m tfmobile.summary` reports as tfmobile.summary, a script by its file name."""
    if _command["program"]:
        return _command["program"]
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec.name if spec else os.path.basename(sys.argv[0])


def fail_usage(message: str) -> None:
    print(f"{_program()}: error: {message}", file=sys.stderr)
    sys.exit(USAGE_EXIT)


def _print_help(full: bool) -> None:
    """The command's docstring, then its own flags (every flag but absl's)."""
    if full:
        print(flags.FLAGS.get_help())
        sys.exit(0)
    doc = _command["doc"] or sys.modules["__main__"].__doc__ or ""
    print(doc.strip() + "\n\nflags:")
    ours = [flag for module, defined in flags.FLAGS.flags_by_module_dict().items()
            if not module.startswith("absl.") for flag in defined]  # absl's own: --helpfull
    for flag in sorted({flag.name: flag for flag in ours}.values(), key=lambda f: f.name):
        name = f"--[no]{flag.name}" if flag.boolean else f"--{flag.name}"
        default = "" if flag.default is None or flag.boolean else f" (default: {flag.default})"
        print(f"  {name}: {flag.help}{default}")
    print("  --helpfull: every flag, absl's included")
    sys.exit(0)


def _parse_flags(argv):
    """flags.FLAGS(argv), with --help exiting 0 (absl's exits 1) and errors as one line."""
    if any(a in ("-h", "-?", "--help", "--helpshort") for a in argv[1:]):
        _print_help(full=False)
    if "--helpfull" in argv[1:]:
        _print_help(full=True)
    try:
        rest = flags.FLAGS(argv)
    except flags.Error as err:
        fail_usage(f"{err} (see --help)")
    for name in flags.FLAGS:  # absl's bounds let nan through (nan < 0 is false), and inf
        value = flags.FLAGS[name].value
        if isinstance(value, float) and not math.isfinite(value):
            fail_usage(f"--{name} must be a finite number, got {value} (see --help)")
    return rest


def run(main, *, program: str | None = None, doc: str | None = None) -> None:
    """absl's app.run, with flag errors and UsageError as one line and exit status 2.

    A subcommand (`python -m android_bench run`) names itself (`program`) and gives its help
    text (`doc`).
    """
    _command.update(program=program, doc=doc)

    def guarded(argv):
        if len(argv) > 1:
            fail_usage(f"unexpected argument {argv[1]!r}; every option is a --flag (see --help)")
        try:
            return main(argv)
        except UsageError as err:
            fail_usage(str(err))
        except Failure as err:
            print(f"{_program()}: error: {err}", file=sys.stderr)
            sys.exit(1)
        except OSError as err:  # the machine refused: a full disk, a write denied, a file gone
            print(f"{_program()}: error: {describe_os_error(err)}", file=sys.stderr)
            sys.exit(1)

    app.run(guarded, flags_parser=_parse_flags)
