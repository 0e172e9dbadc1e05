"""Remove what the Lambda runtime never loads from an installed site dir.

Every rule is a glob relative to the site dir; the build verifies the pruned package by importing it and running
a real model (see tests/functional/lambda_package/). Licenses and ``*.dist-info`` metadata stay.

Example:
    >>> matches_rule("numpy/_core/tests/test_api.py")
    True
    >>> matches_rule("numpy/_core/multiarray.py")
    False
"""

from __future__ import annotations

import fnmatch
import shutil
from dataclasses import dataclass
from pathlib import Path

# Whole top-level distributions the runtime never imports: onnxruntime needs them only for its tools
# (model conversion, quantization, transformers optimizers), which are pruned below.
UNUSED_DISTRIBUTIONS = ("flatbuffers", "google", "packaging", "protobuf", "pip", "setuptools", "wheel", "_distutils_hack")

PRUNE_GLOBS = (
    # byte code is written by the runtime to /tmp only if writable; shipping it pins one interpreter
    "**/__pycache__", "**/*.pyc", "**/*.pyo",
    # type stubs, C headers/sources, static libs, console scripts
    "**/*.pyi", "**/*.h", "**/*.c", "**/*.pxd", "**/*.pyx", "**/*.a", "bin",
    # test suites
    "**/tests",
    # numpy: Fortran wrapper generator, typing helpers, C API headers, SIMD test module, docs, examples
    "numpy/f2py", "numpy/typing", "numpy/_core/include", "numpy/_core/lib", "numpy/_core/_simd.*",
    "numpy/_pyinstaller", "numpy/random/_examples", "numpy/doc", "numpy/_core/_multiarray_tests.*",
    # onnxruntime: offline tooling only; inference needs capi/ and the package __init__
    "onnxruntime/tools", "onnxruntime/transformers", "onnxruntime/quantization", "onnxruntime/datasets",
    "onnxruntime/backend",
    # Pillow: GUI bindings (no Tk or Qt in Lambda)
    "PIL/ImageTk.py", "PIL/_imagingtk.*", "PIL/ImageQt.py", "PIL/ImageWin.py",
)


@dataclass(frozen=True)
class PruneReport:
    removed_paths: int
    removed_bytes: int


def matches_rule(relative_path: str, *, globs: tuple[str, ...] = PRUNE_GLOBS) -> bool:
    """True when ``relative_path`` (posix, relative to the site dir) or one of its parents is pruned."""
    parts = relative_path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in globs:
        bare = pattern[3:] if pattern.startswith("**/") else None
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            if bare is not None and fnmatch.fnmatchcase(prefix.rsplit("/", 1)[-1], bare):
                return True
    return False


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    return path.stat().st_size


def _remove(path: Path) -> int:
    size = _size(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    return size


def unused_distribution_paths(site_dir: Path, *, names: tuple[str, ...] = UNUSED_DISTRIBUTIONS) -> list[Path]:
    """Top-level packages and their ``*.dist-info`` for the distributions in ``names``."""
    found = []
    for entry in sorted(site_dir.iterdir()):
        stem = entry.name.split("-", 1)[0].lower() if entry.name.endswith(".dist-info") else entry.name
        if stem.removesuffix(".py") in names:
            found.append(entry)
    return found


def prune_site(site_dir: Path) -> PruneReport:
    """Delete unused distributions and every path matching :data:`PRUNE_GLOBS` under ``site_dir``."""
    removed = removed_bytes = 0
    for path in unused_distribution_paths(site_dir):
        removed_bytes += _remove(path)
        removed += 1
    # top-down walk so a pruned directory is removed whole and not descended into
    pending = [site_dir]
    while pending:
        directory = pending.pop()
        for entry in sorted(directory.iterdir()):
            relative = entry.relative_to(site_dir).as_posix()
            if matches_rule(relative):
                removed_bytes += _remove(entry)
                removed += 1
            elif entry.is_dir() and not entry.is_symlink():
                pending.append(entry)
    return PruneReport(removed_paths=removed, removed_bytes=removed_bytes)
