"""Upload to a real local S3 (moto server process), then download the way the Lambda's cold start does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from detection.bundle import sha256_file
from detection.fetch import fetch_bundle
from detection.pipeline import Detector
from export.errors import UploadError
from export.upload import upload_bundle

from .conftest import scene_with_boxes

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def bucket(moto_endpoint):
    s3 = boto3.client("s3")
    name = "export-test-models"
    s3.create_bucket(Bucket=name)
    return name


def test_upload_layout_pointer_and_cold_start(exported, bucket, tmp_path):
    bundle, _ = exported("dfine-n")
    version_uri = upload_bundle(bundle, f"s3://{bucket}/detectors/")
    sha = bundle.manifest.model_sha256
    assert version_uri == f"s3://{bucket}/detectors/dfine-n-random/{sha[:12]}/"
    s3 = boto3.client("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="detectors/")["Contents"])
    assert keys == [f"detectors/dfine-n-random/{sha[:12]}/{name}" for name in ("class_map.json", "model.json", "model.onnx")] \
        + ["detectors/dfine-n-random/latest.json"]
    pointer = json.loads(s3.get_object(Bucket=bucket, Key="detectors/dfine-n-random/latest.json")["Body"].read())
    assert pointer["uri"] == version_uri
    head = s3.head_object(Bucket=bucket, Key=f"detectors/dfine-n-random/{sha[:12]}/model.onnx")
    assert head["ContentLength"] == bundle.model_path.stat().st_size

    # cold start: MODEL_URI names the model; fetch_bundle follows latest.json and verifies sha256
    fetched = fetch_bundle(f"s3://{bucket}/detectors/dfine-n-random/", cache_dir=tmp_path / "cache")
    assert fetched.root.parent == tmp_path / "cache"  # named by the bundle's cache key (all its small files)
    assert sha256_file(fetched.model_path) == sha
    assert fetched.manifest.parity["passed"]
    detector = Detector.from_uri(f"s3://{bucket}/detectors/dfine-n-random/", cache_dir=tmp_path / "cache")
    body = detector.detect_bytes(scene_with_boxes(320, 240, red=(10, 10, 100, 100), green=(150, 50, 300, 200)),
                                 threshold=0.0, max_detections=5)
    assert len(body["detections"]) == 5 and body["model"]["sha256"] == sha


def test_cli_upload_moves_the_pointer(icevision_artefacts, bucket, tmp_path):
    onnx_path, class_map_path = icevision_artefacts
    result = subprocess.run(
        [sys.executable, "-m", "export", "--arch", "onnx", "--onnx", str(onnx_path), "--classes", str(class_map_path),
         "--preset", "icevision", "--out", str(tmp_path / "b"), "--name", "fridge", "--upload", f"s3://{bucket}/byo"],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    sha = json.loads((tmp_path / "b" / "model.json").read_text())["model_sha256"]
    pointer = boto3.client("s3").get_object(Bucket=bucket, Key="byo/fridge/latest.json")["Body"].read()
    assert json.loads(pointer)["uri"] == f"s3://{bucket}/byo/fridge/{sha[:12]}/"
    assert f"uploaded to s3://{bucket}/byo/fridge/{sha[:12]}/" in result.stderr


def test_missing_bucket_is_a_clear_error(exported, moto_endpoint):
    bundle, _ = exported("dfine-n")
    with pytest.raises(UploadError, match="bucket 'no-such-bucket-here' does not exist"):
        upload_bundle(bundle, "s3://no-such-bucket-here/models/")


def test_no_credentials_is_a_clear_error(icevision_artefacts, moto_endpoint, tmp_path):
    """A real subprocess with every credential source removed: exit 4 and one line saying what to set."""
    onnx_path, class_map_path = icevision_artefacts
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=moto_endpoint, AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"))
    result = subprocess.run(
        [sys.executable, "-m", "export", "--arch", "onnx", "--onnx", str(onnx_path), "--classes", str(class_map_path),
         "--preset", "icevision", "--out", str(tmp_path / "b"), "--quiet", "--upload", "s3://anything/models/"],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 4, result.stderr
    assert result.stderr.strip() == ("export failed: no AWS credentials found: set AWS_PROFILE or "
                                     "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or run where an IAM role is attached)")


def test_bad_upload_uri(exported):
    bundle, _ = exported("dfine-n")
    with pytest.raises(UploadError, match="expected s3://bucket/prefix/"):
        upload_bundle(bundle, "https://example.com/models/")
