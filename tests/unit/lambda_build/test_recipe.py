"""Pure parts of the package recipe: prune rules, targets, budget messages."""

from pathlib import Path

import pytest

from lambda_build.build import BudgetExceeded, check_budget
from lambda_build.prune import matches_rule
from lambda_build.sagemaker import TARGETS as SAGEMAKER_TARGETS
from lambda_build.targets import Target, resolve_target

MIB = 1024 * 1024


@pytest.mark.parametrize("path, pruned", [
    ("", False),
    ("numpy/_core/tests/test_api.py", True),
    ("numpy/_core/multiarray.py", False),
    ("numpy/f2py/__init__.py", True),
    ("numpy/_typing/_array_like.py", False),
    ("numpy/typing/__init__.py", True),
    ("onnxruntime/tools/convert.py", True),
    ("onnxruntime/capi/onnxruntime_inference_collection.py", False),
    ("PIL/__pycache__/Image.cpython-312.pyc", True),
    ("PIL/Image.py", False),
    ("PIL/Image.pyi", True),
    ("PIL/ImageTk.py", True),
    ("numpy/_core/include/numpy/ndarrayobject.h", True),
    ("detection/pipeline.py", False),
    ("handler.py", False),
    ("bin/f2py", True),
])
def test_prune_rules(path, pruned):
    assert matches_rule(path) is pruned


@pytest.mark.parametrize("arch, python, platform", [
    ("x86_64", "3.13", "manylinux_2_28_x86_64"),
    ("arm64", "3.13", "manylinux_2_28_aarch64"),
    ("x86_64", "3.12", "manylinux_2_28_x86_64"),
    ("local", "3.12", None),
])
def test_targets(arch, python, platform):
    """python3.13 is the default (the template's Runtime); another MAJOR.MINOR can still be asked for."""
    target = resolve_target(arch=arch, python=python)
    assert target.platform == platform
    assert ("--platform" in target.pip_target_args()) is (platform is not None)


def test_the_default_target_is_the_templates_runtime():
    assert resolve_target(arch="x86_64").python == "3.13"
    assert "Runtime: python3.13" in (Path(__file__).resolve().parents[3] / "template.yaml").read_text()


@pytest.mark.parametrize("arch, python, message", [
    ("sparc", "3.12", "unknown --arch"), ("arm64", "", "bad --python"), ("x86_64", "3", "bad --python"),
])
def test_bad_targets(arch, python, message):
    with pytest.raises(ValueError, match=message):
        resolve_target(arch=arch, python=python)


@pytest.mark.parametrize("zipped, unzipped, message", [
    (51 * MIB, 10 * MIB, "51.0 MiB zipped > 50 MiB"),
    (10 * MIB, 151 * MIB, "151.0 MiB unzipped > 150 MiB"),
    (None, None, None),
])
def test_budget(tmp_path, zipped, unzipped, message):
    if message is None:
        check_budget(zipped_bytes=50 * MIB, unzipped_bytes=150 * MIB, zip_path=tmp_path / "ok.zip")
        return
    with pytest.raises(BudgetExceeded, match=message):
        check_budget(zipped_bytes=zipped, unzipped_bytes=unzipped, zip_path=tmp_path / "lambda-x86_64.zip")


@pytest.mark.parametrize("target, python, platforms", [
    (resolve_target(arch="arm64"), "3.13", ["manylinux_2_28_aarch64"]),
    (SAGEMAKER_TARGETS["gpu"].wheels, "3.12", ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]),
    (SAGEMAKER_TARGETS["inferentia"].wheels, "3.10", ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64",
                                                     "manylinux2014_x86_64"]),
])
def test_the_lambda_zip_and_the_sagemaker_archive_share_one_wheel_target(target, python, platforms):
    args = target.pip_target_args()
    assert isinstance(target, Target)
    assert [args[i + 1] for i, arg in enumerate(args) if arg == "--platform"] == platforms
    assert args[args.index("--python-version") + 1] == python and "--only-binary=:all:" in args
