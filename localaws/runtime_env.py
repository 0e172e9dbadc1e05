"""The emulated Lambda runtime directory (``/var/runtime``): awslambdaric + boto3/botocore, nothing else.

It is installed once per interpreter and pin set into ``.cache/localaws/runtime-<python>-<pins>/`` and then reused
offline. A packaged function sees only its own package and this directory (see :mod:`localaws.lambda_runtime`).

Example:
    >>> runtime_dir = ensure_runtime_dir()          # doctest: +SKIP
    >>> (runtime_dir / "awslambdaric").is_dir()     # doctest: +SKIP
    True
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNTIME_REQUIREMENTS = REPO_ROOT / "requirements" / "lambda-runtime.txt"
DEFAULT_CACHE_ROOT = REPO_ROOT / ".cache" / "localaws"
COMPLETE_MARKER = ".complete"


class RuntimeEnvError(RuntimeError):
    """The emulated runtime directory could not be installed."""


def runtime_dir_name(*, python_tag: str, requirements_text: str) -> str:
    """``runtime-cp311-<12 hex>``: one folder per interpreter and pin set.

    >>> runtime_dir_name(python_tag="cp311", requirements_text="awslambdaric==4.2.2\\n")[:13]
    'runtime-cp311'
    """
    digest = hashlib.sha256(requirements_text.encode()).hexdigest()[:12]
    return f"runtime-{python_tag}-{digest}"


def ensure_runtime_dir(
    *,
    python: str = sys.executable,
    requirements: Path = RUNTIME_REQUIREMENTS,
    cache_root: Path = DEFAULT_CACHE_ROOT,
) -> Path:
    """Install (once) and return the runtime directory for ``python``; safe against concurrent callers."""
    tag = subprocess.run([python, "-I", "-S", "-c", "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')"],
                         capture_output=True, text=True, check=True).stdout.strip()
    target = Path(cache_root) / runtime_dir_name(python_tag=tag, requirements_text=requirements.read_text())
    if (target / COMPLETE_MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / COMPLETE_MARKER).is_file():
            return target
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        proc = subprocess.run(
            [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input", "--no-compile",
             "--target", str(partial), "-r", str(requirements)],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeEnvError(f"installing the emulated Lambda runtime ({requirements.name}) failed: {last}")
        shutil.rmtree(partial / "bin", ignore_errors=True)
        (partial / COMPLETE_MARKER).write_text(requirements.read_text())
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return target
