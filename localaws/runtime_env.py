"""The emulated Lambda runtime directory (``/var/runtime``): awslambdaric + boto3/botocore, nothing else.

It is installed once per architecture and pin set into ``.cache/localaws/runtime-cp313-<arch>-<pins>/`` from wheels
for the Lambda interpreter (this machine's pip, ``--platform``/``--python-version``: the Lambda Python has no pip),
byte-compiled by the x86_64 Lambda Python (AWS's image ships ``/var/runtime`` compiled; byte code is the same for
both architectures of one CPython build, and multiprocessing cannot re-exec an arm64 interpreter without qemu),
then reused offline. A packaged
function sees only its own package and this directory (see :mod:`localaws.lambda_runtime`).

Example:
    >>> runtime_dir = ensure_runtime_dir(ensure_interpreter("x86_64"))   # doctest: +SKIP
    >>> (runtime_dir / "awslambdaric").is_dir()                          # doctest: +SKIP
    True
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from lambda_python import LambdaPython, ensure_interpreter
from lambda_python.interpreter import wheel_platforms

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNTIME_REQUIREMENTS = REPO_ROOT / "requirements" / "lambda-runtime.txt"
DEFAULT_CACHE_ROOT = REPO_ROOT / ".cache" / "localaws"
COMPLETE_MARKER = ".complete"


class RuntimeEnvError(RuntimeError):
    """The emulated runtime directory could not be installed."""


def runtime_dir_name(*, python_tag: str, arch: str, requirements_text: str) -> str:
    """``runtime-cp313-x86_64-<12 hex>``: one folder per interpreter, architecture and pin set.

    >>> runtime_dir_name(python_tag="cp313", arch="arm64", requirements_text="awslambdaric==4.2.2\\n")[:19]
    'runtime-cp313-arm64'
    """
    digest = hashlib.sha256(requirements_text.encode()).hexdigest()[:12]
    return f"runtime-{python_tag}-{arch}-{digest}"


def pip_install_args(python: LambdaPython, requirements: Path, target: Path) -> list[str]:
    """This machine's pip installing ``requirements`` as wheels for ``python`` into ``target``."""
    platforms = [arg for platform in wheel_platforms(python.arch) for arg in ("--platform", platform)]
    return [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
            "--no-compile", "--only-binary=:all:", "--implementation", "cp", "--python-version",
            python.python_version, *platforms, "--target", str(target), "-r", str(requirements)]


def ensure_runtime_dir(
    python: LambdaPython,
    *,
    requirements: Path = RUNTIME_REQUIREMENTS,
    cache_root: Path = DEFAULT_CACHE_ROOT,
) -> Path:
    """Install (once) and return the runtime directory for ``python``; safe against concurrent callers."""
    tag = "cp" + python.python_version.replace(".", "")
    target = Path(cache_root) / runtime_dir_name(python_tag=tag, arch=python.arch,
                                                 requirements_text=requirements.read_text())
    if (target / COMPLETE_MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / COMPLETE_MARKER).is_file():
            return target
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        proc = subprocess.run(pip_install_args(python, requirements, partial), capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeEnvError(f"installing the emulated Lambda runtime ({requirements.name}) failed: {last}")
        shutil.rmtree(partial / "bin", ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)  # compiled under its final name: tracebacks show the paths the runtime imports
        compiler = python if python.qemu is None else ensure_interpreter("x86_64")
        compiled = compiler.run("-I", "-m", "compileall", "-q", "-j", "0", str(target), timeout=900)
        if compiled.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            raise RuntimeEnvError(f"compiling the emulated Lambda runtime failed: {compiled.stdout.strip()[-300:]}")
        (target / COMPLETE_MARKER).write_text(requirements.read_text())
    return target
