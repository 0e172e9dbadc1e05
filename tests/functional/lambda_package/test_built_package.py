"""The x86_64 zip AWS runs (python -m lambda_build --arch x86_64) under the Lambda-equivalent Python 3.13, in a clean subprocess under awslambdaric, with real
known-answer ONNX bundles, a real moto server process for S3, and the local Runtime API."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import urllib.request

import boto3
import pytest
from PIL import Image

from localaws.lambda_runtime import MAX_REQUEST_BYTES, LocalFunction
from tests.conftest import load_event
from tests.support.lambda_package import (
    S3_BUCKET, detections, function_env, invoke_json, link_package,
)
from tests.support.known_answer import build_known_answer_bundle
from tests.support.moto import moto_server

SQUARE_DETECTION = [("square", 1, 0.9, [40.0, 30.0, 120.0, 90.0])]
INLINE_EVENTS = ["direct.json", "http_api_v2_binary.json", "http_api_v2_json.json", "rest_v1.json", "function_url.json"]
S3_EVENTS = ["s3_object.json", "image_uri.json"]  # notifications: tests/functional/detection/test_s3jobs.py


@pytest.mark.parametrize("fixture", INLINE_EVENTS + S3_EVENTS)
def test_every_event_shape_gives_the_same_detections(warm_function, fixture):
    status, body = invoke_json(warm_function, load_event(fixture))
    assert status == 200
    assert detections(body) == SQUARE_DETECTION
    assert body["image"] == {"width": 160, "height": 120}


def test_environment_stays_warm_across_invocations(warm_function):
    invoke_json(warm_function, load_event("direct.json"))
    pid, cold_starts = warm_function.pid, warm_function.cold_starts
    result = warm_function.invoke(json.dumps(load_event("direct.json")))
    assert result.cold_start is False and warm_function.pid == pid and warm_function.cold_starts == cold_starts
    assert f"START RequestId: {result.request_id}" in result.log_tail
    assert '"status":200' in result.log_tail  # the handler's structured log line, captured from the subprocess


def _bomb_event() -> dict:
    buffer = io.BytesIO()
    Image.new("L", (20000, 20000)).save(buffer, "PNG")
    return {"image": base64.b64encode(buffer.getvalue()).decode()}


def _broken_json_body() -> dict:
    event = load_event("http_api_v2_json.json")
    event["body"] = "{broken"
    return event


ERROR_EVENTS = [
    ("bad base64", lambda: {"image": "not base64!"}, 400, "BadRequest"),
    ("bad JSON body", _broken_json_body, 400, "BadRequest"),
    ("bad option", lambda: {"threshold": 2, **load_event("direct.json")}, 400, "BadRequest"),
    ("empty event", lambda: {}, 400, "BadRequest"),
    ("decompression bomb", _bomb_event, 413, "PayloadTooLarge"),
    ("not an image", lambda: {"image": base64.b64encode(b"plain text").decode()}, 415, "UnsupportedMediaType"),
    ("missing S3 key", lambda: {"image_uri": f"s3://{S3_BUCKET}/photos/missing.jpg"}, 404, "NotFound"),
    ("missing S3 bucket", lambda: {"s3": {"bucket": "no-such-bucket-here", "key": "a.jpg"}}, 404, "NotFound"),
]


@pytest.mark.parametrize("name, make_event, status, code", ERROR_EVENTS, ids=[row[0] for row in ERROR_EVENTS])
def test_every_error_class_then_the_same_warm_process_answers(warm_function, name, make_event, status, code):
    invoke_json(warm_function, load_event("direct.json"))
    pid = warm_function.pid
    got_status, body = invoke_json(warm_function, make_event())
    assert (got_status, body["error"]["code"]) == (status, code), body
    assert body["error"]["message"]
    ok_status, ok_body = invoke_json(warm_function, load_event("direct.json"))
    assert ok_status == 200 and detections(ok_body) == SQUARE_DETECTION
    assert warm_function.pid == pid


def test_payload_over_the_invoke_limit_is_refused_before_the_function(warm_function):
    result = warm_function.invoke(b'{"image": "' + b"A" * MAX_REQUEST_BYTES + b'"}')
    assert result.status_code == 413 and b"too large" in result.payload


def test_forbidden_s3_object_is_403(aws_package, known_answer_bundle, square_jpeg, tmp_path):
    """A separate moto process with auth on: an IAM user without any policy may not read the object."""
    with moto_server(tmp_path / "moto-auth.log") as endpoint:
        admin = {"endpoint_url": endpoint, "region_name": "us-east-1",
                 "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        s3 = boto3.client("s3", **admin)
        s3.create_bucket(Bucket="private-inputs")
        s3.put_object(Bucket="private-inputs", Key="photo.jpg", Body=square_jpeg)
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="no-access")
        key = iam.create_access_key(UserName="no-access")["AccessKey"]
        urllib.request.urlopen(urllib.request.Request(endpoint + "/moto-api/reset-auth", data=b"0", method="POST",
                                                      headers={"Content-Type": "text/plain"}))
        env = function_env(endpoint, known_answer_bundle.root, AWS_ACCESS_KEY_ID=key["AccessKeyId"],
                           AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"])
        with LocalFunction(aws_package.zip_path, env=env, log_path=tmp_path / "fn.log") as function:
            status, body = invoke_json(function, {"image_uri": "s3://private-inputs/photo.jpg"})
            assert (status, body["error"]["code"]) == (403, "Forbidden"), body
            ok_status, ok_body = invoke_json(function, load_event("direct.json"))
            assert ok_status == 200 and detections(ok_body) == SQUARE_DETECTION


def test_our_own_fault_is_500_with_request_id_and_the_process_survives(aws_package, tmp_path):
    bundle = build_known_answer_bundle(tmp_path / "broken")
    manifest = json.loads((bundle.root / "model.json").read_text())
    manifest["input"]["name"] = "wrong_input_name"  # a bundle bug: onnxruntime refuses the feed
    (bundle.root / "model.json").write_text(json.dumps(manifest))
    env = {"MODEL_URI": str(bundle.root)}
    with LocalFunction(aws_package.zip_path, env=env, log_path=tmp_path / "fn.log") as function:
        result = function.invoke(json.dumps(load_event("direct.json")))
        body = result.json()
        assert result.function_error is None and body["error"]["status"] == 500
        assert result.request_id in body["error"]["message"]
        assert '"level":"ERROR"' in result.log_tail and "wrong_input_name" in result.log_tail
        pid = function.pid
        assert function.invoke(json.dumps(load_event("direct.json"))).json()["error"]["status"] == 500
        assert function.pid == pid


def test_the_package_runs_without_torch(aws_package, known_answer_bundle, tmp_path):
    """torch is installed for the tests, yet the function's interpreter cannot see it (nor the dev venv)."""
    assert importlib.util.find_spec("torch") is not None, "the check is only meaningful where torch is installed"
    probe = """
        import importlib.util, sys
        import handler as real


        def handler(event, context):
            response = real.handler(event, context)
            return {"response": response, "torch": importlib.util.find_spec("torch") is not None,
                    "path": sys.path, "modules": sorted(m for m in sys.modules if m.split(".")[0] == "torch")}
    """
    package = link_package(aws_package.package_dir, tmp_path / "probe-pkg", {"probe.py": probe})
    with LocalFunction(package, handler="probe.handler", env={"MODEL_URI": str(known_answer_bundle.root)},
                       log_path=tmp_path / "fn.log") as function:
        result = function.invoke(json.dumps(load_event("direct.json")))
    out = result.json()
    assert result.function_error is None, out
    assert detections(out["response"]) == SQUARE_DETECTION
    assert out["torch"] is False and out["modules"] == []
    assert out["path"][0] == str(package) and not any("site-packages" in entry for entry in out["path"])
    assert not any(".venv" in entry for entry in out["path"])


def test_bad_model_uri_is_an_init_error_and_init_is_retried(aws_package, tmp_path):
    empty = tmp_path / "not-a-bundle"
    empty.mkdir()
    with LocalFunction(aws_package.zip_path, env={"MODEL_URI": str(empty)}, log_path=tmp_path / "fn.log") as fn:
        first = fn.invoke(json.dumps(load_event("direct.json")))
        second = fn.invoke(json.dumps(load_event("direct.json")))
    error = first.json()
    assert first.status_code == 200 and first.function_error == "Unhandled"
    assert set(error) >= {"errorMessage", "errorType", "stackTrace"} and "model.json" in error["errorMessage"]
    assert "INIT_REPORT Status: error" in first.log_tail
    assert second.cold_start and second.function_error == "Unhandled"  # Lambda re-runs init on the next invoke
