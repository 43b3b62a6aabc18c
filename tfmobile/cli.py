"""What every tfmobile command shares: quiet TensorFlow, one-line usage errors (exit 2), and the
model-selection flags."""

from __future__ import annotations

import contextlib
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


_command = {"program": None, "module": None, "doc": None}


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
    """The command's docstring, then its flags (those defined here and in the command)."""
    if full:
        print(flags.FLAGS.get_help())
        sys.exit(0)
    doc = _command["doc"] or sys.modules["__main__"].__doc__ or ""
    print(doc.strip() + "\n\nflags:")
    main_modules = _command["module"] or (sys.argv[0],)
    for module in (*main_modules, __name__):
        for flag in sorted(flags.FLAGS.get_flags_for_module(module), key=lambda f: f.name):
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
        return flags.FLAGS(argv)
    except flags.Error as err:
        fail_usage(f"{err} (see --help)")


def run(main, *, program: str | None = None, flags_modules: tuple[str, ...] | None = None,
        doc: str | None = None) -> None:
    """absl's app.run, with flag errors and UsageError as one line and exit status 2.

    A subcommand (`python -m android_bench run`) names itself (`program`), the modules that
    define its flags and its help text (`doc`).
    """
    _command.update(program=program, module=flags_modules, doc=doc)

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

    app.run(guarded, flags_parser=_parse_flags)


def define_model_flags(required: bool = True) -> None:
    flags.DEFINE_string("model", None, "Zoo network to build, e.g. mobilenet_v2, fd_mobilenet "
                        "(an unknown name lists them all).")
    flags.DEFINE_float("alpha", 1.0, "Width multiplier: scales every layer's channels "
                       "(ShuffleNet V2 comes in 0.5, 1, 1.5 and 2).")
    flags.DEFINE_integer("input_size", 224, "Side of the square RGB input, at least 32.")
    flags.DEFINE_integer("num_classes", 1000, "Classifier width.")
    flags.DEFINE_integer("groups", None, "ShuffleNet V1 only: groups of its 1x1 convolutions "
                         "(1, 2, 3, 4 or 8; default 3).")
    flags.DEFINE_boolean("minimalistic", False, "MobileNet V3 only: the variant without SE, "
                         "hard-swish or 5x5 kernels (suits GPUs, DSPs and Edge TPUs).")
    flags.DEFINE_boolean("split_groups", False, "ShuffleNet V1 only: each grouped conv as SPLIT, "
                         "one conv per group and CONCATENATION; same function and weights, in "
                         "ops the Edge TPU compiler maps.")
    if required:
        flags.mark_flag_as_required("model")


def model_args(FLAGS) -> dict:
    """The flags as keyword arguments of tfmobile.models.build (variants only when given)."""
    args = dict(
        alpha=FLAGS.alpha, input_size=FLAGS.input_size, num_classes=FLAGS.num_classes
    )
    if FLAGS.groups is not None:
        args["groups"] = FLAGS.groups
    for variant in ("minimalistic", "split_groups"):
        if FLAGS[variant].value:
            args[variant] = True
    return args


def build_model(name: str, **kwargs):
    """tfmobile.models.build with its argument errors turned into usage errors."""
    from tfmobile import models

    try:
        return models.build(name, **kwargs)
    except (ValueError, OSError) as err:  # bad arguments, or a weights file that will not load
        raise UsageError(str(err).strip().splitlines()[0]) from None
    except RuntimeError as err:  # published weights that cannot be downloaded here
        raise Failure(str(err)) from None
