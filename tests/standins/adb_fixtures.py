"""pytest fixtures: a private adb server, and a stand-in phone connected to it.

A test module opts in with ``pytest_plugins = ["standins.adb_fixtures"]`` and then asks for

- ``adb_device``: a fresh ``AdbDaemon`` on a fresh sandbox (``tmp_path / "device"``), already
  ``adb connect``-ed and online. ``.adb(*args)`` runs ``adb -s SERIAL ARGS...``; ``.env`` is the
  environment for code under test that runs adb itself (it reaches the private server, and
  ``ANDROID_SERIAL`` names this device); ``.popen(*args)`` starts an adb command in the
  background.
- ``adb_server``: the session's adb server, for devices of a test's own making::

      with AdbDaemon(tmp_path / "phone", cpus=[...], properties={...}) as daemon:
          device = adb_server.connect(daemon)
          ...
          adb_server.adb("disconnect", daemon.serial)

The server is Debian's real ``adb`` on a port of its own, with its own HOME (where it writes
``.android/adbkey``) and TMPDIR (its log), so tests never touch a developer's adb server or
phones; it is killed at the end of the session. Without an ``adb`` on PATH the fixtures skip
(the Debian package is ``adb``).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from standins.adbd import AdbDaemon

ADB = shutil.which("adb")


class AdbCommandError(subprocess.CalledProcessError):
    """An adb command failed; unlike CalledProcessError, its message shows adb's output."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout: {self.stdout}\nstderr: {self.stderr}"


@dataclasses.dataclass
class AdbServer:
    """The private adb server: ``env`` is what every adb client must run with to reach it."""

    env: dict[str, str]

    def adb(
        self, *args: str, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``adb ARGS...`` (stdin closed, output captured as text)."""
        assert ADB is not None
        result = subprocess.run(
            [ADB, *args],
            check=False,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode:
            raise AdbCommandError(result.returncode, result.args, result.stdout, result.stderr)
        return result

    def connect(self, daemon: AdbDaemon, timeout: float = 60.0) -> AdbDevice:
        """``adb connect`` to a started daemon, and wait until adb has it online."""
        output = self.adb("connect", daemon.serial, timeout=timeout).stdout
        if "connected to" not in output:  # adb connect reports failure on stdout
            raise AdbCommandError(0, ["adb", "connect", daemon.serial], output, "")
        self.adb("-s", daemon.serial, "wait-for-device", timeout=timeout)
        return AdbDevice(self, daemon)


@dataclasses.dataclass
class AdbDevice:
    """A stand-in phone online in the private adb server."""

    server: AdbServer
    daemon: AdbDaemon

    @property
    def serial(self) -> str:
        return self.daemon.serial

    @property
    def root(self) -> Path:
        return self.daemon.root

    @property
    def env(self) -> dict[str, str]:
        return {**self.server.env, "ANDROID_SERIAL": self.serial}

    def adb(
        self, *args: str, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``adb -s SERIAL ARGS...``."""
        return self.server.adb("-s", self.serial, *args, check=check, timeout=timeout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start ``adb -s SERIAL ARGS...`` in the background (stdin closed, output piped)."""
        assert ADB is not None
        return subprocess.Popen(
            [ADB, "-s", self.serial, *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def adb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdbServer]:
    if ADB is None:
        pytest.skip("no adb client on PATH (Debian package: adb)")
    home = tmp_path_factory.mktemp("adb-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ADB", "ANDROID"))}
    env.update(HOME=str(home), TMPDIR=str(home), ANDROID_ADB_SERVER_PORT=str(_free_port()))
    server = AdbServer(env)
    server.adb("start-server")
    try:
        yield server
    finally:
        server.adb("kill-server", check=False)


@pytest.fixture
def adb_device(adb_server: AdbServer, tmp_path: Path) -> Iterator[AdbDevice]:
    daemon = AdbDaemon(tmp_path / "device")
    daemon.start()
    try:
        yield adb_server.connect(daemon)
    finally:
        adb_server.adb("disconnect", daemon.serial, check=False)
        daemon.stop()
