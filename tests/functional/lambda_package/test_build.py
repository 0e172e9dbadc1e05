"""``python -m lambda_build``: the python3.13 x86_64/arm64 packages fit the budget, are pruned, carry byte code
of the Lambda-equivalent interpreter, are reproducible, and rebuilt only when their inputs change."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lambda_build import BUDGET_UNZIPPED_BYTES, BUDGET_ZIPPED_BYTES, build_package
from lambda_python import ensure_interpreter
from tests.support.lambda_package import REPO_ROOT, TEST_DIST

ELF_MACHINES = {"x86_64": 0x3E, "arm64": 0xB7}
NEVER_SHIPPED = ("torch", "onnxruntime/tools", "onnxruntime/transformers", "onnxruntime/quantization",
                 "numpy/f2py", "numpy/_core/tests", "numpy/_core/include", "google", "pip", "setuptools")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_package(result) -> list[str]:
    assert result.zipped_bytes <= BUDGET_ZIPPED_BYTES and result.unzipped_bytes <= BUDGET_UNZIPPED_BYTES
    with zipfile.ZipFile(result.zip_path) as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names) and {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {"handler.py", "detection/__init__.py", "detection/pipeline.py", "onnxruntime/__init__.py"} <= set(names)
    assert not [n for n in names if n.endswith((".pyi", ".h"))]
    byte_code = {n for n in names if n.endswith(".pyc")}
    if result.bytecode is None:
        assert not byte_code
    else:  # one unchecked-hash .pyc per module, for the target's interpreter only
        expected = {f"{n.rsplit('/', 1)[0] + '/' if '/' in n else ''}__pycache__/{n.rsplit('/', 1)[-1][:-3]}."
                    f"{result.bytecode}.pyc" for n in names if n.endswith(".py")}
        assert byte_code == expected
    assert not [n for n in names if n.startswith(NEVER_SHIPPED)] and not [n for n in names if "/tests/" in n]
    assert sum(info.file_size for info in infos) == result.unzipped_bytes
    return names


def test_aws_package_fits_the_budget_and_is_pruned(aws_package):
    check_package(aws_package)
    print(f"\n{aws_package.summary()}")


def test_the_aws_package_ships_byte_code_the_runtime_uses_without_reading_the_source(aws_package, tmp_path):
    """Lambda cannot write ``__pycache__`` (read-only /var/task): shipped byte code is what saves the compile."""
    python = ensure_interpreter("x86_64")
    assert aws_package.bytecode == python.cache_tag == "cpython-313"
    shutil.copytree(aws_package.package_dir / "detection", tmp_path / "detection")
    (tmp_path / "detection" / "errors.py").write_text("raise SystemExit('source was compiled instead')\n")
    proc = python.run("-I", "-S", "-B", "-c", "import sys; sys.path.insert(0, sys.argv[1]); import detection.errors as e; "
                      "print(e.__spec__.cached)", str(tmp_path), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("errors.cpython-313.pyc")


def test_unchanged_inputs_reuse_the_build_and_a_forced_rebuild_is_byte_identical(aws_package, tmp_path):
    again = build_package(arch="x86_64", out_dir=TEST_DIST)
    assert again.wheels_from == "previous build" and again.zip_path == aws_package.zip_path
    rebuilt = build_package(arch="x86_64", out_dir=tmp_path, force=True)
    assert rebuilt.wheels_from == "cache"  # offline: wheels come from .cache/lambda_build/wheels
    assert sha256(rebuilt.zip_path) == sha256(aws_package.zip_path)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_python313_lambda_packages_fit_the_budget_and_target_their_machine(arch):
    """Downloads manylinux_2_28 wheels once (then cached); the ELF headers show the target (the arm64 zip is run
    under qemu by test_arm64_parity.py)."""
    result = build_package(arch=arch, out_dir=TEST_DIST)
    names = check_package(result)
    print(f"\n{result.summary()}")
    assert result.python == "3.13" and result.bytecode == "cpython-313"
    native = [n for n in names if n.startswith("onnxruntime/capi/onnxruntime_pybind11_state")]
    assert native == [f"onnxruntime/capi/onnxruntime_pybind11_state.cpython-313-{'x86_64' if arch == 'x86_64' else 'aarch64'}-linux-gnu.so"]
    with zipfile.ZipFile(result.zip_path) as archive:
        header = archive.open(native[0]).read(20)
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == ELF_MACHINES[arch]


@pytest.mark.parametrize("args, message", [
    (["--arch", "sparc"], "invalid choice: 'sparc'"),
    (["--arch", "arm64", "--python", "three"], "bad --python 'three'"),
])
def test_cli_rejects_bad_targets_with_one_line(args, message):
    proc = subprocess.run([sys.executable, "-m", "lambda_build", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0 and message in proc.stderr


def test_missing_handler_is_a_clear_build_error(tmp_path):
    from lambda_build.build import BuildError

    (tmp_path / "src").mkdir()
    with pytest.raises(BuildError, match="lacks handler.py, detection/__init__.py"):
        build_package(arch="local", source_dir=tmp_path / "src", out_dir=tmp_path / "dist")
