"""The command line of converters.edgetpu: `analyze` one model, `compile` one or several
(co-compiled) with edgetpu_compiler and hold each against its analysis. The module's own doc
(converters/edgetpu.py) is the command's help."""

from __future__ import annotations

import os
import pathlib
import sys

from converters import edgetpu
from converters.edgetpu_flags import CompilerFlags


def read_model_file(path: str) -> bytes:
    """A .tflite file's bytes; ValueError with one line for a missing or foreign file."""
    try:
        with open(path, "rb") as f:
            content = f.read()
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except OSError as err:
        raise ValueError(f"{path}: {err.strerror}") from None
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise ValueError(f"{path} is not a .tflite model (no TFL3 file identifier)")
    return content


def _flags_from_command_line():
    from absl import flags

    from tfmobile_core import cli

    FLAGS = flags.FLAGS
    try:
        return CompilerFlags.passed_through(
            FLAGS.compiler_flags, FLAGS.runtime if FLAGS["runtime"].present else None)
    except ValueError as err:
        raise cli.UsageError(f"--compiler_flags: {err}") from None


def _read_models(paths: list[str]) -> list[bytes]:
    from tfmobile_core import cli

    contents = []
    for path in paths:
        try:
            contents.append(read_model_file(path))
        except ValueError as err:
            raise cli.UsageError(str(err)) from None
    return contents


def _analyze_or_fail(path: str, content: bytes, flags: CompilerFlags) -> edgetpu.Analysis:
    from tfmobile_core import cli

    try:
        return edgetpu.analyze(content, flags=flags)
    except Exception as err:  # noqa: BLE001 - a damaged flatbuffer fails anywhere in its reader
        raise cli.UsageError(f"{path} cannot be read as a .tflite model "
                             f"({type(err).__name__})") from None


def main(argv) -> int:
    from absl import flags

    from tfmobile_core import atomic, cli

    del argv
    FLAGS = flags.FLAGS
    command = FLAGS.command
    models = [m for m in FLAGS.model if m]
    if not models:
        raise cli.UsageError(f"name the model: python -m converters.edgetpu {command} MODEL.tflite")
    if command == "analyze" and len(models) > 1:
        raise cli.UsageError("analyze takes one model; co-compile several with 'compile'")
    if FLAGS.json:
        for model in models:
            if os.path.exists(FLAGS.json) and os.path.exists(model) \
                    and os.path.samefile(FLAGS.json, model):
                raise cli.UsageError(f"--json {FLAGS.json} is the model itself: writing there "
                                     "would replace the model; name another file")
    compiler_flags = _flags_from_command_line()
    contents = _read_models(models)
    analyses = [_analyze_or_fail(m, c, compiler_flags) for m, c in zip(models, contents, strict=True)]
    for model, analysis in zip(models, analyses, strict=True):
        print(edgetpu.format_summary(analysis, os.path.basename(model)))
    written = [{"model": m, **a.to_json()} for m, a in zip(models, analyses, strict=True)]
    status = 0
    if command == "compile":
        from converters import edgetpu_compiler

        result = edgetpu_compiler.compile_models([pathlib.Path(m) for m in models], compiler_flags)
        print()
        print(_compiler_summary(result, models, analyses))
        for index, entry in enumerate(written):
            log = edgetpu_compiler.model_log(result, index)
            entry["compiler"] = {k: v for k, v in result.items() if k not in ("log", "models")}
            entry["compiler"]["log"] = log
            entry["analysis_vs_compiler"] = edgetpu.compare(analyses[index], log) if log else None
        status = 0 if result.get("compiled") else 1
    if FLAGS.json:
        try:
            atomic.write_json(FLAGS.json, written[0] if command == "analyze" else written)
        except OSError as err:
            raise cli.UsageError(f"cannot write {FLAGS.json}: {err.strerror}") from None
    return status


def _compiler_summary(result: dict, models: list[str], analyses: list[edgetpu.Analysis]) -> str:
    """What edgetpu_compiler made of each model, and where it differs from the analysis."""
    from converters import edgetpu_compiler

    if not result["ran"]:
        return f"edgetpu_compiler: not run: {result['reason']}"
    if not result["compiled"]:
        version = f" {result['version']}" if result.get("version") else ""
        return f"edgetpu_compiler{version}: FAILED: {result['reason']}"
    lines = [f"edgetpu_compiler {result['version']}: compiled"
             + (" together (co-compiled: they share the Edge TPU's parameter memory)"
                if len(models) > 1 else "")]
    for index, (model, analysis) in enumerate(zip(models, analyses, strict=True)):
        log = edgetpu_compiler.model_log(result, index)
        made = result["models"][index]
        outputs = made.get("segments") or [made.get("model")]
        memory = [f"{label} {_size(log.get(key))}" for label, key in (
            ("on-chip parameters", "on_chip_memory_used_bytes"),
            ("off-chip (streamed) parameters", "off_chip_memory_used_bytes")) if log.get(key) is not None]
        differs = edgetpu.compare(analysis, log)
        lines.append(
            f"  {os.path.basename(model)} -> {', '.join(map(str, outputs))}: "
            + (f"{log['edgetpu_operations']} ops on the Edge TPU, {log['cpu_operations']} on the "
               "CPU" if log.get("edgetpu_operations") is not None else "counts not printed")
            + (f"; {', '.join(memory)}" if memory else "")
            + ("; agrees with the analysis" if not differs else
               "; DIFFERS from the analysis: " + "; ".join(
                   f"{d['what']}: analysis {d['analysis']}, compiler {d['log']}" for d in differs)))
    return "\n".join(lines)


def _size(count: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.2f} {unit}"
    return f"{count} B"


def command_line() -> None:
    """`analyze MODEL` / `compile MODEL...` as tfmobile's commands take them."""
    from absl import flags

    from tfmobile_core import cli

    program = "converters.edgetpu"
    commands = ("analyze", "compile")
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help", "help"):
        print(edgetpu.__doc__.strip())
        sys.exit(0 if len(sys.argv) >= 2 else cli.USAGE_EXIT)
    if sys.argv[1] not in commands:
        print(f"{program}: error: unknown command {sys.argv[1]!r}; the commands are 'analyze' "
              "and 'compile'", file=sys.stderr)
        sys.exit(cli.USAGE_EXIT)
    command = sys.argv[1]
    flags.DEFINE_string("command", command, "(set by the command word)")
    flags.DEFINE_multi_string("model", [], "The .tflite to analyse (or give it, or several for "
                              "'compile', right after the command).")
    flags.DEFINE_string("json", None, "Also write the analysis (and with 'compile' the "
                        "compiler's outcome) to this JSON file.")
    flags.DEFINE_string("compiler_flags", "", "edgetpu_compiler options, as you would give them "
                        "to it (e.g. \"-a\", \"-d -k 10\", \"-m 13\", \"-n 2\", \"-i T1,T2\"): "
                        "'compile' passes them on; the analysis follows those that change where "
                        "ops run.")
    flags.DEFINE_integer("runtime", edgetpu.LATEST_RUNTIME, "Edge TPU runtime version to target (the "
                         "compiler's -m): rows of the supported-operations table apply from a "
                         "version.", lower_bound=10, upper_bound=edgetpu.LATEST_RUNTIME)
    rest = sys.argv[2:]
    positional = []
    while rest and not rest[0].startswith("-"):
        positional.append(rest.pop(0))
    sys.argv = [f"{program} {command}", *(f"--model={m}" for m in positional), *rest]
    cli.run(main, program=f"{program} {command}", doc=edgetpu.__doc__)
