"""Backend=gpu|inferentia end to end on CPU: the Lambda handler (ENDPOINT_NAME set) -> botocore
sagemaker-runtime -> a real local HTTP InvokeEndpoint route running the entry point -> the same response."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.conftest import load_event

HANDLER_PATH = Path(__file__).resolve().parents[3] / "lambda_src" / "handler.py"
INLINE = ["direct.json", "direct_options.json", "http_api_v2_binary.json", "http_api_v2_json.json", "rest_v1.json",
          "function_url.json"]


class Context:
    aws_request_id = "req-remote"


def load_handler(monkeypatch, name, **env):
    for key in ("ENDPOINT_NAME", "MODEL_URI"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    spec = importlib.util.spec_from_file_location(name, HANDLER_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def invoke(module, event):
    response = module.handler(event, Context())
    json.dumps(response)
    if "statusCode" in response:
        return response["statusCode"], json.loads(response["body"])
    return response.get("error", {}).get("status", 200), response


def comparable(body):
    """Everything but the timings, whose keys must still match."""
    return {k: v for k, v in body.items() if k != "timings_ms"}, sorted(body.get("timings_ms", {}))


@pytest.fixture(params=[{}, {"output_format": "detr", "resize": "stretch"}, {"pad_position": "bottom_right"}],
                ids=["bsl-letterbox-center", "detr-stretch", "bsl-letterbox-bottom-right"])
def bundle(request, known_answer_bundles):
    return known_answer_bundles(**request.param)


def test_every_inline_event_gets_the_lambda_backends_response(monkeypatch, runtime_env, bundle):
    runtime_env.serve("det-gpu", bundle.root)
    local = load_handler(monkeypatch, "handler_lambda_backend", MODEL_URI=bundle.root)
    remote = load_handler(monkeypatch, "handler_gpu_backend", MODEL_URI=bundle.root, ENDPOINT_NAME="det-gpu")
    assert type(remote.SERVICE.detector()).__name__ == "RemoteDetector"
    for name in INLINE:
        event = load_event(name)
        status_local, body_local = invoke(local, event)
        status_remote, body_remote = invoke(remote, event)
        assert (status_remote, comparable(body_remote)) == (status_local, comparable(body_local)), name
        assert status_remote == 200 and body_remote["detections"], name
    sent = runtime_env.requests
    assert len(sent) == len(INLINE)
    assert {(r["endpoint"], r["content_type"], r["accept"]) for r in sent} == {
        ("det-gpu", "application/x-npy", "application/x-npz")}
    # the uint8 model-size image, not the JPEG and not a float32 tensor
    height, width = bundle.manifest.input.height, bundle.manifest.input.width
    assert all(r["bytes"] <= height * width * 3 + 128 for r in sent)


def test_annotate_and_options_are_applied_on_the_lambda(monkeypatch, runtime_env, known_answer_bundle):
    runtime_env.serve("det-gpu", known_answer_bundle.root)
    remote = load_handler(monkeypatch, "handler_gpu_options", MODEL_URI=known_answer_bundle.root, ENDPOINT_NAME="det-gpu")
    event = load_event("direct.json")
    status, body = invoke(remote, {**event, "annotate": True, "classes": ["circle"]})
    assert status == 200 and body["detections"] == [] and body["annotated_image"]
    status, body = invoke(remote, {**event, "classes": ["unicorn"]})
    assert status == 400 and "unicorn" in body["error"]["message"]
    assert len(runtime_env.requests) == 1  # the unknown class never reached the endpoint


@pytest.mark.parametrize(
    ("endpoint", "serve_other_model", "status", "code"),
    [
        ("det-missing", False, 503, "EndpointUnavailable"),   # ValidationError: no such endpoint
        ("det-other", True, 502, "EndpointError"),            # serves a different model than MODEL_URI
    ],
)
def test_endpoint_failures_are_clear(monkeypatch, runtime_env, known_answer_bundles, endpoint, serve_other_model,
                                     status, code):
    mine = known_answer_bundles()
    if serve_other_model:
        runtime_env.serve(endpoint, known_answer_bundles(output_format="detr").root)
    remote = load_handler(monkeypatch, f"handler_{endpoint}", MODEL_URI=mine.root, ENDPOINT_NAME=endpoint)
    got_status, body = invoke(remote, load_event("http_api_v2_binary.json"))
    assert (got_status, body["error"]["code"]) == (status, code)
    assert endpoint in body["error"]["message"]


def test_a_container_error_comes_back_as_a_502(runtime_env, known_answer_bundles):
    from detection.remote import RemoteDetector, load_manifest

    runtime_env.serve("det-gpu", known_answer_bundles().root)
    manifest, class_map = load_manifest(str(known_answer_bundles().root))
    detector = RemoteDetector(manifest, class_map, endpoint_name="det-gpu")
    import numpy as np
    from detection.errors import DetectionError

    with pytest.raises(DetectionError) as raised:
        detector.run_model(np.zeros((7, 7, 3), np.uint8))  # not resized for the model: the container says 400
    assert raised.value.status == 502 and "400" in raised.value.message


def test_unreachable_endpoint_is_a_503(monkeypatch, runtime_env, known_answer_bundle):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "http://127.0.0.1:9")  # discard port: refused
    remote = load_handler(monkeypatch, "handler_unreachable", MODEL_URI=known_answer_bundle.root, ENDPOINT_NAME="det-gpu")
    remote.SERVICE.detector().client.meta.config.retries["max_attempts"] = 1
    status, body = invoke(remote, load_event("direct.json"))
    assert (status, body["error"]["code"]) == (503, "EndpointUnavailable")


def test_the_manifest_comes_from_s3_without_the_model(moto_endpoint, known_answer_bundle):
    import boto3

    from detection.remote import load_manifest

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="remote-models")
    for name in ("model.json", "class_map.json"):  # no model.onnx: the Lambda must not need it
        s3.put_object(Bucket="remote-models", Key=f"v1/{name}", Body=(known_answer_bundle.root / name).read_bytes())
    s3.put_object(Bucket="remote-models", Key="latest/latest.json", Body=b'{"uri": "s3://remote-models/v1/"}')
    for uri in ("s3://remote-models/v1/", "s3://remote-models/latest/"):
        manifest, class_map = load_manifest(uri)
        assert manifest == known_answer_bundle.manifest and class_map == known_answer_bundle.class_map
    from detection.errors import BundleError

    with pytest.raises(BundleError, match="no model.json or latest.json"):
        load_manifest("s3://remote-models/nothing/")
