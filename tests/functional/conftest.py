"""Fixtures shared by the tests that run Lambda code in local execution environments (``lambda_package/``: the
built zip; ``localaws/``: the runtime itself): the x86_64 zip AWS runs (built once per session, cached across
sessions by its input fingerprint; run under the Lambda-equivalent Python 3.13), warm execution environments,
and tiny handler packages for runtime error reporting."""

from __future__ import annotations

import textwrap
from pathlib import Path

import boto3
import pytest

from lambda_build import build_package
from localaws.lambda_runtime import LocalFunction
from tests.support.lambda_package import S3_BUCKET, S3_KEY, TEST_DIST, function_env


@pytest.fixture(scope="session")
def aws_package():
    """``python -m lambda_build --arch x86_64`` output (BuildResult): the zip a deploy uploads; rebuilt only when
    its inputs change."""
    return build_package(arch="x86_64", out_dir=TEST_DIST)


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


@pytest.fixture()
def handler_package(tmp_path):
    """Factory: a package folder holding ``handler.py`` with the given source (for runtime error reporting)."""

    def make(source: str, name: str = "pkg") -> Path:
        package = tmp_path / name
        package.mkdir()
        (package / "handler.py").write_text(textwrap.dedent(source))
        return package

    return make
