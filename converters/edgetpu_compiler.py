"""The Edge TPU step of a conversion: the offline analysis and, where it is installed, Coral's
edgetpu_compiler, both recorded in the model's report.

edgetpu_compiler ships for x86-64 Debian and Ubuntu only, from Coral's apt repository. Where it
is missing the report keeps the offline prediction (converters.edgetpu) and says how to install
the compiler; where it runs, its log is parsed and held against the prediction.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile

from converters import edgetpu, litert

COMPILER = "edgetpu_compiler"
INSTALL = (
    "edgetpu_compiler is not on PATH. It runs on x86-64 Debian/Ubuntu: add Coral's apt "
    "repository (deb https://packages.cloud.google.com/apt coral-edgetpu-stable main) and "
    "apt-get install edgetpu-compiler; see https://coral.ai/docs/edgetpu/compiler/"
)
TIMEOUT_S = 600


def analysis_summary(analysis: edgetpu.Analysis) -> dict:
    """The analysis as a report keeps it: the counts and compiler-style table, and the record
    of every op that would not run on the Edge TPU (the mapped ones add nothing)."""
    summary = analysis.to_json()
    summary["ops"] = [op for op in summary["ops"] if not op["mapped"]]
    summary["fully_mapped"] = analysis.fully_mapped
    return summary


def compile_model(tflite_path: pathlib.Path, compiler: str = COMPILER) -> dict:
    """Runs edgetpu_compiler on `tflite_path`. Its `<stem>_edgetpu.tflite` and `.log` land
    beside the model only when it succeeds (it writes into a temporary directory first)."""
    executable = shutil.which(compiler)
    if executable is None:
        return {"ran": False, "reason": INSTALL}
    stem = tflite_path.stem
    with tempfile.TemporaryDirectory(prefix=".edgetpu-", dir=tflite_path.parent) as scratch:
        try:
            run = subprocess.run(
                [executable, "--show_operations", "--out_dir", scratch, str(tflite_path)],
                capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            return {"ran": True, "compiled": False,
                    "reason": f"{compiler} did not finish within {TIMEOUT_S} s"}
        parsed = edgetpu.parse_compiler_log(run.stdout)
        log_file = pathlib.Path(scratch, f"{stem}_edgetpu.log")
        if log_file.exists():  # the whole table; stdout may list only the unmapped rows
            operation_log = edgetpu.parse_compiler_log(log_file.read_text(errors="replace"))
            if operation_log["table"] == "complete":
                parsed.update(table="complete", operators=operation_log["operators"])
        compiled_file = pathlib.Path(scratch, f"{stem}_edgetpu.tflite")
        compiled = run.returncode == 0 and parsed["compiled"] is not False and compiled_file.exists()
        result = {"ran": True, "compiled": compiled, "exit_code": run.returncode,
                  "version": parsed["compiler_version"], "log": parsed}
        if not compiled:
            lines = [line for line in (run.stderr + run.stdout).splitlines() if line.strip()]
            result["reason"] = lines[-1].strip() if lines else f"exit code {run.returncode}"
            return result
        carry_the_record_over(tflite_path, compiled_file)
        for produced in (compiled_file, log_file):
            if produced.exists():
                final = tflite_path.parent / produced.name
                os.replace(produced, final)
                result["model" if produced.suffix == ".tflite" else "log_file"] = str(final)
    return result


def carry_the_record_over(source: pathlib.Path, compiled: pathlib.Path) -> None:
    """edgetpu_compiler drops a model's metadata (ultralytics/yolov5#9903): the ArtifactId the
    converter embedded is copied into the compiled model, which then says what it is too."""
    from tfmobile_core.records import METADATA_NAME

    stored = litert.read_metadata(source.read_bytes(), METADATA_NAME)
    if stored is not None:
        compiled.write_bytes(litert.with_metadata(compiled.read_bytes(), METADATA_NAME, stored))


def edgetpu_report(tflite_path: pathlib.Path, content: bytes, compiler: str = COMPILER) -> dict:
    """The report's `edgetpu` section: the offline analysis, the compiler's outcome and where
    the two disagree."""
    analysis = edgetpu.analyze(content)
    compiled = compile_model(tflite_path, compiler)
    disagreements = (edgetpu.compare(analysis, compiled["log"]) if compiled.get("log") else None)
    return {"analysis": analysis_summary(analysis), "compiler": compiled,
            "analysis_vs_compiler": disagreements}
