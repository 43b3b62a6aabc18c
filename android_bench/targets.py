"""Where benchmarks run: this machine, Android devices over adb, Linux boards over ssh.

Every target offers the same four things: run a POSIX shell command, push a file, pull a file,
and say whether it is still reachable. Everything else (what the device is, how a model is
timed on it) is built on those, so one harness drives a phone, a Coral board and this machine.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import tempfile
import uuid


class TargetError(Exception):
    """The transport failed (device gone, host unreachable, tool missing): one line."""


@dataclasses.dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str


def _run(argv: list[str], timeout: float, stdin: bytes | None = None) -> Completed:
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)
    except FileNotFoundError:
        raise TargetError(f"{argv[0]} not found on this machine") from None
    except subprocess.TimeoutExpired:
        raise TargetError(f"{shlex.join(argv[:3])} ... timed out after {timeout:.0f} s") from None
    return Completed(proc.returncode, proc.stdout.decode(errors="replace"),
                     proc.stderr.decode(errors="replace"))


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


class Target:
    """A place to run benchmarks. `name` is how the user and the results refer to it."""

    name: str
    kind: str
    workdir: str  # where pushed files live on the target
    python: str = "python3"  # the interpreter the device runner runs under there

    def shell(self, command: str, timeout: float = 120) -> Completed:
        raise NotImplementedError

    def push(self, local: pathlib.Path, remote: str, timeout: float = 300) -> None:
        raise NotImplementedError

    def pull(self, remote: str, local: pathlib.Path, timeout: float = 300) -> None:
        raise NotImplementedError

    def unreachable(self) -> str | None:
        """Why the target cannot be used now, or None when it can."""
        raise NotImplementedError


class LocalTarget(Target):
    """This machine: the device runner runs here under the harness's own interpreter (whatever
    PATH holds, the LiteRT the harness has is the one timed)."""

    kind = "local"

    def __init__(self):
        self.name = "local"
        self.python = sys.executable
        self.workdir = os.path.join(tempfile.gettempdir(), f"tfmobile-bench-{os.getpid()}")

    def shell(self, command, timeout=120):
        return _run(["/bin/sh", "-c", command], timeout)

    def push(self, local, remote, timeout=300):
        os.makedirs(os.path.dirname(remote), exist_ok=True)
        shutil.copyfile(local, remote)

    def pull(self, remote, local, timeout=300):
        shutil.copyfile(remote, local)

    def unreachable(self):
        return None


@dataclasses.dataclass(frozen=True)
class AdbServer:
    """Which adb server to talk to: the local default, or a remote one (a device lab)."""

    adb: str = "adb"
    host: str | None = None  # -H: a remote adb server's host
    port: int | None = None  # -P: its port

    def argv(self, *args: str) -> list[str]:
        prefix = [self.adb]
        if self.host:
            prefix += ["-H", self.host]
        if self.port:
            prefix += ["-P", str(self.port)]
        return prefix + list(args)

    def run(self, *args: str, timeout: float = 60) -> Completed:
        return _run(self.argv(*args), timeout)

    def check_installed(self) -> None:
        if shutil.which(self.adb) is None and not os.path.isfile(self.adb):
            raise TargetError(
                f"adb not found ({self.adb}): install Android platform-tools "
                "(https://developer.android.com/tools/releases/platform-tools) or Debian's "
                "`adb` package, or pass --adb PATH"
            )

    def connect(self, address: str) -> None:
        """`adb connect host:port`: a device on the network (or a stand-in) joins the server."""
        result = self.run("connect", address, timeout=30)
        text = (result.stdout + result.stderr).strip()
        if result.returncode != 0 or not text.startswith(("connected", "already connected")):
            raise TargetError(f"adb connect {address}: {_last_line(text)}")

    def devices(self) -> list[dict]:
        """`adb devices -l`: serial, state and the product/model/device/transport fields."""
        self.check_installed()
        result = self.run("devices", "-l", timeout=30)
        if result.returncode != 0:
            raise TargetError(f"adb devices: {_last_line(result.stderr or result.stdout)}")
        found = []
        for line in result.stdout.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 2 or fields[0].startswith("*"):
                continue
            entry = {"serial": fields[0], "state": fields[1]}
            entry.update(f.split(":", 1) for f in fields[2:] if ":" in f)
            found.append(entry)
        return found


def split_options(spec: str, allowed: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """`127.0.0.1:5555:python=/x` -> ("127.0.0.1:5555", {"python": "/x"}): the trailing
    `:key=value` fields of a target (a serial or host may hold colons, never `=`)."""
    fields = spec.split(":")
    options: dict[str, str] = {}
    while fields and "=" in fields[-1]:
        key, _, value = fields.pop().partition("=")
        if key not in allowed or not value:
            raise ValueError(f"unknown target option {key}={value!r} in {spec!r}; "
                             f"use {', '.join(k + '=...' for k in allowed)}")
        options[key] = value
    return ":".join(fields), options


class AdbTarget(Target):
    """An Android device through the real adb client (USB, `adb connect`, or a remote server)."""

    kind = "adb"
    workdir = "/data/local/tmp/tfmobile"

    def __init__(self, serial: str, server: AdbServer = AdbServer(), python: str = "python3"):
        self.serial = serial
        self.server = server
        self.python = python  # for --runner device_runner (Termux's, say)
        self.name = f"adb:{serial}"

    def _adb(self, *args, timeout):
        result = self.server.run("-s", self.serial, *args, timeout=timeout)
        return result

    def shell(self, command, timeout=120):
        result = self._adb("shell", command, timeout=timeout)
        # adb's own failures (device gone) come back as exit 1 with "error: ..." on stderr and no
        # output from the device; tell them apart from the command's own exit status.
        if result.returncode != 0 and result.stderr.startswith(("error:", "adb: error")):
            reason = self.unreachable()
            if reason:
                raise TargetError(reason)
        return result

    def push(self, local, remote, timeout=300):
        result = self._adb("push", str(local), remote, timeout=timeout)
        if result.returncode != 0:
            raise TargetError(f"adb push {local.name}: {_last_line(result.stderr or result.stdout)}")

    def pull(self, remote, local, timeout=300):
        result = self._adb("pull", remote, str(local), timeout=timeout)
        if result.returncode != 0:
            raise TargetError(f"adb pull {remote}: {_last_line(result.stderr or result.stdout)}")

    def unreachable(self):
        try:
            result = self._adb("get-state", timeout=15)
        except TargetError as err:
            return f"{self.name}: {err}"
        state = result.stdout.strip()
        if result.returncode != 0 or state != "device":
            return f"{self.name} is not available ({_last_line(result.stderr or result.stdout)})"
        return None


class SshTarget(Target):
    """A Linux board (Coral Dev Board, Raspberry Pi) through the OpenSSH client.

    `python` is the board's interpreter for the device runner: `python3` from the login's PATH
    unless named (a venv's, say), since a login shell's PATH is rarely the one users mean.
    """

    kind = "ssh"

    def __init__(self, destination: str, *, port: int | None = None, identity: str | None = None,
                 options: tuple[str, ...] = (), python: str = "python3"):
        self.destination = destination  # user@host
        self.port = port
        self.python = python
        self.name = f"ssh:{destination}" + (f":{port}" if port else "")
        # One directory per harness run: two runs on one board (or one host serving several
        # emulated boards) never remove each other's files.
        self.workdir = f"/tmp/tfmobile-bench-{uuid.uuid4().hex[:8]}"
        self._options = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                         "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
        if identity:
            self._options += ["-i", identity]
        for option in options:
            self._options += ["-o", option]

    SPEC = "user@host[:port][:python=PATH][:identity=KEY]"

    @classmethod
    def parse(cls, spec: str, *, python: str = "python3", identity: str | None = None,
              **kwargs) -> SshTarget:
        """`user@host`, `user@host:2222`, `pi@rpi.local:python=/home/pi/venv/bin/python3`,
        `root@board:22:identity=~/.ssh/board`: the destination, then the port and options."""
        try:
            rest, options = split_options(spec, ("python", "identity", "port"))
        except ValueError as err:
            raise ValueError(f"ssh target must be {cls.SPEC}: {err}") from None
        destination, _, port = rest.partition(":")
        port = options.get("port", port)
        if not destination or destination.startswith("-") or ":" in port or (
                port and not (port.isdigit() and 0 < int(port) < 65536)):
            raise ValueError(f"ssh target must be {cls.SPEC}, got {spec!r}")
        if "identity" in options:
            identity = os.path.expanduser(options["identity"])
        return cls(destination, port=int(port) if port else None, identity=identity,
                   python=options.get("python", python), **kwargs)

    def _ssh(self, command: str, timeout: float, stdin: bytes | None = None) -> Completed:
        argv = ["ssh", *self._options]
        if self.port:
            argv += ["-p", str(self.port)]
        result = _run(argv + [self.destination, command], timeout, stdin)
        if result.returncode == 255:  # ssh's own failure, not the command's
            raise TargetError(f"{self.name}: {_last_line(result.stderr)}")
        return result

    def shell(self, command, timeout=120):
        # The login shell waits for the command rather than exec'ing it: a command killed by a
        # signal (an illegal instruction) then exits 128 + the signal, where ssh would exit
        # 255, its own failure's status, after sshd's exit-signal.
        return self._ssh(f"{command}\nexit $?", timeout)

    def push(self, local, remote, timeout=300):
        # Through the shell rather than scp/sftp: a board's sshd may lack the sftp subsystem.
        result = self._ssh(f"cat > {shlex.quote(remote)}", timeout, stdin=local.read_bytes())
        if result.returncode != 0:
            raise TargetError(f"{self.name}: writing {remote}: {_last_line(result.stderr)}")

    def pull(self, remote, local, timeout=300):
        argv = ["ssh", *self._options] + (["-p", str(self.port)] if self.port else [])
        try:
            proc = subprocess.run(argv + [self.destination, f"cat {shlex.quote(remote)}"],
                                  capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TargetError(f"{self.name}: reading {remote} timed out") from None
        if proc.returncode != 0:
            raise TargetError(f"{self.name}: reading {remote}: "
                              f"{_last_line(proc.stderr.decode(errors='replace'))}")
        local.write_bytes(proc.stdout)

    def unreachable(self):
        try:
            result = self._ssh("true", timeout=20)
        except TargetError as err:
            return str(err)
        return None if result.returncode == 0 else f"{self.name}: {_last_line(result.stderr)}"
