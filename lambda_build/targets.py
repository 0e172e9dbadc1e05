"""Wheel targets: which wheels to install for which interpreter — the Lambda architectures here, and the SageMaker
containers (:mod:`lambda_build.sagemaker`) with the same class.

Example:
    >>> resolve_target(arch="arm64").platform
    'manylinux_2_28_aarch64'
    >>> resolve_target(arch="x86_64").cache_key
    'cp313-manylinux_2_28_x86_64'
"""

from __future__ import annotations

import sys
import sysconfig
from dataclasses import dataclass

from lambda_python import PYTHON_VERSION

ARCHES = ("x86_64", "arm64", "local")
DEFAULT_PYTHON = PYTHON_VERSION  # the template's Runtime: python3.13
LAMBDA_PLATFORMS = {"x86_64": "manylinux_2_28_x86_64", "arm64": "manylinux_2_28_aarch64"}


@dataclass(frozen=True)
class Target:
    """What to install: wheels for CPython ``python`` on any of ``platforms`` (pip ``--platform`` tags, best
    first); no platforms means "wheels for the interpreter running the build"."""

    name: str  # "x86_64" | "arm64" | "local" | a SageMaker container ("gpu", ...)
    python: str  # "3.13"
    platforms: tuple[str, ...] = ()

    @property
    def is_local(self) -> bool:
        return not self.platforms

    @property
    def platform(self) -> str | None:
        return self.platforms[0] if self.platforms else None

    @property
    def cache_key(self) -> str:
        """Folder name for this target's wheel cache."""
        platform = self.platform or sysconfig.get_platform().replace("-", "_").replace(".", "_")
        return f"cp{self.python.replace('.', '')}-{platform}"

    def pip_target_args(self) -> list[str]:
        """pip arguments selecting the target's wheels (none for the local interpreter)."""
        if self.is_local:
            return ["--only-binary=:all:"]
        platforms = [arg for platform in self.platforms for arg in ("--platform", platform)]
        return [*platforms, "--python-version", self.python, "--implementation", "cp", "--only-binary=:all:"]


def local_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def resolve_target(*, arch: str, python: str = DEFAULT_PYTHON) -> Target:
    """Map ``--arch``/``--python`` to a :class:`Target`; ``local`` ignores ``python`` (it is this interpreter's)."""
    if arch not in ARCHES:
        raise ValueError(f"unknown --arch {arch!r}: choose one of {', '.join(ARCHES)}")
    if arch == "local":
        return Target(name="local", python=local_python())
    parts = python.split(".")
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        raise ValueError(f"bad --python {python!r}: expected MAJOR.MINOR such as 3.13")
    return Target(name=arch, python=python, platforms=(LAMBDA_PLATFORMS[arch],))
