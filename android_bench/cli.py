"""Flags shared by `devices` and `run`: how to reach adb devices and ssh boards."""

from __future__ import annotations

from absl import flags

from android_bench import targets as targets_lib
from tfmobile_core import cli

FLAGS = flags.FLAGS


def define_target_flags() -> None:
    flags.DEFINE_string("adb", "adb", "The adb client to use (Android platform-tools or Debian's "
                        "`adb` package).")
    flags.DEFINE_string("adb_server", None, "host:port of a remote adb server (a device lab): "
                        "its devices become targets. Default: the local server.")
    flags.DEFINE_list("connect", [], "host:port of network devices to `adb connect` first "
                      "(phones with wireless debugging, emulators, stand-ins).")
    flags.DEFINE_list("ssh", [], "Linux boards to reach over OpenSSH (Coral Dev Board, "
                      "Raspberry Pi with a USB Accelerator): user@host[:port][:python=PATH]"
                      "[:identity=KEY], e.g. pi@rpi.local:python=/home/pi/venv/bin/python3.")
    flags.DEFINE_string("ssh_python", "python3", "The boards' Python for the device runner, "
                        "where a target does not name its own (:python=PATH): the one that "
                        "has numpy and ai_edge_litert or tflite_runtime.")
    flags.DEFINE_string("ssh_identity", None, "Private key for the ssh boards (ssh -i), where a "
                        "target does not name its own (:identity=KEY).")
    flags.DEFINE_list("ssh_option", [], "Extra ssh -o options, e.g. "
                      "StrictHostKeyChecking=accept-new,UserKnownHostsFile=/path.")


def adb_server() -> targets_lib.AdbServer:
    host, port = None, None
    if FLAGS.adb_server:
        host, _, port_text = FLAGS.adb_server.rpartition(":")
        if not host or not port_text.isdigit():
            raise cli.UsageError(f"--adb_server must be host:port, got {FLAGS.adb_server!r}")
        port = int(port_text)
    return targets_lib.AdbServer(adb=FLAGS.adb, host=host, port=port)


def ssh_target(spec: str) -> targets_lib.SshTarget:
    try:
        return targets_lib.SshTarget.parse(spec, identity=FLAGS.ssh_identity,
                                           python=FLAGS.ssh_python,
                                           options=tuple(FLAGS.ssh_option))
    except ValueError as err:
        raise cli.UsageError(str(err)) from None


def adb_devices(server: targets_lib.AdbServer) -> list[dict]:
    """`adb connect` the --connect addresses, then list the server's devices."""
    server.check_installed()
    for address in FLAGS.connect:
        server.connect(address)
    return server.devices()
