"""Property-based tests (Hypothesis): whatever a caller sends, event and option parsing and image decoding
either succeed or raise a DetectionError with a 4xx status and a message; nothing else escapes."""

from __future__ import annotations

import base64
import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from detection.errors import DetectionError
from detection.events import IMAGE_KEYS, OPTION_KEYS, Request, parse_event, parse_options
from detection.image import decode_image

CI = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYS = st.sampled_from([*OPTION_KEYS, *IMAGE_KEYS, "bucket", "key", "version", "requestContext", "http", "method",
                        "httpMethod", "headers", "body", "isBase64Encoded", "queryStringParameters",
                        "multiValueQueryStringParameters", "Records", "s3", "content-type", "domainName"]) | st.text(max_size=8)
SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10 ** 300, max_value=10 ** 400)
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.sampled_from(["", "2.0", "POST", "GET", "aGk=", "s3://b/k", "s3://bad bucket!/x", "true", "0.5", "1e999",
                              "application/json", "image/jpeg", "{", "[[[", "x.lambda-url.y"])
           | st.text(max_size=20))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
                    max_leaves=30)


def _outcome(call):
    try:
        return call()
    except DetectionError as error:
        assert 400 <= error.status < 500, (error.status, error.message)
        assert error.message and error.to_dict()["error"]["status"] == error.status
        return error


@CI
@given(st.dictionaries(KEYS, JSON, max_size=6))
def test_any_direct_or_http_like_event_parses_or_is_a_4xx(event):
    result = _outcome(lambda: parse_event(event, max_bytes=1 << 20))
    assert isinstance(result, (Request, DetectionError))


@CI
@given(st.fixed_dictionaries({"version": st.just("2.0"), "requestContext": JSON}, optional={
    "body": JSON, "headers": JSON, "queryStringParameters": JSON, "isBase64Encoded": JSON}))
def test_any_http_v2_event_parses_or_is_a_4xx(event):
    _outcome(lambda: parse_event(event, max_bytes=1 << 20))


@CI
@given(st.fixed_dictionaries({"httpMethod": JSON, "requestContext": JSON}, optional={
    "body": JSON, "headers": JSON, "multiValueQueryStringParameters": JSON, "queryStringParameters": JSON}))
def test_any_rest_v1_event_parses_or_is_a_4xx(event):
    _outcome(lambda: parse_event(event, max_bytes=1 << 20))


@CI
@given(st.dictionaries(st.sampled_from(OPTION_KEYS) | st.text(max_size=6), JSON, max_size=5))
def test_any_options_parse_or_are_a_4xx(raw):
    _outcome(lambda: parse_options(raw))


@CI
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode()))
def test_any_http_json_body_text_parses_or_is_a_4xx(body):
    event = {"version": "2.0", "requestContext": {"http": {"method": "POST"}}, "body": body,
             "headers": {"content-type": "application/json"}}
    _outcome(lambda: parse_event(event))


def _seed_images() -> list[bytes]:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    out = []
    for fmt, mode in (("PNG", "RGB"), ("JPEG", "RGB"), ("GIF", "P"), ("BMP", "RGB"), ("TIFF", "RGB"), ("WEBP", "RGB"),
                      ("PNG", "I;16"), ("PNG", "LA")):
        image = Image.fromarray(array)
        image = image.convert("L").convert("I;16") if mode == "I;16" else image.convert(mode)
        buffer = io.BytesIO()
        image.save(buffer, fmt)
        out.append(buffer.getvalue())
    return out


SEEDS = _seed_images()


@st.composite
def mutated_images(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    cut = draw(st.integers(1, len(data)))
    return bytes(data[:cut])


@CI
@given(mutated_images() | st.binary(max_size=200))
def test_any_image_bytes_decode_or_are_a_4xx(data):
    result = _outcome(lambda: decode_image(data, max_pixels=4_000_000))
    if not isinstance(result, DetectionError):
        assert result.array.dtype == np.uint8 and result.array.ndim == 3 and result.array.shape[2] == 3
