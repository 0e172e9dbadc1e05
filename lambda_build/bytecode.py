"""Ship byte code compiled for the Lambda's interpreter, so a cold start does not compile every import.

Lambda's ``/var/task`` is read-only: a module without a matching ``__pycache__/*.cpython-XY.pyc`` is compiled
in memory on every cold start (measured by ``python -m bench``, imports of numpy + Pillow + onnxruntime + the
detection core for D-FINE-S: 0.20 s with byte code, 0.91 s without). Byte code is specific to one Python
MAJOR.MINOR, so it is made by the Lambda-equivalent interpreter (:mod:`lambda_python`, CPython 3.13) for the
python3.13 runtime — provisioned on demand, never skipped. Both architectures get the byte code of the x86_64 build
of that Debian CPython (the same source and version as the arm64 one; the arm64 parity test imports it under qemu).
Another ``--python`` uses ``pythonX.Y`` on PATH if there is one, else the package ships sources only and says so.

The ``.pyc`` files are *unchecked-hash* (PEP 552): the runtime uses them without comparing the source's mtime,
which a zip keeps at only 2 s resolution, and the archive stays reproducible (no timestamps inside).

Example:
    >>> cache_tag("3.13")
    'cpython-313'
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from lambda_python import PYTHON_VERSION, InterpreterUnavailable, LambdaPython, ensure_interpreter

LAMBDA_TASK_ROOT = "/var/task"


class BytecodeError(RuntimeError):
    """Compiling the package failed (or its interpreter is unavailable); the message names the files."""


@dataclass(frozen=True)
class Compiler:
    """An interpreter of the target's Python: argv prefix, environment and a label for logs and fingerprints."""

    command: tuple[str, ...]
    env: dict[str, str] | None
    label: str  # "CPython 3.13.5 (lambda_python x86_64)" | "/usr/bin/python3.12"

    @classmethod
    def from_lambda_python(cls, python: LambdaPython) -> "Compiler":
        return cls(tuple(python.command()), python.env(), f"CPython {python.version} (lambda_python {python.arch})")


@dataclass(frozen=True)
class BytecodeReport:
    interpreter: str | None  # None: no interpreter of the target's version was found
    tag: str | None          # "cpython-313"
    files: int               # .pyc written


def cache_tag(python: str) -> str:
    return "cpython-" + python.replace(".", "")


def find_interpreter(python: str) -> Compiler | None:
    """A CPython ``MAJOR.MINOR`` compiler: the Lambda-equivalent one for :data:`PYTHON_VERSION` (provisioned now if
    needed; :class:`BytecodeError` when it cannot be), else this interpreter or ``pythonX.Y`` on PATH, else None."""
    if python == PYTHON_VERSION:
        try:
            return Compiler.from_lambda_python(ensure_interpreter("x86_64"))
        except InterpreterUnavailable as error:
            raise BytecodeError(str(error)) from None
    if f"{sys.version_info.major}.{sys.version_info.minor}" == python and sys.implementation.name == "cpython":
        return Compiler((sys.executable,), None, sys.executable)
    found = shutil.which(f"python{python}")
    if found is None:
        return None
    probe = subprocess.run([found, "-c", "import sys; print(sys.implementation.cache_tag)"],
                           capture_output=True, text=True, timeout=60)
    return Compiler((found,), None, found) if probe.returncode == 0 and probe.stdout.strip() == cache_tag(python) \
        else None


def compile_tree(site_dir: Path, *, python: str, interpreter: Compiler | None = None) -> BytecodeReport:
    """Write unchecked-hash ``.pyc`` for every ``.py`` under ``site_dir`` with a ``python`` interpreter."""
    interpreter = interpreter or find_interpreter(python)
    if interpreter is None:
        return BytecodeReport(interpreter=None, tag=None, files=0)
    # -I: no user site or PYTHON* variables; -q: list only failures; -j 0: all CPUs; -s/-p: record the paths
    # as /var/task/... (where Lambda unpacks the zip), not this build folder, so the zip stays reproducible
    command = [*interpreter.command, "-I", "-m", "compileall", "-q", "-j", "0", "--invalidation-mode",
               "unchecked-hash", "-s", str(site_dir), "-p", LAMBDA_TASK_ROOT, str(site_dir)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=interpreter.env)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
        raise BytecodeError(f"compiling {site_dir} with {interpreter.label} failed:\n{tail}")
    tag = cache_tag(python)
    files = sum(1 for _ in Path(site_dir).rglob(f"*.{tag}.pyc"))
    return BytecodeReport(interpreter=interpreter.label, tag=tag, files=files)
