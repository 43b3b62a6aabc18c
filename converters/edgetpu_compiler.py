"""The Edge TPU step of a conversion: the offline analysis and, where it is installed, Coral's
edgetpu_compiler, both recorded in the model's report.

edgetpu_compiler ships for x86-64 Debian and Ubuntu only, from Coral's apt repository. Where it
is missing the report keeps the offline prediction (converters.edgetpu) and says how to install
the compiler; where it runs, its log is parsed and held against the prediction, model by model
when several are co-compiled.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile

from converters import edgetpu, edgetpu_log, litert
from converters.edgetpu_flags import CompilerFlags

COMPILER = "edgetpu_compiler"
INSTALL = (
    "edgetpu_compiler is not on PATH. It runs on x86-64 Debian/Ubuntu: add Coral's apt "
    "repository (deb https://packages.cloud.google.com/apt coral-edgetpu-stable main) and "
    "apt-get install edgetpu-compiler; see https://coral.ai/docs/edgetpu/compiler/"
)
TIMEOUT_S = 600


def analysis_summary(analysis: edgetpu.Analysis) -> dict:
    """The analysis as a report keeps it: the verdict, the counts and compiler-style table, and
    the record of every op that would not run on the Edge TPU or may not (the mapped ones
    without risks add nothing)."""
    summary = analysis.to_json()
    summary["ops"] = [op for op in summary["ops"] if not op["mapped"] or op["risks"]]
    summary["fully_mapped"] = analysis.fully_mapped
    return summary


def compile_models(tflite_paths: list[pathlib.Path], flags: CompilerFlags | None = None,
                   compiler: str = COMPILER) -> dict:
    """One edgetpu_compiler call on `tflite_paths` (co-compiled when several: they share the
    Edge TPU's memory for parameters) with the user's `flags` passed through. What it writes
    (`<stem>_edgetpu.tflite` and `.log`, or `<stem>_segment_<i>_of_<n>_edgetpu.*` with -n)
    lands beside each model only when it succeeds: it writes into a temporary directory first.
    """
    flags = flags or CompilerFlags()
    executable = shutil.which(compiler)
    if executable is None:
        return {"ran": False, "reason": INSTALL}
    if flags.out_dir is not None:
        raise ValueError("the compiled models go beside the models given: drop -o/--out_dir")
    passed = list(flags.args)
    home = tflite_paths[0].parent
    with tempfile.TemporaryDirectory(prefix=".edgetpu-", dir=home) as scratch:
        command = [executable, "--show_operations", "--out_dir", scratch, *passed,
                   *map(str, tflite_paths)]
        try:
            run = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S,
                                 check=False)
        except subprocess.TimeoutExpired:
            return {"ran": True, "compiled": False,
                    "reason": f"{compiler} did not finish within {TIMEOUT_S} s"}
        parsed = edgetpu_log.parse_compiler_log(run.stdout)
        produced = sorted(pathlib.Path(scratch).iterdir())
        compiled = (run.returncode == 0 and parsed["compiled"] is not False
                    and any(p.suffix == ".tflite" for p in produced))
        result = {"ran": True, "compiled": compiled, "exit_code": run.returncode,
                  "version": parsed["compiler_version"], "arguments": list(passed),
                  "log": parsed, "models": _per_model(tflite_paths, produced)}
        if not compiled:
            lines = [line for line in (run.stderr + run.stdout).splitlines() if line.strip()]
            errors = parsed["errors"] or lines[-1:]
            result["reason"] = errors[0].strip() if errors else f"exit code {run.returncode}"
            result["models"] = []
            return result
        for path, model in zip(tflite_paths, result["models"], strict=True):
            for key in ("model", "log_file"):
                if key in model:
                    model[key] = _beside(path, model[key])
            for key in ("segments", "segment_logs"):
                if key in model:
                    model[key] = [_beside(path, name) for name in model[key]]
    first = result["models"][0] if result["models"] else {}
    result.update({k: first[k] for k in ("model", "log_file") if k in first})
    return result


def _beside(source: pathlib.Path, written: str) -> str:
    """Moves a file the compiler wrote for `source` next to it; a compiled model first gets
    the source's record back (carry_the_record_over)."""
    final = source.parent / pathlib.Path(written).name
    if final.suffix == ".tflite":
        carry_the_record_over(source, pathlib.Path(written))
    os.replace(written, final)
    return str(final)


def _per_model(tflite_paths: list[pathlib.Path], produced: list[pathlib.Path]) -> list[dict]:
    """For each input model, what the compiler wrote for it: the compiled model and its
    operation log (read), or with -n its segments."""
    models = []
    for path in tflite_paths:
        stem = path.stem
        entry: dict = {"input": str(path)}
        model, log = f"{stem}_edgetpu.tflite", f"{stem}_edgetpu.log"
        names = {p.name: p for p in produced}
        segments = sorted(p for p in produced if p.name.startswith(f"{stem}_segment_")
                          and p.name.endswith("_edgetpu.tflite"))
        if model in names:
            entry["model"] = str(names[model])
        if segments:
            entry["segments"] = [str(p) for p in segments]
            entry["segment_logs"] = [str(p.with_suffix(".log")) for p in segments
                                     if p.with_suffix(".log").exists()]
        if log in names:
            entry["log_file"] = str(names[log])
            operation_log = edgetpu_log.parse_compiler_log(names[log].read_text(errors="replace"))
            entry.update(table=operation_log["table"], operators=operation_log["operators"],
                         edgetpu_operations=operation_log["edgetpu_operations"],
                         cpu_operations=operation_log["cpu_operations"])
        models.append(entry)
    return models


def carry_the_record_over(source: pathlib.Path, compiled: pathlib.Path) -> None:
    """edgetpu_compiler drops a model's metadata (ultralytics/yolov5#9903): the ArtifactId the
    converter embedded is copied into the compiled model, which then says what it is too."""
    from tfmobile_core.records import METADATA_NAME

    stored = litert.read_metadata(source.read_bytes(), METADATA_NAME)
    if stored is not None:
        compiled.write_bytes(litert.with_metadata(compiled.read_bytes(), METADATA_NAME, stored))


def model_log(result: dict, index: int = 0) -> dict | None:
    """The compiler's figures for one of the models it was given: its own stdout block, with
    its operation log's table where one was written."""
    if not result.get("log"):
        return None
    log = dict(result["log"])
    # Whether it compiled is the run's outcome (exit code, outputs written), not only what its
    # stdout says: a compiler that fails without printing "Compilation failed" did not compile.
    log["compiled"] = result["compiled"]
    blocks = log.get("models") or []
    if index < len(blocks):
        log.update(blocks[index])
    elif index:
        log.update(dict.fromkeys(edgetpu_log.PER_MODEL))
    models = result.get("models") or []
    mine = models[index] if index < len(models) else {}
    if mine.get("table") == "complete":
        log.update(table="complete", operators=mine["operators"],
                   edgetpu_operations=mine["edgetpu_operations"],
                   cpu_operations=mine["cpu_operations"])
    elif index:  # stdout's table and counts are the first model's
        log.update(table="absent", operators=[], edgetpu_operations=None, cpu_operations=None)
    return log


def edgetpu_report(tflite_path: pathlib.Path, content: bytes, flags: CompilerFlags | None = None,
                   compiler: str = COMPILER) -> dict:
    """The report's `edgetpu` section: the offline analysis under the compiler options the
    user passed, the compiler's outcome and where the two disagree."""
    flags = flags or CompilerFlags()
    analysis = edgetpu.analyze(content, flags=flags)
    compiled = compile_models([tflite_path], flags, compiler)
    log = model_log(compiled)
    return {"analysis": analysis_summary(analysis), "compiler": compiled,
            "analysis_vs_compiler": edgetpu.compare(analysis, log) if log else None}
