"""The benchmark harness end to end, with real parts.

- `local`: the device runner times models with this machine's LiteRT.
- an Android phone: the stand-in adbd (tests/standins/adbd.py) reached by Debian's real `adb`
  client; TFLite's benchmark_model is replaced by tests/standins/benchmark_model, which runs
  the real LiteRT interpreter and prints the real tool's log.
- a Linux board: a real `sshd` on loopback (tests/standins/sshd.py).
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import subprocess
import sys
import time

import pytest

from helpers import as_compiled_for_edgetpu, bench, records, table
from standins import sshd
from standins.adbd import AdbDaemon

pytest_plugins = ["standins.adb_fixtures"]

ROOT = pathlib.Path(__file__).resolve().parents[1]
QUICK = ["--num_runs", "5", "--warmup_runs", "1", "--cooldown_s", "0"]

# Its tests share an expensive module fixture: one xdist worker runs them all.
pytestmark = pytest.mark.xdist_group("android_bench_local_run")


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """Zoo models converted by the harness (float32 and int8) and benchmarked on `local`."""
    out = tmp_path_factory.mktemp("local")
    result = bench("run", "--models", "mobilenet_v2:alpha=0.35:input_size=64",
                   "--modes", "float32,int8", "--targets", "local", *QUICK,
                   "--results", str(out / "results.jsonl"), "--artifacts_dir", str(out / "artifacts"))
    return out, result


@pytest.fixture(scope="module")
def tflite_files(local_run):
    out, _ = local_run
    return sorted(str(p) for p in (out / "artifacts").glob("*.tflite"))


@pytest.mark.slow
def test_local_run_converts_benchmarks_and_compares(local_run):
    out, result = local_run
    assert result.returncode == 0, result.stderr
    assert "2 cells on 1 target(s): 2 ok, 0 failed" in result.stdout
    found = records(out / "results.jsonl")
    assert {r.model.mode for r in found} == {"float32", "int8"}
    for record in found:
        assert record.status == "ok"
        assert record.metrics.latency_ms.median > 0
        assert record.metrics.runs == 5
        assert record.model.macs > 0 and len(record.model.sha256) == 64
        assert record.target_name == "local" and record.target["cores"] >= 1
        assert record.target["python"] == sys.executable  # the harness's own interpreter
        assert (out / record.raw_output).read_text().startswith("$ ")
    markdown = table(out / "compare", "local").read_text()
    int8_row = next(line for line in markdown.splitlines() if "_int8 |" in line)
    assert int8_row.rstrip(" |").endswith("x")  # its speed-up against the float twin
    assert table(out / "compare", "local", ".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert table(out / "compare", "local", ".csv").read_text().startswith("model,mode")
    assert f"files: {table(out / 'compare', 'local')}" in result.stdout


@pytest.mark.slow
def test_resume_skips_the_cells_already_done(local_run, tflite_files):
    out, _ = local_run
    before = len(records(out / "results.jsonl"))
    result = bench("run", "--models", ",".join(tflite_files), "--targets", "local", *QUICK,
                   "--results", str(out / "results.jsonl"), "--resume", "--nocompare")
    assert result.returncode == 0, result.stderr
    assert "2 already done" in result.stdout
    assert len(records(out / "results.jsonl")) == before


def test_devices_describes_the_phone_and_this_machine(adb_device):
    result = bench("devices", "--json", env=adb_device.env)
    assert result.returncode == 0, result.stderr
    described = {d["name"]: d for d in json.loads(result.stdout)}
    phone = described[f"adb:{adb_device.serial}"]
    assert phone["os"] == "android" and phone["model"] == "StandIn"
    assert phone["abi"] == "arm64-v8a" and phone["cores"] == 8
    assert phone["max_khz"] == [1_800_000] * 4 + [2_800_000] * 4
    assert "local" in described


@pytest.mark.slow
def test_phone_runs_benchmark_model_pinned_to_its_big_cores(adb_device, tflite_files, tmp_path, standin_bin):
    result = bench("run", "--models", ",".join(tflite_files), "--targets", "adb", *QUICK,
                   "--benchmark_binary", str(standin_bin / "benchmark_model"),
                   "--results", str(tmp_path / "results.jsonl"), env=adb_device.env)
    assert result.returncode == 0, result.stderr + result.stdout
    found = records(tmp_path / "results.jsonl")
    assert [r.status for r in found] == ["ok", "ok"]
    for record in found:
        assert record.runner == "benchmark_model"
        assert record.metrics.latency_ms.mean > 0
        assert record.metrics.runs == 5
        assert record.pinning["cpu_mask"] == "f0"  # cores 4-7 are the 2.8 GHz ones
        assert record.target["model"] == "StandIn"
    assert {p.mask for p in adb_device.daemon.sandbox.pinnings()} == {0xF0}
    # Everything pushed is removed again.
    assert not pathlib.Path(adb_device.daemon.sandbox.host_path("/data/local/tmp/tfmobile")).exists()


@pytest.mark.slow
def test_phone_runs_the_python_device_runner(adb_device, tflite_files, tmp_path):
    # A phone's Python (Termux's, say) named in the target; the stand-in phone runs commands
    # on this machine, where the test run's interpreter has LiteRT.
    result = bench("run", "--models", tflite_files[0],
                   "--targets", f"adb:{adb_device.serial}:python={sys.executable}",
                   "--runner", "device_runner", "--delegates", "cpu,xnnpack", *QUICK,
                   "--results", str(tmp_path / "results.jsonl"), env=adb_device.env)
    assert result.returncode == 0, result.stderr + result.stdout
    by_delegate = {r.config.delegate: r for r in records(tmp_path / "results.jsonl")}
    assert by_delegate["xnnpack"].metrics.partitions == 1
    assert by_delegate["cpu"].metrics.partitions == 0


@pytest.mark.slow
def test_a_phone_that_disappears_fails_its_cells_and_the_rest_go_on(
        adb_server, tflite_files, tmp_path, standin_bin):
    daemon = AdbDaemon(tmp_path / "phone")
    daemon.start()
    device = adb_server.connect(daemon)
    results = tmp_path / "results.jsonl"
    run = subprocess.Popen(
        [sys.executable, "-m", "android_bench", "run", "--models", ",".join(tflite_files),
         "--targets", f"local,adb:{daemon.serial}", "--threads", "1,2",
         "--num_runs", "20", "--warmup_runs", "1", "--cooldown_s", "1",
         "--benchmark_binary", str(standin_bin / "benchmark_model"), "--results", str(results)],
        env={**os.environ, **device.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # unplug the phone once its first cell is recorded
        if results.exists() and f"adb:{daemon.serial}" in results.read_text():
            break
        time.sleep(0.2)
    daemon.kill()
    stdout, stderr = run.communicate(timeout=600)
    assert run.returncode == 1, stderr
    found = records(results)
    phone = [r for r in found if r.target_name == f"adb:{daemon.serial}"]
    local = [r for r in found if r.target_name == "local"]
    assert len(phone) == 4 and len(local) == 4  # every cell has a record
    assert phone[0].status == "ok"  # measured before the unplug, and kept
    assert all(r.status == "ok" for r in local)
    failed = [r for r in phone if r.status == "failed"]
    assert failed and all("not available" in r.reason or "offline" in r.reason for r in failed)
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_linux_board_over_ssh(tmp_path, tflite_files):
    """A board reached over a real sshd, its Python named in the target (a board's venv); the
    login's own PATH is never trusted to find it."""
    try:
        board = sshd.start(tmp_path / "sshd")
    except RuntimeError as err:
        pytest.fail(f"the loopback sshd is part of the test environment (.ci/run installs it): {err}")
    ssh_option = ["--ssh_option", ",".join(board.options)]
    target = board.target(sys.executable)
    name = f"ssh:{board.spec}"
    try:
        devices = bench("devices", "--json", "--ssh", target.removeprefix("ssh:"), *ssh_option)
        assert devices.returncode == 0, devices.stderr
        described = {d["name"]: d for d in json.loads(devices.stdout)}
        assert described[name]["os"] == "linux"
        assert described[name]["python"] == sys.executable
        assert described[name]["python_version"] == platform.python_version()

        result = bench("run", "--models", ",".join(tflite_files), "--targets", target,
                       *ssh_option, *QUICK, "--results", str(tmp_path / "results.jsonl"))
        assert result.returncode == 0, result.stderr + result.stdout
        found = records(tmp_path / "results.jsonl")
        assert [r.status for r in found] == ["ok", "ok"]
        assert all(r.runner == f"device_runner ({sys.executable})"
                   and r.metrics.latency_ms.p90 > 0 for r in found)
        assert all(r.target["python"] == sys.executable for r in found)

        # The board's Python named wrongly: every cell says so, in one line each.
        result = bench("run", "--models", tflite_files[0], "--targets",
                       board.target("/opt/nowhere/bin/python3"), *ssh_option, *QUICK,
                       "--results", str(tmp_path / "wrong.jsonl"))
        assert result.returncode == 1
        (wrong,) = records(tmp_path / "wrong.jsonl")
        assert "/opt/nowhere/bin/python3 not found" in wrong.reason
        assert ":python=PATH" in wrong.reason

        # The Edge TPU delegate on a board without the Edge TPU runtime: the cell fails with
        # what to install, the CPU cell beside it still runs.
        int8 = next(f for f in tflite_files if f.endswith("_int8.tflite"))
        result = bench("run", "--models", int8, "--targets", target, *ssh_option,
                       *QUICK, "--delegates", "xnnpack,edgetpu",
                       "--results", str(tmp_path / "edgetpu.jsonl"))
        assert result.returncode == 1
        assert "2 cells on 1 target(s): 1 ok, 1 failed" in result.stdout
        by_delegate = {r.config.delegate: r for r in records(tmp_path / "edgetpu.jsonl")}
        assert by_delegate["xnnpack"].status == "ok"
        reason = by_delegate["edgetpu"].reason
        assert "libedgetpu.so.1 is missing" in reason and "apt-get install libedgetpu1-std" in reason
        assert f"failed: {name} {pathlib.Path(int8).stem}: {reason}" in (
            result.stdout + result.stderr)
        assert "Traceback" not in result.stderr
    finally:
        board.stop()
    # With the board gone: failed cells with the reason, no traceback.
    result = bench("run", "--models", tflite_files[0], "--targets", target,
                   *ssh_option, *QUICK, "--results", str(tmp_path / "results.jsonl"))
    assert result.returncode == 1
    last = records(tmp_path / "results.jsonl")[-1]
    assert last.status == "failed" and "Connection refused" in last.reason
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_local_cells_run_under_the_harness_interpreter_whatever_path_holds(local_run, tmp_path):
    """`python -m android_bench run` from a venv that is not activated: a python3 first on
    PATH that has no LiteRT (here one that refuses to run) does not matter."""
    _, _ = local_run
    decoy = tmp_path / "bin"
    decoy.mkdir()
    (decoy / "python3").write_text("#!/bin/sh\necho 'the python3 on PATH ran' >&2\nexit 3\n")
    (decoy / "python3").chmod(0o755)
    model = next((local_run[0] / "artifacts").glob("*_int8.tflite"))
    result = bench("run", "--models", str(model), "--targets", "local", *QUICK,
                   "--results", str(tmp_path / "r.jsonl"), "--nocompare",
                   env={"PATH": f"{decoy}:/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr + result.stdout
    (record,) = records(tmp_path / "r.jsonl")
    assert record.status == "ok" and record.runner == f"device_runner ({sys.executable})"


@pytest.mark.slow
def test_a_compiled_edgetpu_model_carries_the_report_it_was_compiled_from(tflite_files, tmp_path):
    """edgetpu_compiler drops a model's metadata (ultralytics/yolov5#9903): a model compiled
    outside tfmobile is known by the compiler's output name, X_edgetpu.tflite for X.tflite, and
    X's report counts only while X is the file it describes."""
    from android_bench import compare, models
    from tfmobile_core import records as rec

    int8 = pathlib.Path(next(f for f in tflite_files if f.endswith("_int8.tflite")))
    source = tmp_path / int8.name
    source.write_bytes(int8.read_bytes())
    compiled = tmp_path / f"{int8.stem}_edgetpu.tflite"  # edgetpu_compiler's name for it
    compiled.write_bytes(as_compiled_for_edgetpu(int8.read_bytes()))  # no metadata left
    assert models.from_file(compiled).artifact is None  # X's report is not there yet
    (tmp_path / f"{int8.stem}.json").write_bytes(int8.with_suffix(".json").read_bytes())

    model, original = models.from_file(compiled), models.from_file(source)
    assert model.compiled_for == "edgetpu" and original.compiled_for is None
    assert (model.artifact, model.macs) == (original.artifact, original.macs)
    assert model.mode == "int8" and model.name == f"{int8.stem}_edgetpu"
    assert model.sha256 != original.sha256
    source.write_bytes(b"another model now")  # X replaced: its report no longer says what it is
    assert models.from_file(compiled).artifact is None

    # In the comparison, the Edge TPU cell says whether the Edge TPU ran it.
    def record(delegate, model_file, metrics):
        return rec.BenchmarkRecord(
            key=delegate + model_file.sha256, status="ok", runner="device_runner",
            target={"name": "ssh:coral", "kind": "ssh"}, model=model_file,
            config=rec.BenchConfig(delegate=delegate), started="", finished="",
            metrics=rec.Metrics(latency_ms=rec.Latency(median=3.0), **metrics))

    elsewhere = rec.ModelFile(path="/models/someone_elses.tflite", sha256="0" * 64, size_bytes=1)
    rows = {row["model"]: row for row in compare.table_rows([
        record("edgetpu", model, {"partitions": 2, "edgetpu_ops": 1,
                                  "ops_outside_delegate": {"SOFTMAX": 1}}),
        record("edgetpu", elsewhere, {"partitions": 1, "edgetpu_ops": 0,
                                      "ops_outside_delegate": {}}),
    ])}
    assert rows[model.name]["on Edge TPU"] == "yes (1 custom op)"
    assert rows[model.name]["partitions"] == "2 (CPU: SOFTMAX 1)"
    assert rows["someone_elses"]["on Edge TPU"] == "no"
    cpu_row, = compare.table_rows([record("xnnpack", original, {"partitions": 1})])
    assert "on Edge TPU" not in cpu_row and cpu_row["partitions"] == "1"


@pytest.mark.slow
def test_resume_after_a_kill_runs_the_missing_rounds(local_run, tflite_files, tmp_path):
    """Killed in the middle of a --rounds 3 run, `--resume` runs what is missing (a cell is
    done after its third round, not its first) in the same run, whose rounds then merge."""
    from android_bench import compare

    results = tmp_path / "results.jsonl"
    args = [sys.executable, "-m", "android_bench", "run", "--models", ",".join(tflite_files),
            "--targets", "local", "--rounds", "3", "--num_runs", "300", "--warmup_runs", "1",
            "--cooldown_s", "0", "--results", str(results), "--nocompare"]
    run = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (results.exists() and results.read_text().strip()):
        time.sleep(0.05)
    os.killpg(run.pid, 9)
    run.communicate(timeout=60)
    measured = [r for r in records(results) if r.status == "ok"]
    assert 1 <= len(measured) < 6, "killed after the first cell and before the last"

    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"6 cells (3 rounds) on 1 target(s): {6 - len(measured)} ok, 0 failed, " \
           f"{len(measured)} already done" in resumed.stdout
    found = [r for r in records(results) if r.status == "ok"]
    assert sorted((r.key, r.run.round) for r in found) == sorted(
        (key, n) for key in {r.key for r in found} for n in (1, 2, 3))
    assert len({r.run.id for r in found}) == 1  # one run, resumed
    merged = compare.latest_ok(found)
    assert len(merged) == 2 and all(len(r.metrics.rounds) == 3 for r in merged)


@pytest.mark.slow
def test_a_model_that_will_not_load_is_a_failed_cell(tflite_files, tmp_path):
    """A model LiteRT refuses on the target (here: compiled for an Edge TPU, timed without
    one) is a failed cell with the runtime's reason; the other cells go on."""
    int8 = pathlib.Path(next(f for f in tflite_files if f.endswith("_int8.tflite")))
    compiled = tmp_path / "compiled_edgetpu.tflite"
    compiled.write_bytes(as_compiled_for_edgetpu(int8.read_bytes()))
    result = bench("run", "--models", f"{compiled},{int8}", "--targets", "local", *QUICK,
                   "--results", str(tmp_path / "results.jsonl"), "--nocompare")
    assert result.returncode == 1
    failed, ok = records(tmp_path / "results.jsonl")
    assert failed.status == "failed" and "run it with --delegate edgetpu" in failed.reason
    assert ok.status == "ok"
    assert "Traceback" not in result.stderr


def test_a_damaged_model_file_is_a_usage_error_before_anything_runs(tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 64)
    result = bench("run", "--models", str(broken), "--targets", "local", *QUICK,
                   "--results", str(tmp_path / "results.jsonl"))
    assert result.returncode == 2
    assert "broken.tflite is a damaged .tflite model" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (tmp_path / "results.jsonl").read_text() == ""


@pytest.mark.parametrize("args,message", [
    (["run", "--targets", "phone"], "unknown target 'phone'"),
    (["run", "--delegates", "tpu"], "unknown delegate 'tpu'"),
    (["run", "--models", "nonet"], "neither a .tflite file nor a zoo network"),
    (["run", "--models", "missing.tflite"], "does not exist"),
    (["run", "--runtime", "tflite"], "--runtime must be interpreter and/or compiled_model"),
    (["run", "--duration_s", "-5"], "--duration_s must be a positive number of seconds"),
    (["run", "--duration_s", "nan"], "--duration_s must be a finite number"),
    (["run", "--targets", "local", "--op_profiling", "--models",
      str(pathlib.Path(__file__).parent / "data" / "published"
          / "mobilenet_v1_0.25_224_1_default_1.tflite")],
     "the LiteRT Python API gives no per-op profile"),
    (["compare", "--results", "nothing.jsonl"], "no results at nothing.jsonl"),
    (["frobnicate"], "unknown command 'frobnicate'"),
])
def test_usage_errors_are_one_line_and_exit_2(tmp_path, args, message):
    result = bench(*args, "--results", str(tmp_path / "r.jsonl"), cwd=tmp_path) \
        if args[0] == "run" else bench(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_missing_adb_or_benchmark_binary_is_one_clear_line(adb_device, tmp_path):
    result = bench("devices", "--adb", "/nonexistent/adb")
    assert result.returncode == 0  # devices still lists what it can reach
    assert "adb not found" in result.stdout

    result = bench("run", "--targets", "adb", "--adb", "/nonexistent/adb",
                   "--results", str(tmp_path / "r.jsonl"))
    assert result.returncode == 1
    assert "adb not found" in result.stderr and len(result.stderr.strip().splitlines()) == 1

    result = bench("run", "--targets", "adb", "--results", str(tmp_path / "r.jsonl"),
                   env={**adb_device.env, "HOME": str(tmp_path)})
    assert result.returncode == 2
    assert "android_aarch64_benchmark_model" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_compare_writes_tables_with_a_baseline(local_run, tmp_path):
    out, _ = local_run
    float_name = next(r.model.name for r in records(out / "results.jsonl")
                      if r.model.mode == "float32")
    accuracy = tmp_path / "top1.json"
    accuracy.write_text(json.dumps({float_name: 0.61}))
    result = bench("compare", "--results", str(out / "results.jsonl"), "--output_dir",
                   str(tmp_path / "cmp"), "--baseline", float_name, "--accuracy", str(accuracy))
    assert result.returncode == 0, result.stderr
    assert "1.00x" in result.stdout  # the baseline against itself
    assert "61.0%" in table(tmp_path / "cmp", "local").read_text()


@pytest.mark.slow
def test_cells_wait_until_the_phone_has_cooled_down(adb_device, tflite_files, tmp_path, standin_bin):
    sandbox, daemon = adb_device.daemon.sandbox, adb_device.daemon
    sandbox.set_temperature("cpu-thermal", 52_000)  # hot: the second cell must wait
    run = subprocess.Popen(
        [sys.executable, "-m", "android_bench", "run", "--models", ",".join(tflite_files),
         "--targets", "adb", *QUICK, "--cooldown_below_c", "40", "--cooldown_max_s", "120",
         "--benchmark_binary", str(standin_bin / "benchmark_model"),
         "--results", str(tmp_path / "r.jsonl")],
        env={**os.environ, **adb_device.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_for(condition, what):
        deadline = time.monotonic() + 120
        while not condition():
            assert time.monotonic() < deadline and run.poll() is None, f"no {what}"
            time.sleep(0.1)

    results = tmp_path / "r.jsonl"
    wait_for(lambda: results.exists() and results.read_text().strip(), "first cell")
    # Cool the phone only once the harness has looked at its zones after that cell (seen in the
    # requests the stand-in adbd served), so at least one look finds it hot, on any machine.
    seen = len(daemon.requests)
    wait_for(lambda: any("thermal_zone" in r for r in daemon.requests[seen:]), "look at the heat")
    sandbox.set_temperature("cpu-thermal", 35_000)
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr
    found = records(results)
    assert len(found) == 2, stdout + stderr
    first, second = found
    assert first.cooldown is None
    cooled = second.cooldown
    assert cooled["reached"] and cooled["limit_c"] == 40 and cooled["hottest_c"] == 35.0
    assert cooled["readings_c"][0] == 52.0 and cooled["readings_c"][-1] == 35.0
    assert cooled["waited_s"] >= 2.0  # a look every 2 s: it waited at least one


@pytest.mark.slow
def test_a_delegate_that_runs_nothing_is_a_failed_cell(adb_device, tflite_files, tmp_path, standin_bin):
    # benchmark_model exits 0 with CPU figures when NNAPI takes no op; those are not NNAPI's.
    result = bench("run", "--models", tflite_files[0], "--targets", "adb", "--delegates", "nnapi,gpu",
                   *QUICK, "--benchmark_binary", str(standin_bin / "benchmark_model"),
                   "--results", str(tmp_path / "r.jsonl"), env=adb_device.env)
    assert result.returncode == 1
    by_delegate = {r.config.delegate: r for r in records(tmp_path / "r.jsonl")}
    assert by_delegate["nnapi"].status == "failed"
    assert "nnapi delegate ran nothing" in by_delegate["nnapi"].reason
    assert by_delegate["gpu"].status == "failed"
    assert "Failed to apply GPU delegate" in by_delegate["gpu"].reason


@pytest.mark.slow
def test_interpreter_test_checks_both_runtimes_against_host_references(tflite_files, tmp_path):
    """--expect: references computed here, the outputs of each cell checked against them, for
    the Interpreter and the CompiledModel API alike."""
    result = bench("run", "--models", ",".join(tflite_files), "--targets", "local", "--expect",
                   "--runtime", "interpreter,compiled_model", *QUICK,
                   "--results", str(tmp_path / "results.jsonl"))
    assert result.returncode == 0, result.stderr + result.stdout
    found = records(tmp_path / "results.jsonl")
    assert len(found) == 4 and all(r.status == "ok" for r in found)
    assert {r.metrics.runtime["api"] for r in found} == {"Interpreter", "CompiledModel"}
    for record in found:
        assert record.config.check
        assert record.metrics.check["verdict"] == "identical to the host's outputs"
    assert "| identical |" in result.stdout
    assert "reference outputs on this machine" in result.stderr
    # The references are kept beside the results.
    assert len(list((tmp_path / "results_raw" / "references").glob("*.npz"))) == 4


@pytest.mark.slow
def test_a_sustained_run_prints_and_plots_latency_over_time(tflite_files, tmp_path):
    result = bench("run", "--models", tflite_files[0], "--targets", "local", "--duration_s", "3",
                   "--warmup_runs", "1", "--cooldown_s", "0",
                   "--results", str(tmp_path / "results.jsonl"))
    assert result.returncode == 0, result.stderr + result.stdout
    (record,) = records(tmp_path / "results.jsonl")
    samples = record.metrics.sustained["samples"]
    assert len(samples) >= 3 and samples[-1]["t_s"] >= 3
    assert record.metrics.latency_ms.median == pytest.approx(
        record.metrics.sustained["settled_ms"], rel=0.5)
    assert f"latency over time (ms, {len(samples)} samples from 1 to " in result.stdout
    assert ("steady" in result.stdout) != ("throttled" in result.stdout)
    plots = list((tmp_path / "compare").glob("*_sustained.png"))
    assert len(plots) == 1 and plots[0].read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_phone_sustained_run_samples_heat_between_benchmark_model_windows(
        adb_device, tflite_files, tmp_path, standin_bin):
    result = bench("run", "--models", tflite_files[0], "--targets", "adb", "--duration_s", "3",
                   "--warmup_runs", "1", "--cooldown_s", "0",
                   "--benchmark_binary", str(standin_bin / "benchmark_model"),
                   "--results", str(tmp_path / "r.jsonl"), env=adb_device.env)
    assert result.returncode == 0, result.stderr + result.stdout
    (record,) = records(tmp_path / "r.jsonl")
    samples = record.metrics.sustained["samples"]
    assert len(samples) >= 2 and all(s["hottest_c"] == 45.0 for s in samples)  # cpu-thermal
    assert all(s["runs"] > 1 for s in samples)
    assert record.pinning["cpu_mask"] == "f0"  # the whole loop on the big cores
    assert {p.mask for p in adb_device.daemon.sandbox.pinnings()} == {0xF0}


@pytest.mark.slow
def test_full_delegation_and_nnapi_on_android_15(adb_device, tflite_files, tmp_path, standin_bin):
    adb_device.daemon.sandbox.setprop("ro.build.version.sdk", "35")
    result = bench("run", "--models", tflite_files[0], "--targets", "adb",
                   "--delegates", "xnnpack,nnapi", "--require_full_delegation", *QUICK,
                   "--benchmark_binary", str(standin_bin / "benchmark_model"),
                   "--results", str(tmp_path / "r.jsonl"), env=adb_device.env)
    assert result.returncode == 1
    by_delegate = {r.config.delegate: r for r in records(tmp_path / "r.jsonl")}
    assert by_delegate["xnnpack"].status == "ok"  # one partition: the whole graph
    nnapi = by_delegate["nnapi"]
    assert nnapi.status == "failed"
    assert nnapi.reason.startswith("--require_full_delegation: the nnapi delegate did not take "
                                   "the whole graph")
    assert "NNAPI is deprecated from Android 15 (this device: SDK 35)" in nnapi.notes[0]
    assert by_delegate["xnnpack"].notes is None
    raw = (tmp_path / nnapi.raw_output).read_text()
    assert "--require_full_delegation=true" in raw and "Disallowed CPU fallback detected." in raw
