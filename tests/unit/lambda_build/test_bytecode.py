"""Byte code for the Lambda's interpreter: compiled by a real interpreter (``compileall`` in a subprocess)."""

from __future__ import annotations

import struct
import sys

import pytest

from lambda_build.bytecode import BytecodeError, cache_tag, compile_tree, find_interpreter
from lambda_python import ensure_interpreter

LOCAL = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.mark.parametrize("python, tag", [("3.12", "cpython-312"), ("3.13", "cpython-313"), ("3.9", "cpython-39")])
def test_cache_tag(python, tag):
    assert cache_tag(python) == tag


def test_this_interpreter_compiles_for_its_own_version_and_no_other_is_invented():
    assert find_interpreter(LOCAL).command == (sys.executable,)
    assert find_interpreter("3.99") is None


def test_python313_byte_code_comes_from_the_lambda_python(tmp_path):
    """The runtime's version is compiled by lambda_python's CPython 3.13 (provisioned on demand), whose magic
    number is what the .pyc carry."""
    (tmp_path / "mod.py").write_text("X = 1\n")
    report = compile_tree(tmp_path, python="3.13")
    assert report.tag == "cpython-313" and report.interpreter.startswith("CPython 3.13.")
    python = ensure_interpreter("x86_64")
    magic = python.run("-I", "-S", "-c", "import importlib.util, sys; sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())")
    assert (tmp_path / "__pycache__" / "mod.cpython-313.pyc").read_bytes()[:4].hex() == magic.stdout


def test_every_module_gets_unchecked_hash_byte_code(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "top.py").write_text("VALUE = 1\n")
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub" / "leaf.py").write_text("def f():\n    return 2\n")
    report = compile_tree(tmp_path, python=LOCAL)
    tag = sys.implementation.cache_tag
    assert (report.tag, report.files) == (tag, 3)
    pyc = tmp_path / "pkg" / "sub" / "__pycache__" / f"leaf.{tag}.pyc"
    flags = struct.unpack("<I", pyc.read_bytes()[4:8])[0]
    assert flags == 0b01  # PEP 552: hash-based, source never checked


def test_no_interpreter_of_the_target_version_ships_sources_only(tmp_path):
    (tmp_path / "mod.py").write_text("X = 1\n")
    report = compile_tree(tmp_path, python="3.99")
    assert (report.interpreter, report.tag, report.files) == (None, None, 0)
    assert not list(tmp_path.rglob("*.pyc"))


@pytest.mark.parametrize("source", ["def broken(:\n", "x = (\n"])
def test_a_module_that_does_not_compile_fails_the_build_with_its_name(tmp_path, source):
    (tmp_path / "fine.py").write_text("X = 1\n")
    (tmp_path / "broken_module.py").write_text(source)
    with pytest.raises(BytecodeError, match="broken_module.py"):
        compile_tree(tmp_path, python=LOCAL)
