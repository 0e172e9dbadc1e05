"""The Lambda-equivalent interpreter: provisioned by the project's code (Debian trixie packages, patched), reused
offline, started with its own glibc, and a one-line error when it cannot be fetched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lambda_python import InterpreterUnavailable, ensure_interpreter
from lambda_python.interpreter import DEFAULT_CACHE_ROOT, cache_key, debian_mirror

REPO_ROOT = Path(__file__).resolve().parents[3]
UNREACHABLE_MIRROR = "http://127.0.0.1:9/debian"  # the discard port: nothing listens


def test_cpython_313_runs_on_its_own_glibc_and_libraries():
    python = ensure_interpreter("x86_64")
    script = ("import sys, ssl, ctypes, sqlite3, platform\n"
              "print(sys.version_info[:2], platform.libc_ver()[1])\n"
              "print(sorted({l.split()[-1] for l in open('/proc/self/maps') if '.so' in l}))")
    proc = python.run("-I", "-S", "-c", script)
    assert proc.returncode == 0, proc.stderr
    version_line, maps_line = proc.stdout.splitlines()
    assert version_line == "(3, 13) 2.41"  # trixie's glibc, not this machine's
    mapped = eval(maps_line)  # noqa: S307 - our own repr of a list of paths
    assert mapped and all(path.startswith(str(python.root)) for path in mapped), mapped


def test_a_provisioned_interpreter_is_reused_offline(monkeypatch):
    ensure_interpreter("x86_64")
    monkeypatch.setenv("LAMBDA_PYTHON_MIRROR", UNREACHABLE_MIRROR)
    assert debian_mirror() == UNREACHABLE_MIRROR
    python = ensure_interpreter("x86_64")  # no fetch: the cache answers
    assert python.root.parent.name == cache_key("x86_64") and python.root.parent.parent == DEFAULT_CACHE_ROOT


def test_an_unreachable_mirror_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("LAMBDA_PYTHON_MIRROR", UNREACHABLE_MIRROR)
    with pytest.raises(InterpreterUnavailable) as raised:
        ensure_interpreter("x86_64", cache_root=tmp_path / "empty-cache")
    message = str(raised.value)
    assert "\n" not in message and message.startswith("cannot provision the Lambda Python: reading Debian trixie")
    assert UNREACHABLE_MIRROR in message
    assert not list((tmp_path / "empty-cache").glob(f"{cache_key('x86_64')}*/root"))  # nothing half-made is kept


def test_the_cli_prints_the_command_and_runs_it():
    proc = subprocess.run([sys.executable, "-m", "lambda_python", "--", "-c", "import sys; print(sys.version_info[:2])"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "(3, 13)", proc.stderr
