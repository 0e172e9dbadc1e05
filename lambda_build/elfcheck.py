"""Static check of every ELF file in a package against what the Lambda python3.13 runtime (Amazon Linux 2023)
provides: a shared library that is neither shipped in the package nor in :data:`SYSTEM_SONAMES`, or a symbol
version newer than :data:`MAX_VERSIONS`, fails the build naming the file (it would fail at import on AWS only).

Where the allowed list comes from: the libraries every manylinux wheel may assume (the PEP 600 / auditwheel policy
allowlist), kept to those Amazon Linux 2023 installs in Lambda's base image — glibc 2.34's libraries and loaders,
GCC 11's libgcc_s and libstdc++, zlib (CPython itself links it). X11/GL/glib from the manylinux allowlist are left
out: Lambda has none of them. Not verified against the image itself here (no Docker); a wheel needing anything
else must bundle it (auditwheel's ``*.libs/`` folders, which this check resolves inside the package).

The ELF reader is a small pure-Python one (64-bit little-endian: x86_64 and aarch64), reading ``DT_NEEDED``,
``DT_SONAME`` and the version-needed table ``.gnu.version_r``.

Example:
    >>> version_newer("GLIBC_2.35", MAX_VERSIONS)
    True
    >>> version_newer("GLIBC_2.17", MAX_VERSIONS), version_newer("GLIBCXX_3.4.29", MAX_VERSIONS)
    (False, False)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from lambda_python.interpreter import LAMBDA_GLIBC

SYSTEM_SONAMES = frozenset({
    # glibc 2.34 (libpthread/libdl/librt/libutil are stubs there but still present for old binaries)
    "libc.so.6", "libm.so.6", "libdl.so.2", "librt.so.1", "libpthread.so.0", "libutil.so.1", "libresolv.so.2",
    "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1",
    # GCC 11 runtime libraries
    "libgcc_s.so.1", "libstdc++.so.6",
    # zlib
    "libz.so.1",
})
# Newest symbol version of each versioned library on Amazon Linux 2023 (glibc 2.34, GCC 11.4).
MAX_VERSIONS = {"GLIBC": LAMBDA_GLIBC, "GLIBCXX": (3, 4, 29), "CXXABI": (1, 3, 13), "GCC": (11, 0, 0)}

ELF_MAGIC = b"\x7fELF"
SHT_DYNAMIC, SHT_GNU_VERNEED = 6, 0x6FFFFFFE
DT_NULL, DT_NEEDED, DT_SONAME = 0, 1, 14


class ElfCheckError(RuntimeError):
    """An ELF file in the package would not load on Lambda; the message names it and why."""


@dataclass
class ElfInfo:
    path: Path
    soname: str | None = None
    needed: list[str] = field(default_factory=list)
    versions: dict[str, set[str]] = field(default_factory=dict)  # library -> {"GLIBC_2.17", ...}


def is_elf(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == ELF_MAGIC


def _string(data: bytes, offset: int) -> str:
    return data[offset:data.index(b"\0", offset)].decode()


def read_elf(path: Path) -> ElfInfo:
    """The dynamic-linking facts of one ELF64 little-endian file."""
    data = path.read_bytes()
    if data[:4] != ELF_MAGIC or data[4] != 2 or data[5] != 1:
        raise ElfCheckError(f"{path}: not a 64-bit little-endian ELF file (Lambda runs x86_64 and arm64 only)")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    info = ElfInfo(path=path)
    for _, kind, _, _, offset, size, link, count, _, entsize in sections:
        if kind not in (SHT_DYNAMIC, SHT_GNU_VERNEED):
            continue
        strings_offset = sections[link][4]
        if kind == SHT_DYNAMIC:
            for position in range(offset, offset + size, entsize or 16):
                tag, value = struct.unpack_from("<qQ", data, position)
                if tag == DT_NULL:
                    break
                if tag == DT_NEEDED:
                    info.needed.append(_string(data, strings_offset + value))
                elif tag == DT_SONAME:
                    info.soname = _string(data, strings_offset + value)
        else:
            position = offset
            for _ in range(count):  # Elf64_Verneed entries, each with a chain of Elf64_Vernaux
                _, aux_count, file_name, aux, next_entry = struct.unpack_from("<HHIII", data, position)
                library = _string(data, strings_offset + file_name)
                aux_position = position + aux
                for _ in range(aux_count):
                    _, _, _, name, next_aux = struct.unpack_from("<IHHII", data, aux_position)
                    info.versions.setdefault(library, set()).add(_string(data, strings_offset + name))
                    aux_position += next_aux
                position += next_entry
    return info


def _parse_version(text: str) -> tuple[int, ...] | None:
    parts = text.split(".")
    return tuple(int(part) for part in parts) if all(part.isdigit() for part in parts) else None


def version_newer(version: str, limits: dict[str, tuple[int, ...]]) -> bool:
    """True when ``version`` ("GLIBC_2.35") is newer than its family's limit; unknown families are not limited."""
    family, _, number = version.partition("_")
    limit, parsed = limits.get(family), _parse_version(number)
    return limit is not None and parsed is not None and parsed > limit


def package_elves(package_dir: Path) -> list[ElfInfo]:
    return [read_elf(path) for path in sorted(package_dir.rglob("*"))
            if path.is_file() and not path.is_symlink() and is_elf(path)]


def check_package_elves(package_dir: Path, *, system_sonames: frozenset[str] = SYSTEM_SONAMES,
                        max_versions: dict[str, tuple[int, ...]] = MAX_VERSIONS) -> int:
    """Raise :class:`ElfCheckError` listing each offending file; returns how many ELF files were checked."""
    elves = package_elves(package_dir)
    shipped = {elf.soname or elf.path.name for elf in elves} | {elf.path.name for elf in elves}
    problems = []
    for elf in elves:
        relative = elf.path.relative_to(package_dir)
        missing = [name for name in elf.needed if name not in system_sonames and name not in shipped]
        if missing:
            problems.append(f"{relative} needs {', '.join(missing)}, which Lambda's python3.13 image does not provide")
        too_new = sorted(v for versions in elf.versions.values() for v in versions if version_newer(v, max_versions))
        if too_new:
            problems.append(f"{relative} needs {', '.join(too_new)}, newer than Amazon Linux 2023's "
                            f"(GLIBC_{'.'.join(map(str, max_versions['GLIBC']))})")
    if problems:
        raise ElfCheckError("the package would not load on Lambda: " + "; ".join(problems))
    return len(elves)
