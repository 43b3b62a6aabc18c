"""The adbd stand-in, driven through Debian's real adb client the way the harness drives a phone."""

import hashlib
import os
import time

from standins.adbd import AdbDaemon, Pinning

pytest_plugins = ["standins.adb_fixtures"]

TMP = "/data/local/tmp"


def wait_for(condition, timeout=30.0, what="condition"):
    """Poll ``condition`` until it returns something truthy, which is returned."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout} s")
        time.sleep(0.02)
    return result


def test_adb_lists_the_connected_stand_in_with_its_product_and_model(adb_device):
    devices = adb_device.adb("devices", "-l").stdout.splitlines()

    line = next(line for line in devices if line.startswith(adb_device.serial + " "))
    assert line.split()[1:5] == ["device", "product:standin", "model:StandIn", "device:standin"]


def test_getprop_reads_the_daemon_properties(adb_device):
    assert adb_device.adb("shell", "getprop ro.product.model").stdout == "StandIn\n"
    assert adb_device.adb("shell", "getprop no.such.key fallback").stdout == "fallback\n"
    listing = adb_device.adb("shell", "getprop").stdout.splitlines()
    assert "[ro.product.cpu.abi]: [arm64-v8a]" in listing
    assert listing == sorted(listing)

    adb_device.daemon.sandbox.setprop("ro.product.model", "Other")
    assert adb_device.adb("shell", "getprop ro.product.model").stdout == "Other\n"


def test_shell_v2_carries_the_exit_code_and_keeps_stderr_apart(adb_device):
    result = adb_device.adb("shell", "echo out; echo err >&2; exit 3", check=False)

    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert adb_device.daemon.requests[-1].startswith("shell,v2,")


def test_raw_shell_and_exec_merge_stderr_and_carry_no_exit_code(adb_device):
    shell_x = adb_device.adb("shell", "-x", "echo out; echo err >&2; exit 3", check=False)
    exec_out = adb_device.adb("exec-out", "echo out; echo err >&2; exit 3", check=False)

    for result in shell_x, exec_out:
        assert (result.returncode, result.stdout, result.stderr) == (0, "out\nerr\n", "")
    assert adb_device.daemon.requests[-2:] == [
        "shell:echo out; echo err >&2; exit 3",
        "exec:echo out; echo err >&2; exit 3",
    ]


def test_a_pty_shell_gets_a_terminal(adb_device):
    result = adb_device.adb("shell", "-tt", "tty")

    assert result.stdout.startswith("/dev/pts/")
    assert ",pty:" in adb_device.daemon.requests[-1]


def test_commands_run_in_data_local_tmp_without_the_test_process_adb_variables(
    adb_device, monkeypatch
):
    monkeypatch.setenv("ANDROID_SERIAL", "leaked")
    env = adb_device.adb("shell", "pwd; env").stdout.splitlines()

    assert env[0] == f"{adb_device.root}{TMP}"
    assert not [line for line in env if line.startswith(("ANDROID", "ADB"))]
    assert f"PATH={adb_device.root}/system/bin:" in "\n".join(env)


def test_push_and_pull_round_trip_a_binary_file(adb_device, tmp_path):
    payload = os.urandom(3 * 1024 * 1024 + 12345)  # several RECV/SEND chunks and WRTEs
    (tmp_path / "blob.bin").write_bytes(payload)

    adb_device.adb("push", str(tmp_path / "blob.bin"), f"{TMP}/blob.bin")
    adb_device.adb("pull", f"{TMP}/blob.bin", str(tmp_path / "back.bin"))

    digest = hashlib.sha256(payload).hexdigest()
    assert hashlib.sha256((tmp_path / "back.bin").read_bytes()).hexdigest() == digest
    assert adb_device.adb("shell", f"sha256sum {TMP}/blob.bin").stdout.split()[0] == digest
    assert (adb_device.root / "data/local/tmp/blob.bin").read_bytes() == payload


def test_a_pushed_script_runs_once_made_executable(adb_device, tmp_path):
    script = tmp_path / "hello.sh"
    script.write_text('#!/bin/sh\necho "hello $1 from $(basename "$PWD")"\n')
    script.chmod(0o644)
    adb_device.adb("push", str(script), f"{TMP}/hello.sh")

    refused = adb_device.adb("shell", f"{TMP}/hello.sh world", check=False)
    ran = adb_device.adb("shell", f"chmod +x {TMP}/hello.sh && {TMP}/hello.sh world")

    assert refused.returncode == 126
    assert ran.stdout == "hello world from tmp\n"


def test_a_directory_push_recreates_the_tree(adb_device, tmp_path):
    tree = tmp_path / "model"
    (tree / "assets/labels").mkdir(parents=True)
    (tree / "model.tflite").write_bytes(b"TFL3" * 1000)
    (tree / "assets/labels/imagenet.txt").write_text("tench\ngoldfish\n")

    adb_device.adb("push", str(tree), f"{TMP}/")

    pushed = adb_device.root / "data/local/tmp/model"
    assert (pushed / "model.tflite").read_bytes() == b"TFL3" * 1000
    assert (pushed / "assets/labels/imagenet.txt").read_text() == "tench\ngoldfish\n"
    # adb 29 works around an Android 9 bug by also creating the directories over a shell
    # stream while its sync stream is open: two streams at once on one connection.
    assert any(":mkdir " in request for request in adb_device.daemon.requests)


def test_ls_and_stat_of_missing_paths(adb_device, tmp_path):
    (tmp_path / "a.txt").write_text("a")
    adb_device.adb("push", str(tmp_path / "a.txt"), f"{TMP}/new/dir/a.txt")  # STAT says: absent

    assert adb_device.adb("shell", f"ls {TMP}/new/dir").stdout == "a.txt\n"
    missing_ls = adb_device.adb("shell", f"ls {TMP}/missing", check=False)
    missing_pull = adb_device.adb("pull", f"{TMP}/missing", str(tmp_path / "x"), check=False)

    assert missing_ls.returncode != 0 and "No such file" in missing_ls.stderr
    assert missing_pull.returncode == 1
    assert f"remote object '{TMP}/missing' does not exist" in missing_pull.stdout
    assert not (tmp_path / "x").exists()


def test_sysfs_and_cpuinfo_describe_the_configured_phone(adb_device):
    cpu = "/sys/devices/system/cpu"
    max_freqs = f"{cpu}/cpu0/cpufreq/cpuinfo_max_freq {cpu}/cpu7/cpufreq/cpuinfo_max_freq"
    assert adb_device.adb("shell", f"cat {max_freqs}").stdout == "1800000\n2800000\n"
    assert adb_device.adb("shell", f"cat {cpu}/possible {cpu}/present").stdout == "0-7\n0-7\n"
    cpuinfo = adb_device.adb("shell", "cat /proc/cpuinfo").stdout
    assert cpuinfo.count("processor\t:") == 8 and "Hardware\t: StandIn-8" in cpuinfo

    zone = "/sys/class/thermal/thermal_zone0"
    assert adb_device.adb("shell", f"cat {zone}/type {zone}/temp").stdout == "cpu-thermal\n45000\n"
    adb_device.daemon.sandbox.set_temperature("cpu-thermal", 71_500)
    assert adb_device.adb("shell", f"cat {zone}/temp").stdout == "71500\n"


def test_taskset_pins_onto_real_cpus_and_records_the_request(adb_device):
    status = adb_device.adb("shell", "taskset 80 grep Cpus_allowed_list /proc/self/status")
    adb_device.adb("shell", "taskset -p f0 $$")

    host_cpu = 7 % os.cpu_count()
    assert status.stdout.split() == ["Cpus_allowed_list:", str(host_cpu)]
    first, second = adb_device.daemon.sandbox.pinnings()
    argv = ("grep", "Cpus_allowed_list", "/proc/self/status")
    assert first == Pinning(0x80, (7,), (host_cpu,), first.pid, argv)
    assert (second.mask, second.device_cpus, second.argv) == (0xF0, (4, 5, 6, 7), ())


def test_concurrent_commands_run_side_by_side(adb_device):
    # Each command waits until all four have started, so they can only finish side by side.
    (adb_device.root / "data/local/tmp/barrier.sh").write_text(
        'touch "arrived.$1"\n'
        'until [ "$(ls arrived.* | wc -l)" -ge 4 ]; do sleep 0.02; done\n'
        'echo "$1"\n'
    )
    clients = [adb_device.popen("shell", f"sh barrier.sh {n}") for n in range(4)]

    outputs = [client.communicate(timeout=60)[0] for client in clients]
    assert outputs == [f"{n}\n" for n in range(4)]
    assert [client.returncode for client in clients] == [0] * 4


def test_an_unknown_service_is_refused(adb_device):
    result = adb_device.adb("reverse", "--list", check=False)

    assert result.returncode != 0
    assert adb_device.daemon.requests[-1].startswith("reverse:")


def test_killing_the_daemon_mid_command_ends_the_client_and_takes_the_device_offline(
    adb_device,
):
    command = "echo $$ > pid.new && mv pid.new pid && exec sleep 30"  # the pid file appears whole
    client = adb_device.popen("shell", command)
    pid_file = adb_device.root / "data/local/tmp/pid"
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), what="the sleep"))

    started = time.monotonic()
    adb_device.daemon.kill()
    stdout, stderr = client.communicate(timeout=30)

    assert time.monotonic() - started < 5
    # adb's client exits 0 when the device vanishes before the shell's exit packet
    # (read_and_dump starts from exit code 0), so a lost phone looks like a silent success.
    assert (client.returncode, stdout, stderr) == (0, "", "")
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), what="the command killed")
    later = adb_device.adb("shell", "true", check=False)
    assert later.returncode != 0 and ("offline" in later.stderr or "not found" in later.stderr)


def test_a_new_daemon_on_a_new_port_is_a_replugged_phone(adb_device, adb_server):
    adb_device.adb("shell", f"echo kept > {TMP}/note")
    adb_device.daemon.kill()

    with AdbDaemon(adb_device.root) as replugged:
        assert replugged.port != adb_device.daemon.port
        device = adb_server.connect(replugged)
        try:
            assert device.adb("shell", f"cat {TMP}/note").stdout == "kept\n"
        finally:
            adb_server.adb("disconnect", replugged.serial)
