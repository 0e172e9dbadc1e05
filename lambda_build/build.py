"""Orchestrate a package build: wheels -> prune -> sources -> ELF check -> byte code -> reproducible zip -> budget.

A build is skipped when its inputs (sources, requirements, target, recipe) are unchanged since the last one,
recorded in ``dist/lambda-<arch>.build.json``; ``force=True`` rebuilds anyway.

Example:
    >>> result = build_package(arch="x86_64", out_dir=Path("dist"))   # doctest: +SKIP
    >>> result.package_dir.name                                      # doctest: +SKIP
    'lambda-x86_64'
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from . import archive, bytecode, elfcheck, prune, wheels
from .targets import DEFAULT_PYTHON, Target, resolve_target

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE_DIR = REPO_ROOT / "lambda_src"
DEFAULT_REQUIREMENTS = REPO_ROOT / "requirements" / "lambda.txt"
DEFAULT_WHEEL_CACHE = REPO_ROOT / ".cache" / "lambda_build" / "wheels"
DEFAULT_OUT_DIR = REPO_ROOT / "dist"

MIB = 1024 * 1024
BUDGET_ZIPPED_BYTES = 50 * MIB  # Lambda's direct-upload limit
BUDGET_UNZIPPED_BYTES = 150 * MIB  # ours; Lambda allows 250 MB with layers
RECIPE_VERSION = 4  # bump when the recipe changes in a way the fingerprint does not see
REQUIRED_SOURCES = ("handler.py", "detection/__init__.py")
SKIPPED_SOURCE_PARTS = ("__pycache__",)
SKIPPED_SOURCE_SUFFIXES = (".pyc", ".pyo")


class BuildError(RuntimeError):
    """The package cannot be built; the message says what to fix."""


class BudgetExceeded(BuildError):
    """The built package is over the size budget."""


@dataclass(frozen=True)
class BuildResult:
    arch: str
    python: str
    zip_path: Path
    package_dir: Path
    zipped_bytes: int
    unzipped_bytes: int
    pruned_bytes: int
    wheels_from: str  # "cache" | "download" | "previous build"
    fingerprint: str
    seconds: float
    bytecode: str | None = None  # "cpython-313" when .pyc files for the target's Python are inside

    def summary(self) -> str:
        return (
            f"{self.zip_path}: {self.zipped_bytes / MIB:.1f} MiB zipped (budget {BUDGET_ZIPPED_BYTES // MIB}), "
            f"{self.unzipped_bytes / MIB:.1f} MiB unzipped (budget {BUDGET_UNZIPPED_BYTES // MIB}); "
            f"python {self.python}, pruned {self.pruned_bytes / MIB:.1f} MiB, wheels from {self.wheels_from}, "
            f"byte code {self.bytecode or 'none (cold starts compile the imports)'}"
        )


def source_files(source_dir: Path) -> list[Path]:
    """Files of ``lambda_src`` that go into the package (no byte code)."""
    files = []
    for path in archive.tree_files(source_dir):
        relative = path.relative_to(source_dir)
        if any(part in SKIPPED_SOURCE_PARTS for part in relative.parts) or path.suffix in SKIPPED_SOURCE_SUFFIXES:
            continue
        files.append(path)
    return files


def check_sources(source_dir: Path) -> None:
    missing = [name for name in REQUIRED_SOURCES if not (source_dir / name).is_file()]
    if missing:
        raise BuildError(f"{source_dir} lacks {', '.join(missing)}: the Lambda entry point handler.handler needs them")


def fingerprint(*, target: Target, source_dir: Path, requirements: Path, bytecode_tag: str | None = None) -> str:
    """sha256 over everything that determines the package's content."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"recipe": RECIPE_VERSION, "target": asdict(target), "prune": prune.PRUNE_GLOBS,
                              "unused": prune.UNUSED_DISTRIBUTIONS, "bytecode": bytecode_tag},
                             sort_keys=True).encode())
    digest.update(requirements.read_bytes())
    for path in source_files(source_dir):
        digest.update(path.relative_to(source_dir).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def copy_sources(source_dir: Path, package_dir: Path) -> None:
    """Copy the handler and the ``detection`` core on top of the installed wheels (refusing to shadow one)."""
    for path in source_files(source_dir):
        relative = path.relative_to(source_dir)
        destination = package_dir / relative
        if len(relative.parts) == 1 and destination.exists() or (package_dir / relative.parts[0]).is_dir() and \
                not (source_dir / relative.parts[0]).is_dir():
            raise BuildError(f"{relative} from {source_dir} would shadow an installed package of the same name")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
        shutil.copymode(path, destination)


def check_budget(*, zipped_bytes: int, unzipped_bytes: int, zip_path: Path) -> None:
    problems = []
    if zipped_bytes > BUDGET_ZIPPED_BYTES:
        problems.append(f"{zipped_bytes / MIB:.1f} MiB zipped > {BUDGET_ZIPPED_BYTES // MIB} MiB")
    if unzipped_bytes > BUDGET_UNZIPPED_BYTES:
        problems.append(f"{unzipped_bytes / MIB:.1f} MiB unzipped > {BUDGET_UNZIPPED_BYTES // MIB} MiB")
    if problems:
        raise BudgetExceeded(
            f"{zip_path.name} is over the size budget ({'; '.join(problems)}): prune more in lambda_build/prune.py "
            f"or drop a dependency from requirements/lambda.txt"
        )


def _paths(out_dir: Path, arch: str) -> tuple[Path, Path, Path]:
    return out_dir / f"lambda-{arch}.zip", out_dir / f"lambda-{arch}", out_dir / f"lambda-{arch}.build.json"


def previous_build(*, out_dir: Path, arch: str, expected_fingerprint: str) -> BuildResult | None:
    zip_path, package_dir, info_path = _paths(out_dir, arch)
    if not (zip_path.is_file() and package_dir.is_dir() and info_path.is_file()):
        return None
    try:
        info = json.loads(info_path.read_text())
    except ValueError:
        return None
    if info.get("fingerprint") != expected_fingerprint or info.get("zipped_bytes") != zip_path.stat().st_size:
        return None
    return BuildResult(arch=arch, python=info["python"], zip_path=zip_path, package_dir=package_dir,
                       zipped_bytes=info["zipped_bytes"], unzipped_bytes=info["unzipped_bytes"],
                       pruned_bytes=info["pruned_bytes"], wheels_from="previous build",
                       fingerprint=expected_fingerprint, seconds=0.0, bytecode=info.get("bytecode"))


def build_package(
    *,
    arch: str = "local",
    python: str = DEFAULT_PYTHON,
    out_dir: Path = DEFAULT_OUT_DIR,
    source_dir: Path = DEFAULT_SOURCE_DIR,
    requirements: Path = DEFAULT_REQUIREMENTS,
    wheel_cache: Path = DEFAULT_WHEEL_CACHE,
    force: bool = False,
    log: Callable[[str], None] = lambda message: None,
) -> BuildResult:
    """Build ``out_dir/lambda-<arch>.zip`` and its unpacked twin ``out_dir/lambda-<arch>/``.

    Concurrent builds of the same ``out_dir``/``arch`` wait for each other (file lock), then reuse the result.
    """
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(out_dir) / f".lambda-{arch}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(arch=arch, python=python, out_dir=out_dir, source_dir=source_dir,
                             requirements=requirements, wheel_cache=wheel_cache, force=force, log=log)


def _build_locked(*, arch, python, out_dir, source_dir, requirements, wheel_cache, force, log) -> BuildResult:
    started = time.monotonic()
    target = resolve_target(arch=arch, python=python)
    out_dir, source_dir, requirements = Path(out_dir), Path(source_dir), Path(requirements)
    check_sources(source_dir)
    if not requirements.is_file():
        raise BuildError(f"requirements file {requirements} not found")
    try:
        interpreter = bytecode.find_interpreter(target.python)
    except bytecode.BytecodeError as error:
        raise BuildError(str(error)) from None
    expected = fingerprint(target=target, source_dir=source_dir, requirements=requirements,
                           bytecode_tag=f"{bytecode.cache_tag(target.python)} {interpreter.label}" if interpreter
                           else None)
    if not force and (reused := previous_build(out_dir=out_dir, arch=arch, expected_fingerprint=expected)):
        log(f"lambda_build: inputs unchanged, reusing {reused.zip_path}")
        check_budget(zipped_bytes=reused.zipped_bytes, unzipped_bytes=reused.unzipped_bytes, zip_path=reused.zip_path)
        return reused

    zip_path, package_dir, info_path = _paths(out_dir, arch)
    staging = out_dir / f".lambda-{arch}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    info_path.unlink(missing_ok=True)
    log(f"lambda_build: installing {requirements.name} for {target.cache_key}")
    wheels_from = wheels.install_requirements(target=target, requirements=requirements, site_dir=staging,
                                              wheel_cache=Path(wheel_cache))
    report = prune.prune_site(staging)
    log(f"lambda_build: pruned {report.removed_paths} paths ({report.removed_bytes / MIB:.1f} MiB)")
    copy_sources(source_dir, staging)
    if not target.is_local:
        try:
            checked = elfcheck.check_package_elves(staging)
        except elfcheck.ElfCheckError as error:
            raise BuildError(str(error)) from None
        log(f"lambda_build: {checked} ELF files need only Amazon Linux 2023's glibc 2.34 and base libraries")
    try:
        compiled = bytecode.compile_tree(staging, python=target.python, interpreter=interpreter)
    except bytecode.BytecodeError as error:
        raise BuildError(str(error)) from None
    if compiled.interpreter is None:
        log(f"lambda_build: no python{target.python} found: shipping sources only, so each cold start compiles "
            f"its imports (~0.7 s measured); put python{target.python} on PATH to ship byte code")
    else:
        log(f"lambda_build: compiled {compiled.files} modules to {compiled.tag} byte code with {compiled.interpreter}")
    unzipped = archive.tree_bytes(staging)
    shutil.rmtree(package_dir, ignore_errors=True)
    staging.rename(package_dir)
    zipped = archive.write_reproducible_zip(package_dir, zip_path)
    result = BuildResult(arch=arch, python=target.python, zip_path=zip_path, package_dir=package_dir,
                         zipped_bytes=zipped, unzipped_bytes=unzipped, pruned_bytes=report.removed_bytes,
                         wheels_from=wheels_from, fingerprint=expected, seconds=time.monotonic() - started,
                         bytecode=compiled.tag)
    check_budget(zipped_bytes=zipped, unzipped_bytes=unzipped, zip_path=zip_path)
    info = {key: str(value) if isinstance(value, Path) else value for key, value in asdict(result).items()}
    info_path.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return result
