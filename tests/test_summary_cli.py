"""python -m tfmobile.summary as a user runs it."""

import json
import subprocess
import sys

import pytest

from tfmobile.profile import profile
from tfmobile import models


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "tfmobile.summary", *args], capture_output=True, text=True, timeout=300
    )


def test_json_reports_the_models_params_and_macs():
    result = run("--model", "shufflenet_v1", "--groups", "8", "--alpha", "0.5", "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # TensorFlow's start-up logging stays hidden
    summary = json.loads(result.stdout)
    stats = profile(models.build("shufflenet_v1", groups=8, alpha=0.5))
    assert (summary["params"], summary["macs"]) == (stats.params, stats.macs)
    assert sum(layer["macs"] for layer in summary["layers"]) == summary["macs"]


def test_table_ends_with_one_summary_line():
    result = run("--model", "mobilenet_v3_small", "--minimalistic")
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("mobilenet_v3_small (alpha 1, 224x224, minimalistic True): 2,056,848 params")
    assert last.endswith("52.29 M MACs")


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model", "resnet50"], "unknown model 'resnet50'; choose one of: mobilenet_v1"),
        (["--model", "mobilenet_v1", "--alpha", "-1"], "alpha (width multiplier) must be a positive"),
        (["--model", "mobilenet_v1", "--input_size", "8"], "input_size must be an integer of at least 32"),
        (["--model", "shufflenet_v1", "--groups", "6"], "groups must be one of"),
        (["--model", "mobilenet_v1", "--alpha", "wide"], "--alpha"),
        ([], "--model is required"),
        (["mobilenet_v1"], "unexpected argument 'mobilenet_v1'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfmobile.summary: error: "), result.stderr
    assert message in lines[0]


def test_help_explains_the_flags():
    result = run("--help")
    assert result.returncode == 0
    for flag in ("model", "alpha", "input_size", "groups", "minimalistic", "json", "published"):
        assert f"--{flag}:" in result.stdout or f"--[no]{flag}:" in result.stdout, flag
