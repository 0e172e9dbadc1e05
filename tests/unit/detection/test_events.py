import base64
import json

import pytest

from detection.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from detection.events import Options, event_kind, parse_event, parse_options
from tests.conftest import load_event

ALL_INLINE = ["direct.json", "direct_options.json", "http_api_v2_binary.json", "http_api_v2_json.json",
              "rest_v1.json", "function_url.json"]


@pytest.mark.parametrize(
    "name, kind",
    [("direct.json", "direct"), ("s3_object.json", "s3"), ("image_uri.json", "s3"),
     ("http_api_v2_binary.json", "http_v2"), ("http_api_v2_json.json", "http_v2"), ("rest_v1.json", "rest_v1"),
     ("function_url.json", "function_url")],
)
def test_every_fixture_parses_to_its_kind(name, kind):
    assert parse_event(load_event(name)).kind == kind


@pytest.mark.parametrize("name", ALL_INLINE)
def test_inline_fixtures_carry_the_same_image(name, square_jpeg):
    assert parse_event(load_event(name)).image == square_jpeg


@pytest.mark.parametrize("name", ["s3_object.json", "image_uri.json"])
def test_s3_fixtures_name_the_object(name):
    request = parse_event(load_event(name))
    assert (request.s3_bucket, request.s3_key) == ("detection-inputs", "photos/square.jpg")


def test_options_from_query_string_and_json_body():
    assert parse_event(load_event("http_api_v2_binary.json")).options.threshold == 0.5
    assert parse_event(load_event("function_url.json")).options.max_detections == 10
    options = parse_event(load_event("direct_options.json")).options
    assert options == Options(threshold=0.3, classes=("square",), max_detections=5, annotate=False)


def test_json_body_options_override_query_string():
    event = load_event("http_api_v2_json.json")
    event["queryStringParameters"] = {"threshold": "0.9", "annotate": "true"}
    options = parse_event(event).options
    assert options.threshold == 0.5 and options.annotate is True


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({}, Options()),
        ({"threshold": "0"}, Options(threshold=0.0)),
        ({"classes": "cat, dog,"}, Options(classes=("cat", "dog"))),
        ({"classes": ["cat"]}, Options(classes=("cat",))),
        ({"max_detections": 1000}, Options(max_detections=1000)),
        ({"annotate": "1"}, Options(annotate=True)),
        ({"annotate": False}, Options()),
    ],
)
def test_parse_options(raw, expected):
    assert parse_options(raw) == expected


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"threshold": "high"}, "threshold must be a number"),
        ({"threshold": 1.5}, "between 0 and 1"),
        ({"threshold": "nan"}, "between 0 and 1"),
        ({"classes": 3}, "classes must be a list"),
        ({"classes": ""}, "classes is empty"),
        ({"max_detections": "ten"}, "max_detections must be an integer"),
        ({"max_detections": 0}, "between 1 and 1000"),
        ({"annotate": "maybe"}, "annotate must be true or false"),
        ({"treshold": 0.5}, "unknown option.*'treshold'.*threshold, classes, max_detections, annotate"),
    ],
)
def test_bad_options_are_400(raw, message):
    with pytest.raises(BadRequest, match=message):
        parse_options(raw)


@pytest.mark.parametrize(
    "event, error, message",
    [
        ("not a dict", BadRequest, "JSON object"),
        ({}, BadRequest, "no image"),
        ({"image": "###"}, BadRequest, "not valid base64"),
        ({"image": 12}, BadRequest, "base64 string"),
        ({"image_uri": "https://x/y.jpg"}, BadRequest, "s3://bucket/key"),
        ({"image_uri": "s3://bucket-only"}, BadRequest, "s3://bucket/key"),
        ({"s3": {"bucket": "b"}}, BadRequest, "bucket"),
    ],
)
def test_bad_direct_events(event, error, message):
    with pytest.raises(error, match=message):
        parse_event(event)


def test_data_url_prefix_and_whitespace_are_tolerated(square_jpeg):
    text = "data:image/jpeg;base64," + base64.b64encode(square_jpeg).decode()
    wrapped = "\n".join(text[i:i + 76] for i in range(0, len(text), 76))
    assert parse_event({"image": wrapped}).image == square_jpeg


def test_http_errors():
    event = load_event("http_api_v2_binary.json")
    with pytest.raises(BadRequest, match="not valid JSON"):
        parse_event({**event, "body": "{not json", "isBase64Encoded": False,
                     "headers": {"content-type": "application/json"}})
    with pytest.raises(BadRequest, match="empty request body"):
        parse_event({**event, "body": ""})
    with pytest.raises(BadRequest, match="use POST"):
        parse_event({**event, "requestContext": {**event["requestContext"], "http": {"method": "GET"}}})
    with pytest.raises(UnsupportedMediaType, match="multipart"):
        parse_event({**event, "isBase64Encoded": False, "body": "--x\r\n",
                     "headers": {"content-type": "multipart/form-data; boundary=x"}})
    with pytest.raises(PayloadTooLarge):
        parse_event(event, max_bytes=100)


def test_event_kind_on_lookalikes():
    assert event_kind({"version": "2.0"}) == "direct"  # no requestContext: not an HTTP event
    assert event_kind({"Records": []}) == "direct"
    assert json.loads(json.dumps(load_event("rest_v1.json")))["httpMethod"] == "POST"
