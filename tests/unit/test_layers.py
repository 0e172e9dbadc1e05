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


LAZY_MARK = "# lazy:"


def unmarked_lazy_imports(source: str, first_party: set[str], where: str) -> list[str]:
    """``where:line`` of each import inside a function body that loads first-party code (a relative import, or
    a top-level package in ``first_party``) with no ``# lazy: <why>`` comment on its lines or the line above;
    an import right below a marked one (a block of lazy imports) shares its comment."""
    lines = source.splitlines()
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if in_function and isinstance(child, ast.ImportFrom):
                if child.level > 0 or (child.module or "").split(".")[0] in first_party:
                    found.append(child)
            elif in_function and isinstance(child, ast.Import):
                if any(alias.name.split(".")[0] in first_party for alias in child.names):
                    found.append(child)
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(source, where), False)
    marked: set[int] = set()  # end lines of the marked imports
    unmarked = []
    for node in sorted(found, key=lambda n: n.lineno):
        own = lines[node.lineno - 2:node.end_lineno] if node.lineno > 1 else lines[:node.end_lineno]
        if any(LAZY_MARK in line for line in own) or node.lineno - 1 in marked:
            marked.add(node.end_lineno)
        else:
            unmarked.append(f"{where}:{node.lineno}")
    return unmarked


@pytest.mark.parametrize("source, expected", [
    ("import os\nfrom detection import x\n", []),                                       # module level: fine
    ("def f():\n    import os\n    import numpy\n", []),                                # not first-party
    ("def f():\n    from detection.bundle import read_bundle\n", ["m.py:2"]),
    ("def f():\n    import handler\n", ["m.py:2"]),
    ("def f():\n    from . import sibling\n", ["m.py:2"]),
    ("class A:\n    def f(self):\n        def g():\n            from .x import y\n", ["m.py:4"]),
    ("async def f():\n    from detection import x\n", ["m.py:2"]),
    ("def f():\n    from detection import x  # lazy: pulls onnxruntime\n", []),
    ("def f():\n    # lazy: pulls torch\n    from detection import x\n    from .y import z\n", []),  # one block
    ("def f():\n    # lazy: pulls torch\n    from detection import x\n\n    from .y import z\n", ["m.py:5"]),
    ("def f():\n    # pulls torch (no mark)\n    from detection import x\n", ["m.py:3"]),
    ("def f():\n    from detection import (a,\n                           b)  # lazy: pulls torch\n", []),
])
def test_unmarked_lazy_imports_finds_unexplained_function_level_imports(source, expected):
    assert unmarked_lazy_imports(source, {"detection", "handler"}, "m.py") == expected


def test_function_level_imports_of_this_repository_say_why_they_are_lazy():
    """First-party imports sit at module top; one inside a function must keep a heavy optional dependency off
    its module's other paths (torch, onnxruntime, moto, ...) and say so: ``# lazy: <why>``. A function-level
    import that only dodges a cycle means the seam is wrong: move the code instead."""
    packages = package_paths()
    unmarked = []
    for path in packages.values():
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            unmarked += unmarked_lazy_imports(file.read_text(), set(packages), str(file.relative_to(REPO)))
    assert unmarked == [], "move these to the module top, or say why they stay lazy with '# lazy: <why>'"
