"""Fixtures for running the built Lambda package: the x86_64 zip AWS runs (built once per session, cached across
sessions by its input fingerprint; run under the Lambda-equivalent Python 3.13), warm execution environments, and tiny handler packages for runtime error reporting."""

from __future__ import annotations

import base64
import json
import os
import textwrap
from pathlib import Path

import boto3
import pytest

from lambda_build import build_package
from localaws.lambda_runtime import LocalFunction

REPO_ROOT = Path(__file__).resolve().parents[3]
TEST_DIST = REPO_ROOT / ".cache" / "lambda_build" / "test-dist"
S3_BUCKET, S3_KEY = "detection-inputs", "photos/square.jpg"  # what the S3 event fixtures name


@pytest.fixture(scope="session")
def aws_package():
    """``python -m lambda_build --arch x86_64`` output (BuildResult): the zip a deploy uploads; rebuilt only when
    its inputs change."""
    return build_package(arch="x86_64", out_dir=TEST_DIST)


def function_env(endpoint: str, bundle_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "MODEL_URI": str(bundle_dir),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        **extra,
    }


@pytest.fixture(scope="session")
def s3_square(moto_endpoint, square_jpeg):
    """The fixtures' image uploaded to the session's moto S3 as s3://detection-inputs/photos/square.jpg."""
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    try:
        s3.create_bucket(Bucket=S3_BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    s3.put_object(Bucket=S3_BUCKET, Key=S3_KEY, Body=square_jpeg)
    return f"s3://{S3_BUCKET}/{S3_KEY}"


@pytest.fixture(scope="module")
def warm_function(aws_package, known_answer_bundle, moto_endpoint, s3_square, tmp_path_factory):
    """One execution environment of the built zip, kept warm for a whole test module."""
    log_path = tmp_path_factory.mktemp("lambda-logs") / "detect.log"
    with LocalFunction(aws_package.zip_path, env=function_env(moto_endpoint, known_answer_bundle.root),
                       function_name="detect", timeout_s=60, log_path=log_path) as function:
        yield function


def invoke_json(function: LocalFunction, event) -> tuple[int, dict]:
    """Invoke with a JSON event; returns (HTTP-ish status, body) for direct and HTTP responses alike."""
    result = function.invoke(json.dumps(event).encode())
    assert result.status_code == 200 and result.function_error is None, result.payload[:500]
    response = result.json()
    if "statusCode" in response:
        body = response["body"]
        if response.get("isBase64Encoded"):
            body = base64.b64decode(body)
        return response["statusCode"], json.loads(body)
    return response.get("error", {}).get("status", 200), response


def detections(body: dict) -> list[tuple[str, int, float, list[float]]]:
    return [(d["label"], d["class_id"], d["score"], d["box"]) for d in body["detections"]]


@pytest.fixture()
def handler_package(tmp_path):
    """Factory: a package folder holding ``handler.py`` with the given source (for runtime error reporting)."""

    def make(source: str, name: str = "pkg") -> Path:
        package = tmp_path / name
        package.mkdir()
        (package / "handler.py").write_text(textwrap.dedent(source))
        return package

    return make


def link_package(package_dir: Path, target: Path, extra_files: dict[str, str]) -> Path:
    """A package folder whose entries are symlinks to a built package's, plus ``extra_files``."""
    target.mkdir(parents=True)
    for entry in package_dir.iterdir():
        os.symlink(entry, target / entry.name)
    for name, text in extra_files.items():
        (target / name).write_text(textwrap.dedent(text))
    return target
