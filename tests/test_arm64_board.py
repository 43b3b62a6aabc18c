"""The interpreter tests users run on Coral boards and Raspberry Pis, on an emulated arm64 board.

The board is Debian bookworm's real arm64 userland under qemu-user (tests/standins/arm64_board.py)
behind a real sshd on loopback (tests/standins/sshd.py): its Python is Debian's aarch64
python3.11, with either ai-edge-litert and numpy 2 or tflite-runtime 2.14 and numpy 1.26 (a
Coral Dev Board's situation). The harness reaches it as any board, `android_bench run --targets
ssh:...`, converts the zoo's models on this machine, computes reference outputs here (--expect)
and checks the board's arm64 kernels against them. Timings there mean nothing (qemu runs an
invoke some 100-300 times slower than native); the outputs are what is tested.
"""

from __future__ import annotations

import json

import pytest

from helpers import bench, records
from standins import arm64_board, sshd

# One xdist worker runs them all: they share the board, its cache and the converted models.
pytestmark = [pytest.mark.xdist_group("arm64_board"), pytest.mark.slow]

QUICK = ["--num_runs", "1", "--warmup_runs", "0", "--cooldown_s", "0"]
ZOO = "mobilenet_v2:alpha=0.35:input_size=64"
# The zoo's other families: hard-swish and channel shuffle included.
MORE_ZOO = "mobilenet_v3_small:input_size=96,shufflenet_v2:input_size=96,fd_mobilenet:input_size=96"


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """The loopback sshd, and the emulated Pythons: each flavour on a Cortex-A72 (a Raspberry
    Pi 4's CPU), and ai-edge-litert on qemu's `max` CPU (SME and every other feature)."""
    reason = arm64_board.unavailable()
    if reason:
        pytest.fail(f"the emulated arm64 board is part of the test environment (.ci/run "
                    f"installs qemu-user-static and debootstrap): {reason}")
    pythons = {flavour: arm64_board.python_command(flavour) for flavour in arm64_board.FLAVOURS}
    pythons["litert-sme"] = arm64_board.python_command("litert", cpu="max")
    pythons["litert-a76"] = arm64_board.python_command("litert", cpu="cortex-a76")
    try:
        server = sshd.start(tmp_path_factory.mktemp("sshd"))
    except RuntimeError as err:
        pytest.fail(f"the loopback sshd is part of the test environment: {err}")
    yield server, pythons
    server.stop()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """Where the harness converts the zoo models (once for every test of this file)."""
    return tmp_path_factory.mktemp("artifacts")


def run_on_board(board, python: str, models: str, artifacts, out, *flags):
    server, _ = board
    return bench("run", "--models", models, "--modes", "float32,int8",
                 "--targets", server.target(python), "--ssh_option", ",".join(server.options),
                 "--expect", *QUICK, *flags, "--artifacts_dir", str(artifacts),
                 "--results", str(out / "results.jsonl"), timeout=1800)


def test_the_board_describes_its_arm64_cpu_and_runtime(board):
    server, pythons = board
    specs = [server.target(str(pythons[f])).removeprefix("ssh:") for f in
             ("litert", "tflite_runtime", "litert-sme")]
    result = bench("devices", "--json", "--ssh", ",".join(specs),
                   "--ssh_option", ",".join(server.options))
    assert result.returncode == 0, result.stderr
    described = [d for d in json.loads(result.stdout) if d["kind"] == "ssh"]
    litert, tflite_runtime, sme = described
    for board_view in described:
        assert board_view["machine"] == "aarch64"
        assert board_view["cpu_features_from"] == "auxv (the runner's Python)"
        assert {"fp", "asimd"} <= set(board_view["cpu_features"])
    assert litert["runtime"] == {"package": "ai_edge_litert", "version": "2.3.0",
                                 "apis": ["Interpreter", "CompiledModel"]}
    assert litert["numpy"].startswith("2.")
    assert tflite_runtime["runtime"] == {"package": "tflite_runtime", "version": "2.14.0",
                                         "apis": ["Interpreter"]}
    assert tflite_runtime["numpy"].startswith("1.26")
    assert "sme" not in litert["cpu_features"] and "sme" in sme["cpu_features"]
    # The text form names the runtime and the kernel-relevant features.
    text = bench("devices", "--ssh", specs[2], "--ssh_option", ",".join(server.options))
    assert "aarch64" in text.stdout and "sme" in text.stdout
    assert "ai_edge_litert 2.3.0 (Interpreter, CompiledModel)" in text.stdout


@pytest.mark.parametrize("models", [ZOO, MORE_ZOO], ids=["mobilenet_v2", "other_families"])
@pytest.mark.parametrize("flavour", ["litert", "tflite_runtime"])
def test_zoo_models_pass_the_interpreter_test_on_the_board(board, artifacts, tmp_path, flavour,
                                                           models):
    _, pythons = board
    result = run_on_board(board, str(pythons[flavour]), models, artifacts, tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    found = records(tmp_path / "results.jsonl")
    assert len(found) == 2 * len(models.split(","))  # float32 and int8 of each
    for record in found:
        assert record.status == "ok", record.reason
        assert record.target["machine"] == "aarch64"
        assert record.metrics.runtime["package"] == arm64_board.RUNTIME_MODULE[flavour]
        check = record.metrics.check
        assert check["passed"]
        if record.model.mode == "int8":
            int8 = check["outputs"][0]
            assert int8["unit"] == "quantization steps"
            if flavour == "litert":  # the host's runtime: bit-identical on arm64
                assert check["verdict"] == "identical to the host's outputs"
                assert "the same runtime" in check["int8_tolerance_from"]
            else:  # tflite_runtime 2.14 rounds otherwise: its outputs track the host's
                assert int8["tolerance"] is None and int8["sqnr_db"] >= 10
                assert "tflite_runtime==2.14.0 here" in check["int8_tolerance_from"]
        else:
            assert check["outputs"][0]["unit"] == "absolute"
            assert check["max_abs_diff"] <= check["outputs"][0]["tolerance"]
    assert "| check |" in result.stdout
    if flavour == "tflite_runtime":  # the table shows how closely another runtime tracks
        assert "steps, SQNR" in result.stdout or "| identical |" in result.stdout


def test_the_compiled_model_api_needs_a_newer_core_than_a_raspberry_pi_4s(board, artifacts,
                                                                        tmp_path):
    """ai_edge_litert 2.3's CompiledModel dies on an illegal instruction on a Cortex-A72
    (Armv8.0, a Raspberry Pi 4) and runs on a Cortex-A76 (Armv8.2), where it gives the
    Interpreter's outputs; the Interpreter runs on both."""
    _, pythons = board
    for cpu, out in (("a72", tmp_path / "a72"), ("a76", tmp_path / "a76")):
        python = pythons["litert"] if cpu == "a72" else pythons["litert-a76"]
        run_on_board(board, str(python), ZOO, artifacts, out,
                     "--runtime", "interpreter,compiled_model")
    a72 = {(r.model.mode, r.config.runtime): r for r in records(tmp_path / "a72" / "results.jsonl")}
    a76 = {(r.model.mode, r.config.runtime): r for r in records(tmp_path / "a76" / "results.jsonl")}
    for mode in ("float32", "int8"):
        assert a72[(mode, "interpreter")].status == "ok", a72[(mode, "interpreter")].reason
        died = a72[(mode, "compiled_model")]
        assert died.status == "failed" and "illegal instruction (SIGILL)" in died.reason
        for api in ("interpreter", "compiled_model"):
            assert a76[(mode, api)].status == "ok", a76[(mode, api)].reason
            assert a76[(mode, api)].metrics.check["passed"]
    assert a76[("int8", "compiled_model")].metrics.runtime["api"] == "CompiledModel"
    assert a76[("int8", "compiled_model")].metrics.check["max_abs_diff"] == 0


def test_an_sme_cpu_whose_xnnpack_int8_kernels_disagree_is_told_from_a_broken_model(
        board, artifacts, tmp_path):
    """qemu's `max` CPU has SME: XNNPACK's int8 kernels there (as qemu 7.2 runs them) miss the
    host's outputs by far more than rounding, while the builtin kernels and the float kernels
    agree. The check says the model is sound and the CPU's XNNPACK kernels are at fault."""
    _, pythons = board
    result = run_on_board(board, str(pythons["litert-sme"]), ZOO, artifacts, tmp_path,
                          "--delegates", "xnnpack,cpu")
    found = {(r.model.mode, r.config.delegate): r for r in records(tmp_path / "results.jsonl")}
    assert result.returncode == 1, result.stdout
    broken = found[("int8", "xnnpack")]
    assert broken.status == "failed"
    assert "the outputs no longer track the host's" in broken.reason
    assert "the builtin kernels (--delegate cpu) track the host's outputs" in broken.reason
    assert "the xnnpack kernels this CPU runs are at fault (its features:" in broken.reason
    assert "sme" in broken.reason and "run this board with --delegate cpu" in broken.reason
    # The builtin kernels this CPU runs round otherwise than x86's (a step amplified through
    # an untrained network): the check fails at 1 step, and says the outputs track the host's.
    builtin = found[("int8", "cpu")]
    assert builtin.status == "ok" or (
        "the outputs track the host's, as when kernels round differently" in builtin.reason)
    assert found[("float32", "xnnpack")].status == "ok"
    assert found[("float32", "xnnpack")].metrics.check["passed"]
