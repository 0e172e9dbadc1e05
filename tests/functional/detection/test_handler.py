"""The handler in-process with real bundles, real onnxruntime and a real moto S3 (the built-package runs of
the same checks live in tests/functional/lambda_package/)."""

import base64
import importlib.util
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from detection.settings import Settings
from handler import Service
from tests.conftest import load_event
from tests.support.known_answer import build_known_answer_bundle, square_image

HANDLER_PATH = Path(__file__).resolve().parents[3] / "lambda_src" / "handler.py"
SQUARE = (40, 30, 120, 90)


def load_handler(model_uri, **env):
    """A container's service built from this environment (no process environment touched)."""
    return Service(Settings.from_env({"MODEL_URI": str(model_uri), **{k: str(v) for k, v in env.items()}}))


class Context:
    aws_request_id = "req-1234"


def invoke(module, event):
    response = module.handle(event, Context())
    json.dumps(response)  # must be serializable as Lambda will do
    if "statusCode" in response:
        return response["statusCode"], json.loads(response["body"])
    return response.get("error", {}).get("status", 200), response


def boxes(body):
    return [(d["label"], d["box"]) for d in body["detections"]]


@pytest.fixture()
def handler(known_answer_bundle):
    return load_handler(known_answer_bundle.root)


@pytest.fixture()
def s3_image(moto_endpoint, square_jpeg):
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="detection-inputs")
    s3.put_object(Bucket="detection-inputs", Key="photos/square.jpg", Body=square_jpeg)
    return "s3://detection-inputs/photos/square.jpg"


INLINE = ["direct.json", "http_api_v2_binary.json", "http_api_v2_json.json", "rest_v1.json", "function_url.json"]
S3 = ["s3_object.json", "image_uri.json"]  # notifications: test_s3jobs.py


def test_every_event_shape_finds_the_square(handler, s3_image):
    results = {}
    for name in INLINE + S3:
        status, body = invoke(handler, load_event(name))
        assert status == 200, (name, body)
        results[name] = boxes(body)
        assert body["image"] == {"width": 160, "height": 120}
        assert set(body["timings_ms"]) == {"decode", "preprocess", "inference", "postprocess", "total"}
        assert body["model"]["sha256"] and body["model"]["name"].startswith("known-answer")
    reference = results["direct.json"]
    assert len(reference) == 1 and reference[0][0] == "square"
    assert reference[0][1] == pytest.approx(list(SQUARE), abs=1.5)
    assert all(found == reference for found in results.values()), results


def test_http_responses_are_proxy_shaped(handler):
    response = handler.handle(load_event("http_api_v2_binary.json"), Context())
    assert response["statusCode"] == 200 and response["isBase64Encoded"] is False
    assert response["headers"]["content-type"] == "application/json"
    assert json.loads(response["body"])["detections"]


@pytest.mark.parametrize(
    "output_format, resize, pad_position",
    [(f, r, p) for f in ("boxes_scores_labels", "detr") for r in ("letterbox", "stretch") for p in ("center", "bottom_right")],
)
@pytest.mark.parametrize("size, box", [((640, 360), (100, 50, 300, 200)), ((300, 900), (10, 600, 290, 890))])
def test_boxes_land_on_the_object(known_answer_bundles, output_format, resize, pad_position, size, box):
    bundle = known_answer_bundles(output_format=output_format, resize=resize, pad_position=pad_position)
    module = load_handler(bundle.root)
    image = square_image(width=size[0], height=size[1], box=box)
    status, body = invoke(module, {"image": base64.b64encode(image).decode()})
    assert status == 200
    (detection,) = body["detections"]
    # one input-tensor pixel is the resolution limit: original / tensor size on each axis
    tolerance = max(size[0] / 128, size[1] / 96) + 1
    assert detection["box"] == pytest.approx(list(box), abs=tolerance)
    assert detection["label"] == "square" and detection["class_id"] == 1 and detection["score"] == 0.9


def test_exif_rotated_photo_reports_boxes_upright(handler):
    # stored 60x40 with the block at top-left; orientation 6 shows it rotated 90 degrees clockwise
    data = square_image(width=160, height=120, box=(0, 0, 60, 30), exif_orientation=6)
    status, body = invoke(handler, {"image": base64.b64encode(data).decode()})
    assert status == 200 and body["image"] == {"width": 120, "height": 160}
    assert body["detections"][0]["box"] == pytest.approx([90, 0, 120, 60], abs=2.5)


def test_options_threshold_classes_annotate(handler, square_jpeg):
    b64 = base64.b64encode(square_jpeg).decode()
    assert invoke(handler, {"image": b64, "threshold": 0.95})[1]["detections"] == []
    assert invoke(handler, {"image": b64, "classes": ["circle"]})[1]["detections"] == []
    status, body = invoke(handler, {"image": b64, "annotate": True})
    annotated = Image.open(io.BytesIO(base64.b64decode(body["annotated_image"])))
    assert status == 200 and annotated.size == (160, 120)


def test_env_threshold_is_the_default(known_answer_bundle, square_jpeg):
    module = load_handler(known_answer_bundle.root, SCORE_THRESHOLD="0.95")
    assert invoke(module, {"image": base64.b64encode(square_jpeg).decode()})[1]["detections"] == []


def _bomb():
    buffer = io.BytesIO()
    Image.new("L", (20000, 20000)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


ERRORS = [
    ({"image": "not base64!"}, 400, "BadRequest", "base64"),
    ({"image": base64.b64encode(b"plain text").decode()}, 415, "UnsupportedMediaType", "not a supported image"),
    ({"threshold": 2, "image": "aGk="}, 400, "BadRequest", "threshold"),
    ({"classes": ["unicorn"], "image": "aGk="}, 400, "BadRequest", "unknown class name(s) unicorn"),
    ({"photo": "aGk="}, 400, "BadRequest", "unknown key(s) 'photo': send the image as image or image_uri or s3"),
    ({}, 400, "BadRequest", "no image"),
    ("just a string", 400, "BadRequest", "JSON object"),
]


@pytest.mark.parametrize("event, status, code, message", ERRORS)
def test_bad_requests_get_clear_errors_and_the_container_stays_warm(handler, square_jpeg, event, status, code, message):
    got_status, body = invoke(handler, event)
    assert (got_status, body["error"]["code"]) == (status, code)
    assert message in body["error"]["message"]
    ok_status, ok_body = invoke(handler, {"image": base64.b64encode(square_jpeg).decode()})
    assert ok_status == 200 and len(ok_body["detections"]) == 1


def test_http_error_statuses(handler):
    event = load_event("http_api_v2_json.json")
    event["body"] = "{broken"
    assert invoke(handler, event)[0] == 400
    event = load_event("http_api_v2_binary.json")
    event["body"] = base64.b64encode(b"GIF89a-broken").decode()
    assert invoke(handler, event)[0] == 415


def test_too_large_is_413(known_answer_bundle, square_jpeg):
    module = load_handler(known_answer_bundle.root, MAX_IMAGE_BYTES=100)
    status, body = invoke(module, {"image": base64.b64encode(square_jpeg).decode()})
    assert status == 413 and "upload it to S3" in body["error"]["message"]
    module = load_handler(known_answer_bundle.root)
    status, body = invoke(module, {"image": _bomb()})
    assert status == 413 and "pixels" in body["error"]["message"]


def test_missing_s3_object_is_404(handler, s3_image):
    status, body = invoke(handler, {"image_uri": "s3://detection-inputs/photos/missing.jpg"})
    assert status == 404 and "does not exist" in body["error"]["message"]
    status, _ = invoke(handler, {"s3": {"bucket": "no-such-bucket-here", "key": "a.jpg"}})
    assert status == 404


def test_our_own_fault_is_500_with_request_id_and_logged(tmp_path, square_jpeg, capsys):
    bundle = build_known_answer_bundle(tmp_path / "b")
    manifest = json.loads((bundle.root / "model.json").read_text())
    manifest["input"]["name"] = "wrong_input_name"  # a bundle bug: ORT will refuse the feed
    (bundle.root / "model.json").write_text(json.dumps(manifest))
    module = load_handler(bundle.root)
    status, body = invoke(module, {"image": base64.b64encode(square_jpeg).decode()})
    assert status == 500 and "req-1234" in body["error"]["message"]
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["level"] == "ERROR" and record["request_id"] == "req-1234" and "trace" in record


def test_one_structured_log_line_per_request_without_image_data(handler, square_jpeg, capsys):
    capsys.readouterr()
    invoke(handler, {"image": base64.b64encode(square_jpeg).decode()})
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["status"] == 200 and record["detections"] == 1 and record["image_bytes"] == len(square_jpeg)
    assert set(record["timings_ms"]) >= {"decode", "preprocess", "inference", "postprocess"}
    assert base64.b64encode(square_jpeg).decode()[:40] not in lines[0]


def test_missing_model_uri_is_an_init_style_error(monkeypatch):
    monkeypatch.delenv("MODEL_URI", raising=False)
    spec = importlib.util.spec_from_file_location("handler_no_model", HANDLER_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # no MODEL_URI: import succeeds, the first request explains
    status, body = invoke(module.SERVICE, {"image": "aGk="})
    assert status == 500
