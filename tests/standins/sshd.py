"""A real OpenSSH server on loopback, standing in for a Linux board (Coral, Raspberry Pi).

It is Debian's `sshd` (openssh-server), started unprivileged-style with its own config, host
key and authorized key in a temporary directory; the harness reaches it with the real `ssh`
client exactly as it reaches a board. The login's PATH is whatever this machine's shell gives
it (a system python3 without LiteRT, or pyenv's), as on a board: tests name the interpreter
that has LiteRT (the test run's own) with `:python=`, as users name a board's venv.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import pathlib
import shutil
import socket
import subprocess
import time

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@dataclasses.dataclass
class Board:
    user: str
    port: int
    identity: pathlib.Path
    options: tuple[str, ...]
    process: subprocess.Popen

    @property
    def spec(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    def target(self, python: str) -> str:
        """The --targets entry naming the port, the key and the board's Python."""
        return f"ssh:{self.spec}:identity={self.identity}:python={python}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(workdir: pathlib.Path) -> Board:
    """Starts sshd on a free loopback port; raises RuntimeError when it cannot."""
    if not os.path.exists(SSHD):
        raise RuntimeError("sshd not found: install Debian's openssh-server")
    workdir.mkdir(parents=True, exist_ok=True)
    host_key, client_key = workdir / "host_ed25519", workdir / "client_ed25519"
    for key in (host_key, client_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (workdir / "authorized_keys").write_text((client_key.with_suffix(".pub")).read_text())
    port = _free_port()
    config = workdir / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"AuthorizedKeysFile {workdir / 'authorized_keys'}",
                f"PidFile {workdir / 'sshd.pid'}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "PermitRootLogin prohibit-password",
                "Subsystem sftp internal-sftp",
                "LogLevel ERROR",
                "",
            ]
        )
    )
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation directory
    process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    known_hosts = workdir / "known_hosts"
    options = (
        f"UserKnownHostsFile={known_hosts}",
        "StrictHostKeyChecking=accept-new",
        "LogLevel=ERROR",
    )
    board = Board(getpass.getuser(), port, client_key, options, process)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited: {process.stderr.read().decode().strip()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return board
        time.sleep(0.1)
    board.stop()
    raise RuntimeError("sshd did not start listening within 20 s")
