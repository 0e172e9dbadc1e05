"""Helpers for running the built Lambda package in local execution environments (``localaws.lambda_runtime``):
where the test build lives, a function's environment, JSON invokes, and package folders made of links."""

from __future__ import annotations

import base64
import json
import os
import textwrap
from pathlib import Path

from localaws.lambda_runtime import LocalFunction

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_DIST = REPO_ROOT / ".cache" / "lambda_build" / "test-dist"
S3_BUCKET, S3_KEY = "detection-inputs", "photos/square.jpg"  # what the S3 event fixtures name


def function_env(endpoint: str, bundle_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "MODEL_URI": str(bundle_dir),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        **extra,
    }


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


def link_package(package_dir: Path, target: Path, extra_files: dict[str, str]) -> Path:
    """A package folder whose entries are symlinks to a built package's, plus ``extra_files``."""
    target.mkdir(parents=True)
    for entry in package_dir.iterdir():
        os.symlink(entry, target / entry.name)
    for name, text in extra_files.items():
        (target / name).write_text(textwrap.dedent(text))
    return target
