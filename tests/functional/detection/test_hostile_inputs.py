"""Issue #14's "Why" list, one test each: what a hostile caller sends gets a 4xx saying what to send instead
(never a 500), the work per request stays bounded, and the answers are right. Real handler, real bundle, real
onnxruntime, real botocore against a real moto S3 process."""

import base64
import io
import json
import time

import numpy as np
import pytest
from PIL import Image

from detection.settings import Settings
from handler import Service
from tests.conftest import load_event


RESPONSE_LIMIT_BYTES = 6 * 1024 * 1024  # Lambda's synchronous response limit (6,291,456 bytes)


class Context:
    aws_request_id = "req-hostile"


@pytest.fixture()
def service(known_answer_bundle):
    return Service(Settings.from_env({"MODEL_URI": str(known_answer_bundle.root)}))


def invoke(service, event):
    response = service.handle(event, Context())
    text = json.dumps(response)
    if "statusCode" in response:
        return response["statusCode"], json.loads(response["body"]), len(text)
    return response.get("error", {}).get("status", 200), response, len(text)


def http_json(body: str, **extra) -> dict:
    event = load_event("http_api_v2_json.json")
    return {**event, "body": body, "isBase64Encoded": False, **extra}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def assert_client_error(status, body, *, expect_status=400, says=""):
    assert 400 <= status < 500 and status == expect_status, body
    assert body["error"]["status"] == status and says in body["error"]["message"], body


# ---------------------------------------------------------------- caller input that got a 500


def test_deeply_nested_json_body_is_400(service):
    status, body, _ = invoke(service, http_json("[" * 100_000 + "]" * 100_000))
    assert_client_error(status, body, says="nested too deeply")


@pytest.mark.parametrize("event", [
    {"threshold": 10 ** 400},
    {"threshold": True},
    {"max_detections": 10 ** 400},
])
def test_huge_or_odd_numbers_are_400(service, square_jpeg, event):
    status, body, _ = invoke(service, {"image": b64(square_jpeg), **event})
    assert_client_error(status, body, says="option")


def test_a_400_digit_threshold_over_http_is_400(service, square_jpeg):
    status, body, _ = invoke(service, http_json('{"image": "%s", "threshold": %s}' % (b64(square_jpeg), "9" * 400)))
    assert_client_error(status, body, says="threshold must be a number between 0 and 1")


@pytest.mark.parametrize("event, says", [
    ({"s3": {"bucket": "", "key": "x"}}, "is not an S3 bucket name"),
    ({"s3": {"bucket": "detection-inputs", "key": ""}}, "an object key is 1 to 1024 bytes"),
    ({"image_uri": "s3://bad bucket!/x"}, "is not an S3 bucket name"),
    ({"image_uri": "s3://arn:aws:s3:us-east-1:123456789012:accesspoint/ap/photo.jpg"}, "access points are not supported"),
    ({"s3": {"bucket": "arn:aws:s3:us-east-1:123456789012:accesspoint/ap", "key": "a.jpg"}}, "is an ARN"),
    ({"s3": {"bucket": "detection-inputs", "key": "k" * 1025}}, "1 to 1024 bytes"),
    ({"s3": {"bucket": "detection-inputs", "key": "\udcff"}}, "not valid UTF-8"),
    ({"s3": {"bucket": 5, "key": "x"}}, "two strings"),
])
def test_s3_locations_botocore_would_refuse_are_400(service, moto_endpoint, event, says):
    status, body, _ = invoke(service, event)
    assert_client_error(status, body, says=says)


def _http_v2(**changes):
    event = load_event("http_api_v2_binary.json")
    event.update(changes)
    return event


@pytest.mark.parametrize("event, says", [
    (_http_v2(headers=["content-type", "image/jpeg"]), "headers must be a JSON object"),
    (_http_v2(queryStringParameters=["threshold"]), "queryStringParameters must be a JSON object"),
    ({**load_event("rest_v1.json"), "multiValueQueryStringParameters": {"classes": "square"}},
     "multiValueQueryStringParameters must map names to lists of strings"),
    ({**load_event("rest_v1.json"), "headers": "content-type: image/jpeg"}, "headers must be a JSON object"),
    ({"Records": [1]}, "unknown key(s) 'Records'"),
])
def test_malformed_event_members_are_400(service, event, says):
    status, body, _ = invoke(service, event)
    assert_client_error(status, body, says=says)


@pytest.mark.parametrize("changes", [{"requestContext": None}, {"requestContext": {"http": None}}])
def test_null_request_context_still_answers_as_http(service, changes):
    response = service.handle(_http_v2(**changes), Context())
    assert response["statusCode"] == 200 and json.loads(response["body"])["detections"]


def test_an_http_event_that_fails_early_still_gets_an_http_response(service):
    response = service.handle(_http_v2(requestContext={"http": "GET"}), Context())
    assert response["statusCode"] == 400 and "requestContext.http must be a JSON object" in response["body"]


# ---------------------------------------------------------------- bounded work per request


def test_an_extreme_aspect_image_is_refused_before_decoding(service):
    data = png(np.zeros((40_000_000, 1), np.uint8))  # under 50 MP, ~40 KB of PNG
    assert len(data) < 300_000
    start = time.process_time()
    status, body, _ = invoke(service, {"image": b64(data)})
    assert_client_error(status, body, says="aspect ratio 40000000:1; the limit is 20:1")
    print(f"refused in {time.process_time() - start:.3f} s of CPU")


def test_resize_tables_stay_within_their_byte_budget(service, monkeypatch):
    from detection import preprocess

    monkeypatch.setattr(preprocess.resize_tables, "max_bytes", 4 * 1024 * 1024)  # a small budget, quick to fill
    preprocess.resize_tables.clear()
    for height in range(300, 420, 7):  # distinct heights accumulated without bound under lru_cache
        status, _, _ = invoke(service, {"image": b64(png(np.full((height, 2000, 3), 90, np.uint8)))})
        assert status == 200
        assert preprocess.resize_tables.nbytes <= 4 * 1024 * 1024
    assert len(preprocess.resize_tables) >= 2


def test_a_huge_classes_list_is_refused(service, square_jpeg):
    names = [f"class-{i}" for i in range(600_000)]
    status, body, _ = invoke(service, {"image": b64(square_jpeg), "classes": names})
    assert_client_error(status, body, says="the limit is 1000")
    status, body, _ = invoke(service, {"image": b64(square_jpeg), "classes": ",".join(names)})
    assert_client_error(status, body, says="name at most 1000 classes")


def test_annotate_stays_under_lambdas_response_limit(known_answer_bundle):
    service = Service(Settings.from_env({"MODEL_URI": str(known_answer_bundle.root), "MAX_IMAGE_BYTES": "40000000"}))
    noise = np.random.default_rng(1).integers(0, 256, (2400, 3200, 3), dtype=np.uint8)  # ~6 MB as JPEG q85
    for event in ({"image": b64(png(noise)), "annotate": True},
                  http_json(json.dumps({"image": b64(png(noise)), "annotate": True}))):
        status, body, size = invoke(service, event)
        assert status == 200 and size <= RESPONSE_LIMIT_BYTES, size
        annotated = Image.open(io.BytesIO(base64.b64decode(body["annotated_image"])))
        assert annotated.size[0] / annotated.size[1] == pytest.approx(4 / 3, rel=0.01) and annotated.size[0] < 3200


# ---------------------------------------------------------------- wrong answers


def test_rest_v1_repeated_query_options_are_all_read(service):
    event = load_event("rest_v1.json")
    # API Gateway keeps only the last value in queryStringParameters, every value in the multi-value map
    event["queryStringParameters"] = {"classes": "circle"}
    event["multiValueQueryStringParameters"] = {"classes": ["square", "circle"]}
    status, body, _ = invoke(service, event)
    assert status == 200 and [d["label"] for d in body["detections"]] == ["square"]


@pytest.mark.parametrize("event_name, where", [("direct.json", "body"), ("http_api_v2_binary.json", "query"),
                                                ("http_api_v2_json.json", "body")])
def test_misspelled_option_keys_are_400_naming_the_known_ones(service, event_name, where):
    event = load_event(event_name)
    if where == "query":
        event["queryStringParameters"] = {"treshold": "0.9"}
    elif "body" in event:
        event["body"] = json.dumps({**json.loads(event["body"]), "treshold": 0.9})
    else:
        event["treshold"] = 0.9
    status, body, _ = invoke(service, event)
    assert_client_error(status, body, says="'treshold'")
    assert "threshold, classes, max_detections, annotate" in body["error"]["message"]


def test_sixteen_bit_grey_png_keeps_its_brightness(service):
    from detection.image import decode_image

    dark = png(np.full((32, 48), 4096, np.uint16))  # 1/16 of full scale
    assert Image.open(io.BytesIO(dark)).mode.startswith("I")
    assert np.unique(decode_image(dark).array).tolist() == [16]
    ramp = png(np.linspace(0, 65535, 48 * 32).reshape(32, 48).astype(np.uint16))
    decoded = decode_image(ramp).array[..., 0]
    assert decoded.min() == 0 and decoded.max() == 255
