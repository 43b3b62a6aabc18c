"""A stand-in Android device for the test suite: an adb daemon that the real ``adb`` talks to.

No phone is attached to the machines this project is tested on, yet the on-device harness
drives phones through Debian's real ``adb`` client. ``AdbDaemon`` is the device's end of that
conversation. It listens on 127.0.0.1 and speaks the ADB transport protocol as AOSP documents
it (packages/modules/adb: protocol.txt, SERVICES.TXT, SYNC.TXT, shell_protocol.h,
file_sync_protocol.h), so ``adb connect 127.0.0.1:PORT`` and then
``adb -s 127.0.0.1:PORT shell|exec-out|push|pull|ls|devices -l`` work as with a phone whose
adb authorisation is switched off.

It is a stand-in, not an emulator: commands run for real on this machine under ``/bin/sh -c``.
Only the device's filesystem is simulated, by a sandbox directory ROOT laid out like a phone's:

    device path                              on this machine
    /data /sdcard /system /sys /vendor  ->   ROOT/data, ROOT/sdcard, ROOT/system, ...
    /proc/cpuinfo                       ->   ROOT/proc/cpuinfo (Android style, from ``cpus``)
    /system/bin/getprop, taskset        ->   scripts written into the sandbox (below)
    any other path (/bin/sh, /tmp, /proc/self/status, ...) is this machine's own

- Sync requests (push, pull, ls) see nothing but the sandbox: every device path is taken
  relative to ROOT, and ``..`` cannot climb out of it.
- In shell commands the mapped prefixes are rewritten as text wherever they begin a path
  (after a space, quote, ``=`` or ``:``). A path a command builds at run time
  (``cd /; cat data/x``) is not rewritten, and output shows sandbox paths (``pwd`` prints
  ROOT/data/local/tmp). Commands start in /data/local/tmp with the sandbox's /system/bin first
  on PATH and this machine's PATH after it (the harness runs the host's python3 "on the
  device"), TMPDIR=/data/local/tmp, and no ADB*/ANDROID* variables from the test process.
- ``getprop [KEY [DEFAULT]]`` reads ROOT/system/build.prop, written from ``properties``;
  ``Sandbox.setprop`` changes it.
- ``taskset MASK CMD...`` and ``taskset -p [MASK] PID`` (toybox's forms, hex masks) pin for real:
  device CPU n runs on this machine's CPU n % cpu_count. Every request is logged so tests can
  check the pinning that was asked for (``Sandbox.pinnings``).
- /sys/devices/system/cpu holds ``possible``/``present``/``online`` and
  ``cpuN/cpufreq/cpuinfo_max_freq`` from ``cpus`` (kHz, one entry a core); thermal zones
  /sys/class/thermal/thermal_zoneN/{type,temp} come from ``thermal`` (millidegrees Celsius)
  and change with ``Sandbox.set_temperature``.

The sandbox is a convenience for tests, not a security boundary.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import fcntl
import functools
import itertools
import json
import os
import posixpath
import re
import shlex
import signal
import socket
import stat
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from enum import IntEnum
from pathlib import Path
from typing import IO, Any

# --- The transport protocol (protocol.txt) ------------------------------------------------


def _four_cc(name: bytes) -> int:
    """A message command: four ASCII letters read as a little-endian uint32."""
    return int.from_bytes(name, "little")


CNXN, OPEN, OKAY, WRTE, CLSE = map(_four_cc, (b"CNXN", b"OPEN", b"OKAY", b"WRTE", b"CLSE"))
VERSION_MIN = 0x01000000
VERSION_SKIP_CHECKSUM = 0x01000001  # from this version on, payload checksums may be 0
VERSION = VERSION_SKIP_CHECKSUM
MAX_PAYLOAD = 256 * 1024
MAX_PAYLOAD_V1 = 4096  # what old hosts assume; a host offering less is broken
FEATURES = ("shell_v2", "cmd")
_HEADER = struct.Struct("<6I")  # command, arg0, arg1, data_length, data_crc32, magic


class ShellId(IntEnum):
    """Shell protocol v2 packet ids (shell_protocol.h)."""

    STDIN = 0
    STDOUT = 1
    STDERR = 2
    EXIT = 3
    CLOSE_STDIN = 4
    WINDOW_SIZE = 5


_SHELL_HEADER = struct.Struct("<BI")  # id, data length
_SHELL_CHUNK = 64 * 1024
_SYNC_HEADER = struct.Struct("<4sI")  # id, length (SYNC.TXT)
_SYNC_STAT = struct.Struct("<4sIII")  # STAT, mode, size, mtime
_SYNC_DENT = struct.Struct("<4sIIII")  # DENT, mode, size, mtime, name length
SYNC_DATA_MAX = 64 * 1024
SYNC_PATH_MAX = 1024


class ProtocolError(Exception):
    """The host broke the protocol; the connection (or the sync session) is dropped."""


class StreamClosed(ConnectionError):
    """The stream was closed, by either end, while a service was still using it."""


# --- The device's filesystem -------------------------------------------------------------

DEFAULT_PROPERTIES: Mapping[str, str] = {
    "ro.product.manufacturer": "tfmobile",
    "ro.product.model": "StandIn",
    "ro.product.name": "standin",
    "ro.product.device": "standin",
    "ro.hardware": "standin",
    "ro.board.platform": "standin",
    "ro.soc.model": "StandIn-8",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.build.version.release": "14",
    "ro.build.version.sdk": "34",
}
DEFAULT_CPUS = (1_800_000,) * 4 + (2_800_000,) * 4  # big.LITTLE: 4 little, then 4 big cores
DEFAULT_THERMAL: Mapping[str, int] = {"cpu-thermal": 45_000, "battery": 31_000}

_GETPROP = '''\
#!{python}
"""getprop for the adbd stand-in: the properties in this sandbox's /system/build.prop."""
import pathlib
import sys

build_prop = pathlib.Path(__file__).resolve().parents[1] / "build.prop"
props = dict(line.split("=", 1) for line in build_prop.read_text().splitlines() if "=" in line)
if len(sys.argv) > 1:
    print(props.get(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""))
else:
    for key in sorted(props):
        print(f"[{{key}}]: [{{props[key]}}]")
'''

_TASKSET = '''\
#!{python}
"""taskset for the adbd stand-in, in toybox's forms: taskset [-a] MASK CMD [ARG...] and
taskset -p [-a] [MASK] PID, MASK in hex. Device CPU n is pinned onto this machine's CPU
n % cpu_count, and each request is logged for the tests."""
import json
import os
import pathlib
import sys

args = sys.argv[1:]
flags = ""
while args and args[0].startswith("-") and len(args[0]) > 1:
    flags += args.pop(0)[1:]
pid_form = "p" in flags
if set(flags) - set("ap") or not (0 < len(args) <= 2 if pid_form else len(args) >= 2):
    sys.exit("usage: taskset [-ap] [mask] [PID | cmd [args...]]")


def show(pid, which):
    mask = sum(1 << cpu for cpu in os.sched_getaffinity(pid))
    print(f"pid {{pid}}'s {{which}} affinity mask: {{mask:x}}")


if len(args) == 1:
    show(int(args[0]), "current")
    sys.exit()
try:
    mask = int(args[0], 16)
except ValueError:
    mask = 0
device_cpus = [cpu for cpu in range(mask.bit_length()) if mask >> cpu & 1]
if not device_cpus:
    sys.exit(f"taskset: bad mask '{{args[0]}}'")
host_cpus = sorted({{cpu % os.cpu_count() for cpu in device_cpus}})
pid, argv = (int(args[1]), []) if pid_form else (os.getpid(), args[1:])
log = pathlib.Path(__file__).resolve().parents[2] / ".standin" / "taskset.log"
with log.open("a") as entries:
    entries.write(json.dumps(dict(mask=mask, device_cpus=device_cpus, host_cpus=host_cpus,
                                  pid=pid, argv=argv)) + "\\n")
if argv:
    os.sched_setaffinity(0, host_cpus)
    try:
        os.execvp(argv[0], argv)
    except OSError as error:
        print(f"taskset: {{argv[0]}}: {{error.strerror}}", file=sys.stderr)
        sys.exit(127)
show(pid, "current")
for task in os.listdir(f"/proc/{{pid}}/task") if "a" in flags else [pid]:
    os.sched_setaffinity(int(task), host_cpus)
show(pid, "new")
'''


@dataclasses.dataclass(frozen=True)
class Pinning:
    """One taskset request made on the device."""

    mask: int  # the device CPU mask asked for
    device_cpus: tuple[int, ...]
    host_cpus: tuple[int, ...]  # where it really ran
    pid: int
    argv: tuple[str, ...]  # the command started pinned; empty for taskset -p


class Sandbox:
    """The device's filesystem: a directory on this machine laid out like a phone's."""

    MAPPED = ("data", "sdcard", "system", "sys", "vendor", "proc/cpuinfo")

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        properties: Mapping[str, str],
        cpus: Sequence[int],
        thermal: Mapping[str, int],
    ) -> None:
        self.root = Path(root).resolve()
        if shlex.quote(str(self.root)) != str(self.root):
            # The root is spliced into shell commands unquoted.
            raise ValueError(f"the sandbox root must be a shell-safe path: {self.root}")
        self.properties = dict(properties)
        self._zones = list(thermal)
        prefixes = "|".join(map(re.escape, self.MAPPED))
        self._device_path = re.compile(rf"(?<![\w.~/-])/(?:{prefixes})(?![\w.-])")
        self._lay_out(cpus, thermal)

    @property
    def cwd(self) -> Path:
        """Where commands start: the sandbox's /data/local/tmp."""
        return self.root / "data/local/tmp"

    def host_path(self, device_path: str) -> str:
        """The sandbox path for a device path (a trailing slash is kept: it means 'directory')."""
        normal = posixpath.normpath("/" + device_path.lstrip("/"))
        slash = "/" if device_path.endswith("/") and normal != "/" else ""
        return f"{self.root}{normal}{slash}"

    def rewrite(self, command: str) -> str:
        """A shell command with its device paths moved into the sandbox."""
        return self._device_path.sub(lambda match: f"{self.root}{match.group()}", command)

    def environment(self) -> dict[str, str]:
        """The environment commands run in (see the module docstring)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ADB", "ANDROID"))}
        env["PATH"] = os.pathsep.join([str(self.root / "system/bin"), env.get("PATH", os.defpath)])
        env["TMPDIR"] = str(self.cwd)
        return env

    def setprop(self, key: str, value: str) -> None:
        """Set a system property, as getprop on the device will report it."""
        self.properties[key] = value
        self._write_properties()

    def set_temperature(self, zone_type: str, millidegrees: int) -> None:
        """Change the temperature a thermal zone reports (millidegrees Celsius)."""
        zone = self.root / f"sys/class/thermal/thermal_zone{self._zones.index(zone_type)}"
        _write(zone / "temp", millidegrees)

    def pinnings(self) -> list[Pinning]:
        """Every taskset request made on the device so far, oldest first."""
        log = self.root / ".standin/taskset.log"
        if not log.exists():
            return []
        entries = map(json.loads, log.read_text().splitlines())
        return [
            Pinning(
                mask=entry["mask"],
                device_cpus=tuple(entry["device_cpus"]),
                host_cpus=tuple(entry["host_cpus"]),
                pid=entry["pid"],
                argv=tuple(entry["argv"]),
            )
            for entry in entries
        ]

    def _write_properties(self) -> None:
        lines = (f"{key}={value}" for key, value in self.properties.items())
        _write(self.root / "system/build.prop", "\n".join(lines))

    def _lay_out(self, cpus: Sequence[int], thermal: Mapping[str, int]) -> None:
        for directory in ("data/local/tmp", "sdcard", "system/bin", "vendor", ".standin"):
            (self.root / directory).mkdir(parents=True, exist_ok=True)
        self._write_properties()
        for name, source in (("getprop", _GETPROP), ("taskset", _TASKSET)):
            script = source.format(python=sys.executable)
            _write(self.root / "system/bin" / name, script, mode=0o755)
        cpu = self.root / "sys/devices/system/cpu"
        span = f"0-{len(cpus) - 1}" if len(cpus) > 1 else "0"
        for name in ("possible", "present", "online"):
            _write(cpu / name, span)
        for n, khz in enumerate(cpus):
            _write(cpu / f"cpu{n}/cpufreq/cpuinfo_max_freq", khz)
        for n, (zone_type, millidegrees) in enumerate(thermal.items()):
            _write(self.root / f"sys/class/thermal/thermal_zone{n}/type", zone_type)
            _write(self.root / f"sys/class/thermal/thermal_zone{n}/temp", millidegrees)
        processors = "".join(
            f"processor\t: {n}\nBogoMIPS\t: 38.40\nFeatures\t: fp asimd aes pmull sha1 sha2 crc32 "
            "atomics fphp asimdhp asimddp\nCPU architecture: 8\n\n"
            for n in range(len(cpus))
        )
        hardware = self.properties["ro.soc.model"]
        _write(self.root / "proc/cpuinfo", f"{processors}Hardware\t: {hardware}")


def _write(path: Path, value: object, mode: int = 0o644) -> None:
    """Replace a file atomically, so a command reading it meanwhile never sees it half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(f"{value}\n")
    partial.chmod(mode)
    partial.replace(path)


# --- Streams and connections -------------------------------------------------------------


class _Stream:
    """The device's end of one ADB stream.

    Flow control is ADB's, one WRTE in flight each way: ``write`` waits for the host's OKAY
    before it sends the next WRTE, and a WRTE from the host is acknowledged only when a
    service takes it with ``recv``. A service that stops reading thus stops the host from
    sending, as with real adbd, and nothing queues up in memory.
    """

    def __init__(self, connection: _Connection, local_id: int, remote_id: int) -> None:
        self.local_id = local_id
        self.remote_id = remote_id
        self._hung_up = False  # closed by the host, or the connection dropped
        self._connection = connection
        self._changed = threading.Condition()
        self._inbox: collections.deque[bytes] = collections.deque()
        self._buffer = bytearray()  # what read_exact has received but not yet returned
        self._acknowledged = True  # the host's OPEN counts as its first OKAY
        self._closed = False
        self._on_hang_up: Callable[[], None] | None = None
        self._writing = threading.Lock()

    # Called from the connection's reader thread.

    def deliver(self, data: bytes) -> None:
        with self._changed:
            self._inbox.append(data)
            self._changed.notify_all()

    def acknowledge(self) -> None:
        with self._changed:
            self._acknowledged = True
            self._changed.notify_all()

    def hang_up(self) -> None:
        with self._changed:
            if self._closed:
                return
            self._closed = self._hung_up = True
            self._changed.notify_all()
            callback = self._on_hang_up
        if callback:
            callback()

    # Called from services.

    def on_hang_up(self, callback: Callable[[], None]) -> None:
        """Have ``callback`` run when the host hangs up (at once if it already has)."""
        with self._changed:
            self._on_hang_up = callback
            hung_up = self._hung_up
        if hung_up:
            callback()

    def recv(self) -> bytes:
        """The host's next WRTE payload, or b"" once the stream is closed."""
        with self._changed:
            self._changed.wait_for(lambda: self._inbox or self._closed)
            if not self._inbox:
                return b""
            data = self._inbox.popleft()
            closed = self._closed
        if not closed:
            with contextlib.suppress(OSError):  # a dead connection hangs us up by itself
                self._connection.send(OKAY, self.local_id, self.remote_id)
        return data

    def read_exact(self, size: int) -> bytes:
        """Exactly ``size`` bytes of the host's data; EOFError if the stream ends first."""
        while len(self._buffer) < size:
            data = self.recv()
            if not data:
                raise EOFError(f"stream closed with {len(self._buffer)} of {size} bytes read")
            self._buffer += data
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def write(self, data: bytes) -> None:
        """Send ``data`` in WRTE messages of the negotiated size; StreamClosed if closed."""
        view = memoryview(data)
        size = self._connection.max_payload
        with self._writing:
            for start in range(0, len(view), size):
                with self._changed:
                    self._changed.wait_for(lambda: self._acknowledged or self._closed)
                    if self._closed:
                        raise StreamClosed(f"stream {self.local_id} is closed")
                    self._acknowledged = False
                chunk = view[start : start + size]
                self._connection.send(WRTE, self.local_id, self.remote_id, chunk)

    def close(self) -> None:
        """Close from the device's side (a no-op if already closed)."""
        with self._changed:
            if self._closed:
                return
            self._closed = True
            self._changed.notify_all()
        self._connection.forget(self)
        with contextlib.suppress(OSError):
            self._connection.send(CLSE, self.local_id, self.remote_id)


class _Connection:
    """One host connection: the CNXN handshake, then streams multiplexed on one socket."""

    def __init__(self, daemon: AdbDaemon, sock: socket.socket) -> None:
        self.max_payload = MAX_PAYLOAD
        self._daemon = daemon
        self._sock = sock
        self._reader = sock.makefile("rb")
        self._sending = threading.Lock()
        self._streams: dict[int, _Stream] = {}
        self._streams_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._online = False
        self._checksums = True  # until the host's CNXN shows it can do without

    def send(self, command: int, arg0: int, arg1: int, payload: bytes | memoryview = b"") -> None:
        checksum = sum(payload) & 0xFFFFFFFF if self._checksums else 0
        header = _HEADER.pack(command, arg0, arg1, len(payload), checksum, command ^ 0xFFFFFFFF)
        with self._sending:
            self._sock.sendall(header + payload)

    def serve(self) -> None:
        """Read and act on the host's messages until the connection ends."""
        try:
            while True:
                self._dispatch(*self._receive())
        except (OSError, EOFError, ProtocolError):
            pass  # the host went away or broke the protocol: either ends the connection
        finally:
            self._reader.close()
            self._sock.close()
            with self._streams_lock:
                streams = list(self._streams.values())
                self._streams.clear()
            for stream in streams:
                stream.hang_up()

    def close(self, *, abort: bool = False) -> None:
        """End the connection: FIN, or with ``abort`` an RST as from a yanked cable."""
        with contextlib.suppress(OSError):
            if abort:
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self._sock.shutdown(socket.SHUT_RD)  # wakes the reader, whose close() sends the RST
            else:
                self._sock.shutdown(socket.SHUT_RDWR)

    def forget(self, stream: _Stream) -> None:
        with self._streams_lock:
            self._streams.pop(stream.local_id, None)

    def _receive(self) -> tuple[int, int, int, bytes]:
        header = self._read(_HEADER.size)
        command, arg0, arg1, length, checksum, magic = _HEADER.unpack(header)
        if magic != command ^ 0xFFFFFFFF or length > MAX_PAYLOAD:
            raise ProtocolError(f"bad message header {header.hex()}")
        payload = self._read(length)
        if checksum and checksum != sum(payload) & 0xFFFFFFFF:
            raise ProtocolError("payload checksum mismatch")
        return command, arg0, arg1, payload

    def _read(self, size: int) -> bytes:
        data = self._reader.read(size)
        if len(data) < size:
            raise EOFError("the host closed the connection")
        return data

    def _dispatch(self, command: int, arg0: int, arg1: int, payload: bytes) -> None:
        if command == CNXN:
            self._connect(version=arg0, max_payload=arg1)
        elif not self._online:
            pass  # protocol.txt: messages before CONNECT are ignored
        elif command == OPEN:
            self._open(arg0, payload.rstrip(b"\0").decode(errors="replace"))
        elif command in (OKAY, WRTE, CLSE):
            with self._streams_lock:
                stream = self._streams.get(arg1)
                if command == CLSE:
                    self._streams.pop(arg1, None)
            if stream is None:
                return  # for a stream closed meanwhile: ignored, as protocol.txt says
            if command == OKAY:
                stream.acknowledge()
            elif command == WRTE:
                stream.deliver(payload)
            else:
                stream.hang_up()
        else:
            raise ProtocolError(f"unexpected command {command:#010x}")

    def _connect(self, version: int, max_payload: int) -> None:
        if version < VERSION_MIN or max_payload < MAX_PAYLOAD_V1:
            raise ProtocolError(f"unsupported host: version {version:#x}, maxdata {max_payload}")
        self._checksums = version < VERSION_SKIP_CHECKSUM
        self.max_payload = min(max_payload, MAX_PAYLOAD)
        self.send(CNXN, VERSION, MAX_PAYLOAD, self._daemon.banner().encode())
        self._online = True

    def _open(self, remote_id: int, name: str) -> None:
        service = self._daemon._service(name)
        if service is None:
            self.send(CLSE, 0, remote_id)
            return
        stream = _Stream(self, next(self._ids), remote_id)
        with self._streams_lock:
            self._streams[stream.local_id] = stream
        self.send(OKAY, stream.local_id, remote_id)
        self._daemon._thread(_serve, service, stream)


def _serve(service: Callable[[_Stream], None], stream: _Stream) -> None:
    """Run one service on its stream; a host that leaves early is no error."""
    try:
        service(stream)
    except (OSError, EOFError, ProtocolError):
        pass
    finally:
        stream.close()


# --- Services (SERVICES.TXT) -------------------------------------------------------------


_Outputs = list[tuple[IO[bytes], ShellId]]


class _ShellSession:
    """``shell``/``exec``: one command under /bin/sh, talking to the host over the stream.

    With ``v2`` among the options, stdin, stdout, stderr and the exit code travel in shell
    protocol packets. Without it (``shell:``, ``exec:``, ``adb shell -x``) the stream is raw
    bytes both ways, stderr merged into stdout and no exit code, as from real adbd. A pty is
    used when ``pty`` is asked for, or for an interactive shell when neither ``raw`` nor
    ``pty`` is (real adbd's rule).
    """

    def __init__(
        self, daemon: AdbDaemon, stream: _Stream, service: str, options: list[str], command: str
    ) -> None:
        self._daemon = daemon
        self._stream = stream
        self._v2 = "v2" in options
        wants_pty = "pty" in options or ("raw" not in options and not command)
        self._pty = service == "shell" and wants_pty
        self._argv = ["/bin/sh", "-c", daemon.sandbox.rewrite(command)] if command else ["/bin/sh"]
        self._env = daemon.sandbox.environment()
        for option in options:
            if option.startswith("TERM="):
                self._env["TERM"] = option.removeprefix("TERM=")

    def run(self) -> None:
        process, stdin, outputs = self._start()
        if self._v2 or self._pty:
            # The host hanging up ends the command, as closing its terminal would. A raw v1
            # stream's command gets EOF on stdin instead: `adb exec-in "cat > f"` relies on it.
            self._stream.on_hang_up(functools.partial(_signal_group, process, signal.SIGHUP))
        try:
            self._daemon._thread(self._pump_input, stdin)  # ends with the stream
            for pump in [self._daemon._thread(self._pump_output, *output) for output in outputs]:
                pump.join()
            code = process.wait()
            if self._v2:  # death by signal N is reported as 128 + N, as shells do
                self._send(ShellId.EXIT, bytes([(128 - code if code < 0 else code) & 0xFF]))
        finally:
            self._daemon._forget(process)

    def _start(self) -> tuple[subprocess.Popen[bytes], IO[bytes], _Outputs]:
        """Start the command: its stdin, and its outputs with the packet id each goes out as."""
        if self._pty:
            master, slave = os.openpty()
            # Each pump owns (and closes) its own descriptor of the pty.
            output = os.fdopen(master, "rb", buffering=0)
            stdin = os.fdopen(os.dup(master), "wb", buffering=0)
            try:
                process = self._daemon._spawn(
                    self._argv, self._env, stdin=slave, stdout=slave, stderr=slave
                )
            except BaseException:
                output.close()
                stdin.close()
                raise
            finally:
                os.close(slave)
            return process, stdin, [(output, ShellId.STDOUT)]
        pipe, merged = subprocess.PIPE, subprocess.STDOUT
        process = self._daemon._spawn(
            self._argv, self._env, stdin=pipe, stdout=pipe, stderr=pipe if self._v2 else merged
        )
        assert process.stdin and process.stdout  # asked for as pipes
        outputs: _Outputs = [(process.stdout, ShellId.STDOUT)]
        if process.stderr:
            outputs.append((process.stderr, ShellId.STDERR))
        return process, process.stdin, outputs

    def _send(self, packet_id: ShellId, data: bytes) -> None:
        self._stream.write(_SHELL_HEADER.pack(packet_id, len(data)) + data if self._v2 else data)

    def _pump_output(self, output: IO[bytes], packet_id: ShellId) -> None:
        with output:
            try:
                while data := output.read(_SHELL_CHUNK):
                    self._send(packet_id, data)
            except OSError:  # EIO from a pty whose last user has gone, or the host left
                pass  # (closing our end then gives the command EPIPE)

    def _pump_input(self, stdin: IO[bytes]) -> None:
        """Pass the host's input to the command until the stream ends."""
        with stdin:
            for packet_id, data in self._incoming():
                if packet_id == ShellId.STDIN and not stdin.closed:
                    try:
                        _write_all(stdin, data)
                    except OSError:  # the command stopped reading (EPIPE, or EIO from a pty)
                        stdin.close()  # so the rest is dropped
                elif packet_id == ShellId.CLOSE_STDIN and not self._pty:  # a pty has no EOF to give
                    stdin.close()
                elif packet_id == ShellId.WINDOW_SIZE and self._pty:
                    self._resize(stdin, data)

    def _incoming(self) -> Iterator[tuple[int, bytes]]:
        """The host's input as (packet id, data) pairs; raw input is all stdin."""
        try:
            while True:
                if self._v2:
                    header = self._stream.read_exact(_SHELL_HEADER.size)
                    packet_id, length = _SHELL_HEADER.unpack(header)
                    yield packet_id, self._stream.read_exact(length)
                elif data := self._stream.recv():
                    yield ShellId.STDIN, data
                else:
                    return
        except EOFError:
            return

    @staticmethod
    def _resize(pty: IO[bytes], data: bytes) -> None:
        """Apply a window-size packet, "ROWSxCOLS,XPIXELSxYPIXELS" as the client sends it."""
        if size := re.match(rb"(\d+)x(\d+),(\d+)x(\d+)", data):
            winsize = struct.pack("4H", *(int(n) for n in size.groups()))
            fcntl.ioctl(pty.fileno(), termios.TIOCSWINSZ, winsize)


def _write_all(stdin: IO[bytes], data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[stdin.write(view) :]


def _signal_group(process: subprocess.Popen[bytes], signal_number: int) -> None:
    """Signal a command and everything it started (it leads its own process group).

    Only while the command is unreaped: until then its pid, the group's id, cannot be reused.
    """
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal_number)


def _serve_sync(sandbox: Sandbox, stream: _Stream) -> None:
    """``sync:``, behind adb push/pull/ls: requests one after another until QUIT (SYNC.TXT)."""
    handlers = {b"STAT": _sync_stat, b"LIST": _sync_list, b"RECV": _sync_recv, b"SEND": _sync_send}
    while True:
        request, length = _SYNC_HEADER.unpack(stream.read_exact(_SYNC_HEADER.size))
        if request == b"QUIT":
            return
        if request not in handlers or length > SYNC_PATH_MAX:
            _sync_fail(stream, f"unsupported sync request {request!r} of length {length}")
            return
        handlers[request](sandbox, stream, os.fsdecode(stream.read_exact(length)))


def _sync_stat(sandbox: Sandbox, stream: _Stream, path: str) -> None:
    """STAT (v1, an lstat): mode, size and mtime, all zero when the path does not exist."""
    try:
        st = os.lstat(sandbox.host_path(path))
        mode_size_time = (st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))
    except OSError:
        mode_size_time = (0, 0, 0)
    stream.write(_SYNC_STAT.pack(b"STAT", *mode_size_time))


def _sync_list(sandbox: Sandbox, stream: _Stream, path: str) -> None:
    """LIST: a DENT for each directory entry (none if it cannot be read), then DONE."""
    dents = []
    with contextlib.suppress(OSError), os.scandir(sandbox.host_path(path)) as entries:
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            name = os.fsencode(entry.name)
            mode_size_time = (st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))
            dents.append(_SYNC_DENT.pack(b"DENT", *mode_size_time, len(name)) + name)
    stream.write(b"".join(dents) + _SYNC_DENT.pack(b"DONE", 0, 0, 0, 0))


def _sync_recv(sandbox: Sandbox, stream: _Stream, path: str) -> None:
    """RECV: the file in DATA chunks of at most 64 KiB, then DONE; or FAIL."""
    try:
        source = open(sandbox.host_path(path), "rb")
    except OSError as error:
        _sync_fail(stream, error.strerror or str(error))
        return
    with source:
        while chunk := source.read(SYNC_DATA_MAX):
            stream.write(_SYNC_HEADER.pack(b"DATA", len(chunk)) + chunk)
    stream.write(_SYNC_HEADER.pack(b"DONE", 0))


def _sync_send(sandbox: Sandbox, stream: _Stream, path_and_mode: str) -> None:
    """SEND "path,mode": DATA chunks, then DONE(mtime); answered with OKAY or FAIL.

    Like adbd, missing parent directories are created and an existing file is replaced, not
    rewritten in place (a binary still running from it is left intact); a symlink's DATA is
    its target.
    """
    path, _, mode = path_and_mode.rpartition(",")
    chunks = []
    while True:
        request, length = _SYNC_HEADER.unpack(stream.read_exact(_SYNC_HEADER.size))
        if request != b"DATA":
            break
        chunks.append(stream.read_exact(length))
    if request != b"DONE" or not mode.isdigit():
        _sync_fail(stream, f"bad SEND of {path_and_mode!r}: {request!r}")
        raise ProtocolError(f"SEND ended by {request!r}")
    target, data, mtime = sandbox.host_path(path), b"".join(chunks), length
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            os.unlink(target)
        if stat.S_ISLNK(int(mode)):
            os.symlink(os.fsdecode(data.rstrip(b"\0")), target)
        else:
            Path(target).write_bytes(data)
            os.chmod(target, stat.S_IMODE(int(mode)))
            os.utime(target, (mtime, mtime))
    except OSError as error:
        _sync_fail(stream, error.strerror or str(error))
    else:
        stream.write(_SYNC_HEADER.pack(b"OKAY", 0))


def _sync_fail(stream: _Stream, message: str) -> None:
    reason = message.encode()
    stream.write(_SYNC_HEADER.pack(b"FAIL", len(reason)) + reason)


# --- The daemon --------------------------------------------------------------------------


class AdbDaemon:
    """A phone with adb over TCP (auth off) on 127.0.0.1, whose filesystem is ``root``.

    ``start()`` listens (on ``port``, or a free one) and returns the port; ``serial`` is what
    adb calls the device once connected. ``requests`` lists every service the host opened,
    in order (e.g. "shell,v2,raw:getprop ro.product.model", "sync:").
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        properties: Mapping[str, str] | None = None,
        cpus: Sequence[int] = DEFAULT_CPUS,
        thermal: Mapping[str, int] | None = None,
        port: int = 0,
    ) -> None:
        self.sandbox = Sandbox(
            root,
            properties={**DEFAULT_PROPERTIES, **(properties or {})},
            cpus=cpus,
            thermal=DEFAULT_THERMAL if thermal is None else thermal,
        )
        self.requests: list[str] = []
        self._port = port
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._connections: set[_Connection] = set()
        self._children: set[subprocess.Popen[bytes]] = set()
        self._threads: list[threading.Thread] = []

    @property
    def root(self) -> Path:
        return self.sandbox.root

    @property
    def port(self) -> int:
        return self._port

    @property
    def serial(self) -> str:
        return f"127.0.0.1:{self._port}"

    def start(self) -> int:
        """Listen on 127.0.0.1 and serve from background threads; returns the port."""
        self._listener = socket.create_server(("127.0.0.1", self._port))
        self._port = self._listener.getsockname()[1]
        self._thread(self._accept, self._listener)
        return self._port

    def stop(self) -> None:
        """Shut down cleanly: connections closed (FIN), commands killed, every thread joined."""
        self._shut_down(abort=False)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=10)
        if running := [thread.name for thread in threads if thread.is_alive()]:
            raise RuntimeError(f"adbd stand-in threads still running after stop(): {running}")

    def kill(self) -> None:
        """Die like a phone yanked off its cable, and return at once.

        Every connection gets an RST and every command SIGKILL, and the port closes (adb's
        attempts to reconnect are refused). ``stop()`` may follow, to join the threads.
        """
        self._shut_down(abort=True)

    def __enter__(self) -> AdbDaemon:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def banner(self) -> str:
        """The CNXN identity: device state, the product properties, and our features."""
        product = ("ro.product.name", "ro.product.model", "ro.product.device")
        props = [f"{key}={self.sandbox.properties[key]}" for key in product]
        return "device::" + ";".join([*props, "features=" + ",".join(FEATURES)])

    def _service(self, name: str) -> Callable[[_Stream], None] | None:
        """Record a request for a service and return it, or None if the stand-in has none."""
        self.requests.append(name)
        head, colon, command = name.partition(":")
        kind, *options = head.split(",")
        if kind == "sync" and colon and not options and not command:
            return functools.partial(_serve_sync, self.sandbox)
        if kind in ("shell", "exec") and colon:
            return lambda stream: _ShellSession(self, stream, kind, options, command).run()
        return None

    def _spawn(self, argv: list[str], env: dict[str, str], **stdio: Any) -> subprocess.Popen[bytes]:
        """Start a device command, unless the daemon is shut down.

        The command leads a process group of its own, so that a hang-up or ``kill()`` reaches
        whatever it starts too.
        """
        with self._lock:
            if self._stopped:
                raise ConnectionAbortedError("the stand-in daemon is shut down")
            process = subprocess.Popen(
                argv, bufsize=0, cwd=self.sandbox.cwd, env=env, start_new_session=True, **stdio
            )
            self._children.add(process)
        return process

    def _forget(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._children.discard(process)

    def _thread(self, target: Callable[..., object], *args: object) -> threading.Thread:
        """Start a daemon thread that ``stop()`` will join."""
        name = f"adbd-{self._port}-{getattr(target, '__name__', 'service')}"
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()
        return thread

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return  # the listener was closed by stop() or kill()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._stopped:
                    sock.close()
                    return
                connection = _Connection(self, sock)
                self._connections.add(connection)
            self._thread(self._serve_connection, connection)

    def _serve_connection(self, connection: _Connection) -> None:
        try:
            connection.serve()
        finally:
            with self._lock:
                self._connections.discard(connection)

    def _shut_down(self, *, abort: bool) -> None:
        with self._lock:
            self._stopped = True
            connections, children = list(self._connections), list(self._children)
        if self._listener:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
            self._listener.close()
        for connection in connections:
            connection.close(abort=abort)
        for process in children:
            _signal_group(process, signal.SIGKILL)
