"""Download and install target wheels (the Lambda's requirements, a SageMaker container's), through a wheel cache.

The first build downloads wheels (``pip download``) into ``.cache/lambda_build/wheels/<target>/``; later builds
install from that folder with ``--no-index`` and need no network.

Example:
    >>> install_requirements(target=resolve_target(arch="arm64"), requirements=Path("requirements/lambda.txt"),
    ...                      site_dir=Path("build/site"), wheel_cache=Path(".cache/lambda_build/wheels"))  # doctest: +SKIP
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .targets import Target

PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]


class WheelError(RuntimeError):
    """pip could not provide the target's wheels."""


def _pip(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([*PIP, *args], capture_output=True, text=True)


def _last_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip() and "is ignored" not in line]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["(no output)"])[-1].strip()


def download_wheels(*, target: Target, requirements: Path | list[str], wheel_dir: Path, deps: bool = True) -> None:
    """Fill ``wheel_dir`` with the target's wheels for ``requirements`` (a requirements file or pinned
    ``name==version`` strings; ``deps=False``: those only, not their dependencies). Needs PyPI once."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    wanted = ["-r", str(requirements)] if isinstance(requirements, Path) else list(requirements)
    proc = _pip(["download", "--quiet", *wanted, *([] if deps else ["--no-deps"]), "-d", str(wheel_dir),
                 *target.pip_target_args()])
    if proc.returncode != 0:
        pins = requirements if isinstance(requirements, Path) else " ".join(requirements)
        raise WheelError(
            f"pip download for {target.cache_key} failed: {_last_error_line(proc)} "
            f"(check the pins in {pins} have {target.cache_key} wheels)"
        )


def install_from_cache(*, target: Target, requirements: Path, site_dir: Path, wheel_dir: Path) -> subprocess.CompletedProcess:
    args = ["install", "--quiet", "--no-index", "--find-links", str(wheel_dir), "--no-compile",
            "--target", str(site_dir), "-r", str(requirements), *target.pip_target_args()]
    return _pip(args)


def install_requirements(*, target: Target, requirements: Path, site_dir: Path, wheel_cache: Path) -> str:
    """Install into ``site_dir``; returns ``"cache"`` or ``"download"`` (where the wheels came from)."""
    wheel_dir = wheel_cache / target.cache_key
    site_dir.mkdir(parents=True, exist_ok=True)
    if wheel_dir.is_dir() and install_from_cache(
        target=target, requirements=requirements, site_dir=site_dir, wheel_dir=wheel_dir
    ).returncode == 0:
        return "cache"
    download_wheels(target=target, requirements=requirements, wheel_dir=wheel_dir)
    proc = install_from_cache(target=target, requirements=requirements, site_dir=site_dir, wheel_dir=wheel_dir)
    if proc.returncode != 0:
        raise WheelError(f"pip install for {target.cache_key} failed: {_last_error_line(proc)}")
    return "download"
