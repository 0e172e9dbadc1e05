"""Reproducible zips: sorted entries, fixed timestamps and permissions, so the same inputs give the same bytes.

Example:
    >>> write_reproducible_zip(Path("dist/lambda-x86_64"), Path("dist/lambda-x86_64.zip"))   # doctest: +SKIP
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold
COMPRESSION_LEVEL = 6


def tree_files(root: Path) -> list[Path]:
    """Regular files under ``root``, sorted by their posix path relative to ``root``."""
    files = [path for path in root.rglob("*") if path.is_file()]
    return sorted(files, key=lambda path: path.relative_to(root).as_posix())


def tree_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in tree_files(root))


def _zip_info(name: str, *, executable: bool) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # unix, so external_attr carries the mode
    mode = 0o755 if executable else 0o644
    info.external_attr = (0o100000 | mode) << 16
    return info


def write_reproducible_zip(root: Path, zip_path: Path) -> int:
    """Zip every file under ``root`` (paths relative to it); returns the zip's size in bytes."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    partial = zip_path.with_name(zip_path.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESSION_LEVEL) as archive:
        for path in tree_files(root):
            info = _zip_info(path.relative_to(root).as_posix(), executable=os.access(path, os.X_OK))
            with open(path, "rb") as source, archive.open(info, "w") as target:
                while chunk := source.read(1 << 20):
                    target.write(chunk)
    os.replace(partial, zip_path)
    return zip_path.stat().st_size


def unzip(zip_path: Path, target_dir: Path) -> None:
    """Extract ``zip_path`` keeping the unix modes recorded in it (zipfile drops them by default)."""
    target_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            extracted = Path(archive.extract(info, target_dir))
            mode = (info.external_attr >> 16) & 0o777
            if mode and extracted.is_file():
                extracted.chmod(mode)
