"""Data flows one way, and the records every stage shares stay light.

    tfmobile_core <- calibration <- converters <- tfmobile <- android_bench

Each package may import only those to its left (tfmobile_core: the typed records, atomic
writes, the command conventions). The device runner is a single file that boards run without
this package: it holds a copy of the partition analysis that must stay identical to the one
the converter's report uses.
"""

from __future__ import annotations

import ast
import inspect
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
ORDER = ["tfmobile_core", "calibration", "converters", "tfmobile", "android_bench"]


def imported_packages(path: pathlib.Path) -> set[str]:
    """Our packages a module imports, at any depth of its code (lazy imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & set(ORDER)
    return found


@pytest.mark.parametrize("package", ORDER)
def test_each_package_imports_only_the_stages_before_it(package):
    allowed = set(ORDER[: ORDER.index(package) + 1])
    wrong = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        extra = imported_packages(path) - allowed
        if extra:
            wrong[str(path.relative_to(ROOT))] = sorted(extra)
    assert not wrong, f"imports against the flow {' <- '.join(ORDER)}: {wrong}"


def test_the_records_the_registry_and_the_harness_entry_points_import_no_tensorflow():
    code = ("import sys\n"
            "import tfmobile_core.records, tfmobile_core.cli, tfmobile_core.atomic\n"
            "from tfmobile import models\n"
            "models.identity('shufflenet_v1', alpha=0.5)\n"
            "import android_bench.results, android_bench.compare, android_bench.targets\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_device_runner_holds_the_converters_partition_analysis_unchanged():
    from android_bench import device_runner
    from converters import litert

    for name in ("execution", "_delegated_ops"):
        assert inspect.getsource(getattr(device_runner, name)) == \
            inspect.getsource(getattr(litert, name)), f"{name} differs: copy it again"
    assert device_runner.EDGETPU_OP == litert.EDGETPU_OP


def test_the_device_runner_imports_nothing_of_ours():
    assert imported_packages(ROOT / "android_bench" / "device_runner.py") == set()
