"""Which top-level package may import which: serving (``lambda_src``) <- zoo / packaging <- export, train <-
deployer, bench, batch. Checked twice: statically (every import statement, function-level ones included) and by
importing every module of each package in a fresh interpreter (what really gets loaded)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# rank of each top-level package: a package imports only packages of a lower rank
RANKS = {
    "detection": 0, "handler": 1,                                   # serving: the Lambda package
    "lambda_python": 1,                                             # the Lambda-equivalent interpreter
    "sagemaker_entry": 1,                                           # serving in the SageMaker container
    "zoo": 2,                                                       # what each torch detector family is
    "lambda_build": 2, "packaging": 2,                              # pack the serving code
    "localaws": 2,                                                  # the local AWS the deployer can target
    "export": 3, "train": 3,                                        # the torch side, independent of each other
    "deployer": 4, "bench": 4, "batch": 4,                          # tools on top
}


def package_paths() -> dict[str, Path]:
    found = {"detection": REPO / "lambda_src" / "detection", "handler": REPO / "lambda_src" / "handler.py"}
    for path in sorted(REPO.iterdir()):
        if path.is_dir() and (path / "__init__.py").is_file() and path.name != "tests":
            found[path.name] = path
    return found


def static_edges() -> dict[str, dict[str, str]]:
    """package -> {imported package: first file:line importing it}."""
    packages = package_paths()
    edges: dict[str, dict[str, str]] = {name: {} for name in packages}
    for name, path in packages.items():
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text(), str(file))):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                elif isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top in packages and top != name:
                        edges[name].setdefault(top, f"{file.relative_to(REPO)}:{node.lineno}")
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle in the package graph as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_find_cycle_reports_a_cycle_and_accepts_a_dag():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({}) is None


def test_every_package_has_a_rank():
    assert sorted(set(package_paths()) - set(RANKS)) == [], "give the new package a rank in RANKS"


def test_imports_point_down_and_form_no_cycle():
    edges = static_edges()
    upward = [f"{name} imports {target} ({where})" for name, targets in edges.items()
              for target, where in targets.items() if RANKS[target] >= RANKS[name]]
    assert upward == []
    assert find_cycle({name: set(targets) for name, targets in edges.items()}) is None


_LOADER = """
import importlib, json, pkgutil, sys
name = sys.argv[1]
package = importlib.import_module(name)
if hasattr(package, "__path__"):
    for info in pkgutil.walk_packages(package.__path__, name + "."):
        if info.name.rsplit(".", 1)[-1] != "__main__":
            importlib.import_module(info.name)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def fresh_import(package: str) -> set[str]:
    """Top-level names in ``sys.modules`` after a fresh interpreter imports ``package`` and every module below it
    (``__main__`` modules aside: running a CLI is not importing it)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "lambda_src")])}
    done = subprocess.run([sys.executable, "-c", _LOADER, package], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"importing {package}: {done.stderr[-2000:]}"
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.slow
@pytest.mark.parametrize("package", sorted(package_paths()))
def test_a_fresh_interpreter_loads_only_lower_packages(package):
    loaded = fresh_import(package) & set(RANKS)
    assert sorted(p for p in loaded if p != package and RANKS[p] >= RANKS[package]) == []
