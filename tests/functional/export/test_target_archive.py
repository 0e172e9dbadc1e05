"""``python -m export --target gpu|inferentia`` also writes the SageMaker model.tar.gz next to the bundle."""

import subprocess
import sys
import tarfile

import pytest


@pytest.mark.parametrize("target", ["gpu", "inferentia"])
def test_target_builds_the_sagemaker_archive(icevision_artefacts, tmp_path, target):
    onnx_path, class_map = icevision_artefacts
    out = tmp_path / "bundle"
    result = subprocess.run(
        [sys.executable, "-m", "export", "--arch", "onnx", "--onnx", str(onnx_path), "--classes", str(class_map),
         "--preset", "icevision", "--out", str(out), "--target", target, "--sagemaker-wheels", "none", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    archive = out / target / "model.tar.gz"
    assert f"{target} model archive: {archive}" in result.stdout
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        model_in_archive = tar.extractfile("model.onnx").read()
    assert {"model.onnx", "model.json", "code/inference.py"} <= names
    assert any(n.startswith("code/detection/") for n in names)
    assert model_in_archive == (out / "model.onnx").read_bytes()


def test_unknown_target_is_rejected(icevision_artefacts, tmp_path):
    onnx_path, class_map = icevision_artefacts
    result = subprocess.run(
        [sys.executable, "-m", "export", "--arch", "onnx", "--onnx", str(onnx_path), "--classes", str(class_map),
         "--preset", "icevision", "--out", str(tmp_path / "b"), "--target", "tpu"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and "invalid choice: 'tpu'" in result.stderr


def test_optimize_for_serving_writes_a_model_the_lambda_opens(icevision_artefacts, tmp_path):
    from detection.bundle import read_bundle
    from detection.session import pre_optimized

    onnx_path, class_map = icevision_artefacts
    out = tmp_path / "bundle"
    result = subprocess.run(
        [sys.executable, "-m", "export", "--arch", "onnx", "--onnx", str(onnx_path), "--classes", str(class_map),
         "--preset", "icevision", "--out", str(out), "--optimize-for-serving"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "pre-optimized model for serving" in result.stderr
    bundle = read_bundle(out)
    assert pre_optimized(bundle.model_path, sha256=bundle.manifest.model_sha256) == out / "model.optimized.onnx"
