"""An emulated arm64 Linux board: Debian bookworm's arm64 userland run by qemu-user.

It stands in for a Coral Dev Board or a Raspberry Pi behind ssh: the board's Python is a host
shell script (`python_command`) that runs Debian's real arm64 python3.11 under
qemu-aarch64-static, with one of two sets of packages:

  litert          numpy 2 and ai-edge-litert (the newest release with an aarch64 cp311 wheel)
  tflite_runtime  numpy 1.26 and tflite-runtime 2.14 (a Coral Dev Board, an older Pi image)

Give that script to the harness as a board's interpreter, `ssh:user@host:port:python=SCRIPT`,
with the loopback sshd of tests/standins/sshd.py as the board.

What it proves: the device runner works with a real Debian Python on aarch64, and the arm64
builds of LiteRT / tflite-runtime and numpy (their NEON / XNNPACK kernels, as far as qemu
emulates the CPU named by `cpu`) give the results the host computed.
What it does not: timings (each start of Python takes ~1.5 s, an invoke some 100-300 times
native's, nothing like a board's), the Linux kernel (syscalls, /sys and os.uname()'s release
are the host's; only its machine says aarch64), a board's drivers (no Edge TPU, no GPU).

The userland is made without a chroot or binfmt: `debootstrap --foreign` downloads the .debs,
`dpkg -x` unpacks them, and qemu's `-L ROOT` makes the emulated programs' absolute paths
(/lib/ld-linux-aarch64.so.1, /usr/lib/python3.11, /proc/cpuinfo, /etc) resolve inside ROOT
first, and elsewhere (/tmp, home directories, files the harness pushes) to the host's.
The wheels come from PyPI with `pip install --target --platform ...`. All of it is cached, keyed
by a hash of the recipe; about a minute and 450 MB the first time.

By hand, from the repository's top (tests/ is a namespace package):
  python -m tests.standins.arm64_board build [--flavour litert] [--cache DIR]
  ~/.cache/tfmobile/arm64-board/bin/python-litert-cortex-a72 android_bench/device_runner.py M
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

RELEASE = "bookworm"
PYTHON = "python3.11"  # bookworm's
# Bookworm's glibc is 2.36: a wheel tagged manylinux_2_X with X <= 36 runs there. pip takes the
# tags literally (manylinux_2_36 does not imply manylinux_2_27), so all of them are listed.
WHEEL_PLATFORMS = [f"manylinux_2_{minor}_aarch64" for minor in range(36, 16, -1)] + [
    "manylinux2014_aarch64"
]
# Pinned so that the recipe hash changes when they do.
FLAVOURS = {
    "litert": ["ai-edge-litert==2.3.0", "numpy==2.4.6"],
    "tflite_runtime": ["tflite-runtime==2.14.0", "numpy==1.26.4"],
}
# What each flavour's device runner imports (for tests that check which runtime ran).
RUNTIME_MODULE = {"litert": "ai_edge_litert", "tflite_runtime": "tflite_runtime"}
DEBIAN_PACKAGES = {"qemu-aarch64-static": "qemu-user-static", "debootstrap": "debootstrap",
                   "dpkg-deb": "dpkg"}
DEFAULT_MIRROR = "http://deb.debian.org/debian"

# qemu-user shows the emulated program the host's /proc/cpuinfo (x86 here), on which LiteRT's
# cpuinfo library crashes. Since -L redirects the read, the root carries a real board's: a
# Raspberry Pi 4 Model B Rev 1.5 under a 64-bit kernel, as posted in
# https://github.com/fastfetch-cli/fastfetch/issues/1529 (2025-02-03; the tabs the kernel
# prints, which the post turned into spaces, restored).
_PI4_CORE = """\
processor\t: {n}
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

"""
PI4_CPUINFO = "".join(_PI4_CORE.format(n=n) for n in range(4)) + (
    "Revision\t: d03115\nSerial\t\t: 100000000fe69593\nModel\t\t: Raspberry Pi 4 Model B Rev 1.5\n"
)

DEBOOTSTRAP = ["--arch=arm64", "--variant=minbase", "--foreign", "--include=python3"]
ROOT_RECIPE = repr((2, RELEASE, DEBOOTSTRAP, PI4_CPUINFO))


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _flavour_recipe(flavour: str) -> str:
    return repr((ROOT_RECIPE, FLAVOURS[flavour], WHEEL_PLATFORMS))


def default_cache_dir() -> pathlib.Path:
    base = os.environ.get("TFMOBILE_CACHE")
    return pathlib.Path(base) if base else pathlib.Path.home() / ".cache" / "tfmobile" / "arm64-board"


def unavailable(cache_dir: pathlib.Path | None = None) -> str | None:
    """Why the board cannot be made here (with the Debian packages to install), else None."""
    missing = [tool for tool in DEBIAN_PACKAGES if not shutil.which(tool)]
    if missing:
        packages = " ".join(DEBIAN_PACKAGES[tool] for tool in missing)
        return f"{', '.join(missing)} not found: apt-get install {packages}"
    # debootstrap unpacks files owned by root and makes device nodes.
    if os.geteuid() != 0 and not _root_path(cache_dir or default_cache_dir()).is_dir():
        return "building the arm64 root needs root (debootstrap); build it once as root"
    return None


def _root_path(cache_dir: pathlib.Path) -> pathlib.Path:
    return cache_dir / f"root-{_short_hash(ROOT_RECIPE)}"


@contextlib.contextmanager
def _locked(cache_dir: pathlib.Path):
    """One builder at a time per cache (pytest-xdist workers build concurrently)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def _removed_on_failure(building: pathlib.Path):
    """A failed build's directory goes (it can be hundreds of MB); its log stays."""
    try:
        yield
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def _run(step: str, argv: list[str], log: pathlib.Path, **kwargs) -> None:
    """Runs one build step with its output in `log`; a failure is one line naming the step."""
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                **kwargs)
    if result.returncode != 0:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        raise RuntimeError(f"arm64 board: {step} failed (exit {result.returncode}): "
                           f"{lines[-1].strip() if lines else 'no output'} (log: {log})")


def _debian_mirror() -> str:
    """The Debian mirror apt already uses (one-line or deb822 sources), else deb.debian.org."""
    sources = [pathlib.Path("/etc/apt/sources.list")]
    sources += sorted(pathlib.Path("/etc/apt/sources.list.d").glob("*"))
    for source in sources:
        with contextlib.suppress(OSError):
            for uri in re.findall(r"(?:^URIs:|^deb)\s+(?:\[[^]]*\]\s+)?(\S+)", source.read_text(), re.M):
                if uri.rstrip("/").endswith("/debian"):
                    return uri
    return DEFAULT_MIRROR


def _emulated_python(root: pathlib.Path, cpu: str = "cortex-a72") -> list[str]:
    return [shutil.which("qemu-aarch64-static") or "qemu-aarch64-static", "-cpu", cpu,
            "-L", str(root), str(root / "usr/bin" / PYTHON)]


def _precompile(root: pathlib.Path, directory: pathlib.Path, log: pathlib.Path) -> None:
    """Writes the .pyc files now, with the emulated Python itself: the board's Python then runs
    with PYTHONDONTWRITEBYTECODE, since under -L a new __pycache__ would be made on the host's
    /usr/lib/python3.11, and concurrent workers would race on writing them."""
    # compile_dir rather than `-m compileall`, whose exit status counts files that are not
    # Python on purpose (lib2to3's test data).
    _run(f"precompiling {directory.name}", _emulated_python(root) + [
        "-c", "import compileall, sys; compileall.compile_dir(sys.argv[1], quiet=1, workers=1)",
        str(directory)], log)


def ensure_root(cache_dir: pathlib.Path | None = None) -> pathlib.Path:
    """The arm64 Debian userland (python3 and what it needs), built once per recipe."""
    cache_dir = cache_dir or default_cache_dir()
    root = _root_path(cache_dir)
    if root.is_dir():
        return root
    reason = unavailable(cache_dir)
    if reason:
        raise RuntimeError(f"arm64 board: {reason}")
    with _locked(cache_dir):
        if root.is_dir():  # another worker built it while this one waited
            return root
        # Under the lock, leftovers of killed builds are nobody's.
        for stale in cache_dir.glob(".building-root-*"):
            shutil.rmtree(stale, ignore_errors=True)
        building = pathlib.Path(tempfile.mkdtemp(prefix=f".building-{root.name}-", dir=cache_dir))
        log = cache_dir / f"{root.name}.log"
        log.write_text("")
        with _removed_on_failure(building):
            _build_root(building, log)
        os.rename(building, root)
    return root


def _build_root(building: pathlib.Path, log: pathlib.Path) -> None:
    _run("debootstrap (downloading the arm64 .debs)",
         ["debootstrap", *DEBOOTSTRAP, RELEASE, str(building), _debian_mirror()], log)
    # --foreign unpacks only the required packages; the rest waits for a second stage that
    # would need the emulated dpkg in a chroot. Unpacking all is enough to run python3.
    archives = building / "var/cache/apt/archives"
    for deb in sorted(archives.glob("*.deb")):
        _run(f"unpacking {deb.name}", ["dpkg-deb", "-x", str(deb), str(building)], log)
        deb.unlink()
    shutil.rmtree(building / "debootstrap", ignore_errors=True)
    # An absolute path the root has shadows the host's: the board's /tmp and home directory
    # (where the harness puts its files over ssh) are to be the host's, so the empty ones go.
    for own in ("tmp", "root", "home"):
        with contextlib.suppress(OSError):
            (building / own).rmdir()
    (building / "proc").mkdir(exist_ok=True)
    (building / "proc/cpuinfo").write_text(PI4_CPUINFO)
    _precompile(building, building / "usr/lib" / PYTHON, log)


def ensure_flavour(flavour: str, cache_dir: pathlib.Path | None = None) -> pathlib.Path:
    """The site directory holding `flavour`'s wheels, inside the root (ROOT/opt/tfmobile/...)."""
    if flavour not in FLAVOURS:
        raise ValueError(f"arm64 board: flavour must be one of {sorted(FLAVOURS)}, got {flavour!r}")
    cache_dir = cache_dir or default_cache_dir()
    root = ensure_root(cache_dir)
    site = root / "opt/tfmobile" / f"{flavour}-{_short_hash(_flavour_recipe(flavour))}"
    if site.is_dir():
        return site
    with _locked(cache_dir):
        if site.is_dir():
            return site
        site.parent.mkdir(parents=True, exist_ok=True)
        for stale in site.parent.glob(f".building-{flavour}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        building = pathlib.Path(tempfile.mkdtemp(prefix=f".building-{flavour}-", dir=site.parent))
        log = cache_dir / f"{flavour}.log"
        log.write_text("")
        platforms = [arg for platform in WHEEL_PLATFORMS for arg in ("--platform", platform)]
        with _removed_on_failure(building):
            _run(f"pip install of {' '.join(FLAVOURS[flavour])} (aarch64 wheels)",
                 [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
                  "--no-warn-conflicts", "--target", str(building), *platforms,
                  "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
                  "--only-binary=:all:", *FLAVOURS[flavour]], log)
            _precompile(root, building, log)
        os.rename(building, site)
    return site


def python_command(flavour: str, cpu: str = "cortex-a72",
                   cache_dir: pathlib.Path | None = None) -> pathlib.Path:
    """An executable host script running the emulated python3.11 with `flavour`'s packages;
    it passes its arguments on, so it serves as a board's Python (`:python=SCRIPT`).

    `cpu` is qemu's -cpu: "cortex-a72" (a Raspberry Pi 4; bit-exact with x86 on XNNPACK's int8
    kernels), "cortex-a53" (a Coral Dev Board), "cortex-a76", "neoverse-n1", or "max" (every
    feature qemu has, SME included).
    """
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", cpu):
        raise ValueError(f"arm64 board: not a qemu cpu name: {cpu!r}")
    cache_dir = cache_dir or default_cache_dir()
    root = ensure_root(cache_dir)
    site = ensure_flavour(flavour, cache_dir)
    qemu, _, _, _, _, python = (shlex.quote(arg) for arg in _emulated_python(root, cpu))
    # The host's environment reaches the emulated program: drop what would point it at x86
    # libraries or another Python's modules.
    script = (
        "#!/bin/sh\n"
        f"# The emulated arm64 board's Python ({flavour}, -cpu {cpu}): tests/standins/arm64_board.py\n"
        "unset PYTHONHOME PYTHONSTARTUP LD_LIBRARY_PATH LD_PRELOAD\n"
        f"PYTHONPATH={shlex.quote(str(site))} PYTHONDONTWRITEBYTECODE=1 "
        f"exec {qemu} -cpu {cpu} -L {shlex.quote(str(root))} {python} \"$@\"\n"
    )
    command = cache_dir / "bin" / f"python-{flavour}-{cpu}"
    if not command.is_file() or command.read_text() != script:
        command.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: a worker never runs a half-written script.
        partial = command.with_name(f".{command.name}.{os.getpid()}")
        partial.write_text(script)
        partial.chmod(0o755)
        os.replace(partial, command)
    return command


def _disk_usage(path: pathlib.Path) -> int:
    return sum(entry.lstat().st_size for entry in path.rglob("*"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.standins.arm64_board",
                                     description="Builds the emulated arm64 board's cache.")
    parser.add_argument("command", choices=["build"])
    parser.add_argument("--flavour", choices=sorted(FLAVOURS), action="append",
                        help="the package sets to build (default: all)")
    parser.add_argument("--cache", type=pathlib.Path, default=None,
                        help=f"cache directory (default: $TFMOBILE_CACHE or {default_cache_dir()})")
    args = parser.parse_args(argv)
    reason = unavailable(args.cache)
    if reason:
        print(reason, file=sys.stderr)
        return 1
    cache_dir = args.cache or default_cache_dir()
    try:
        start = time.monotonic()
        root = ensure_root(cache_dir)
        print(f"root {root}: {time.monotonic() - start:.0f} s, {_disk_usage(root) / 1e6:.0f} MB in all")
        for flavour in args.flavour or sorted(FLAVOURS):
            start = time.monotonic()
            site = ensure_flavour(flavour, cache_dir)
            print(f"{flavour} {site}: {time.monotonic() - start:.0f} s, {_disk_usage(site) / 1e6:.0f} MB")
            print(f"  python: {python_command(flavour, cache_dir=cache_dir)}")
    except RuntimeError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
