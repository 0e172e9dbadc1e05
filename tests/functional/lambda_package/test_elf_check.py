"""The static ELF check: a library needing a newer glibc than Amazon Linux 2023's 2.34, or a shared library the
Lambda image lacks, fails the build naming the file. The bad libraries are real: extension modules of Debian
trixie's CPython (built against glibc 2.41: ``_decimal`` needs GLIBC_2.38, ``_ssl`` links libssl.so.3), taken from
the provisioned Lambda Python's root."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lambda_build import build_package
from lambda_build.build import BuildError
from lambda_build.elfcheck import ElfCheckError, check_package_elves, read_elf
from lambda_python import ensure_interpreter
from tests.support.lambda_package import REPO_ROOT


def trixie_module(name: str) -> Path:
    return ensure_interpreter("x86_64").root / "usr" / "lib" / "python3.13" / "lib-dynload" / \
        f"{name}.cpython-313-x86_64-linux-gnu.so"


@pytest.fixture(scope="module")
def trixie_ssl_module() -> Path:
    return trixie_module("_ssl")


def test_the_reader_sees_needed_libraries_and_symbol_versions(trixie_ssl_module):
    info = read_elf(trixie_ssl_module)
    assert {"libssl.so.3", "libcrypto.so.3", "libc.so.6"} <= set(info.needed)
    assert "GLIBC_2.2.5" in info.versions["libc.so.6"] and "OPENSSL_3.0.0" in info.versions["libssl.so.3"]


def test_a_library_linking_what_lambda_lacks_is_refused_naming_it(trixie_ssl_module, tmp_path):
    (tmp_path / "pkg").mkdir()
    shutil.copy(trixie_ssl_module, tmp_path / "pkg" / "bad_ext.so")
    with pytest.raises(ElfCheckError, match=r"pkg/bad_ext\.so needs libssl\.so\.3, libcrypto\.so\.3, which Lambda"):
        check_package_elves(tmp_path)


def test_a_library_needing_a_newer_glibc_is_refused_naming_it(tmp_path):
    shutil.copy(trixie_module("_decimal"), tmp_path / "fast_decimal.so")
    with pytest.raises(ElfCheckError, match=r"fast_decimal\.so needs GLIBC_2\.38, newer than Amazon Linux 2023's "
                                            r"\(GLIBC_2\.34\)"):
        check_package_elves(tmp_path)


def test_libraries_shipped_in_the_package_satisfy_their_dependants(trixie_ssl_module, tmp_path):
    lib_dir = ensure_interpreter("x86_64").library_dir
    shutil.copy(trixie_ssl_module, tmp_path / "ext.so")
    for name in ("libssl.so.3", "libcrypto.so.3"):
        shutil.copy(lib_dir / name, tmp_path / name)
    with pytest.raises(ElfCheckError) as raised:  # the sonames resolve now; trixie's glibc versions still do not
        check_package_elves(tmp_path)
    assert "needs libssl" not in str(raised.value) and "libcrypto.so.3 needs GLIBC_2.38" in str(raised.value)


def test_the_build_fails_naming_the_file(trixie_ssl_module, tmp_path):
    source = tmp_path / "src"
    shutil.copytree(REPO_ROOT / "lambda_src", source, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(trixie_ssl_module, source / "detection" / "_fast.cpython-313-x86_64-linux-gnu.so")
    with pytest.raises(BuildError, match=r"detection/_fast\.cpython-313-x86_64-linux-gnu\.so needs libssl\.so\.3"):
        build_package(arch="x86_64", source_dir=source, out_dir=tmp_path / "dist")
