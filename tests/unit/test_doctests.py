"""The examples in the packages' docstrings run and say what the code does (``>>>`` lines are tests too).
Examples that need a build, a network or a model are written as comments or marked ``# doctest: +SKIP``."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("lambda_src/detection", "lambda_python", "zoo", "lambda_build", "localaws", "sagemaker_entry",
            "export", "train", "deployer", "bench", "batch")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    parts = parts[1:] if parts[0] == "lambda_src" else parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules_with_examples() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if path.name != "__main__.py" and ">>>" in path.read_text():
                found.append(module_name(path))
    return found


def test_the_packages_have_examples():
    assert len(modules_with_examples()) >= 50


@pytest.mark.parametrize("name", modules_with_examples())
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=False,
                             verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} fail (run: python -m doctest -v)"
