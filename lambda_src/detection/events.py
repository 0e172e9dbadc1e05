"""Every event shape the Lambda accepts -> one ``Request`` (where the image is, and the options).

Shapes: direct invoke ``{"image": "<base64>"}``; S3 ``{"s3": {"bucket", "key"}}`` or ``{"image_uri": "s3://"}``;
API Gateway HTTP API (payload 2.0) and Lambda Function URLs with a raw image body or a JSON body; API Gateway
REST API (v1 proxy). Options (``threshold``, ``classes``, ``max_detections``, ``annotate``) come from the JSON
body or the query string. S3 upload notifications and Distributed Map batches (``JOB_KINDS``) are jobs over
many objects, handled by ``detection.s3jobs``, not single requests.

Example:
    >>> request = parse_event({"image": "aGk=", "threshold": "0.3"})
    >>> request.kind, request.image, request.options.threshold
    ('direct', b'hi', 0.3)
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

MAX_DETECTIONS_LIMIT = 1000
DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024
HTTP_KINDS = ("http_v2", "function_url", "rest_v1")
JOB_KINDS = ("s3_notification", "batch")
_DATA_URL = re.compile(r"^data:[\w/+.-]*;base64,", re.IGNORECASE)


@dataclass(frozen=True)
class Options:
    threshold: float | None = None
    classes: tuple[str, ...] | None = None
    max_detections: int | None = None
    annotate: bool = False


@dataclass(frozen=True)
class Request:
    """``kind`` is direct | s3 | http_v2 | function_url | rest_v1; ``http`` says to answer with statusCode/body."""

    kind: str
    image: bytes | None = None
    s3_bucket: str | None = None
    s3_key: str | None = None
    options: Options = field(default_factory=Options)

    @property
    def http(self) -> bool:
        return self.kind in HTTP_KINDS


# ---------------------------------------------------------------- options


def _parse_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on", ""):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
        return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise BadRequest(f"option {name} must be true or false, got {value!r}")


def parse_options(raw: Mapping[str, Any]) -> Options:
    """Validate options from a JSON body or a query string (strings are accepted for every option).

    Example:
        >>> parse_options({"classes": "cat,dog", "max_detections": "5"})
        Options(threshold=None, classes=('cat', 'dog'), max_detections=5, annotate=False)
    """
    threshold = raw.get("threshold")
    if threshold is not None:
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            raise BadRequest(f"option threshold must be a number between 0 and 1, got {raw['threshold']!r}") from None
        if not 0.0 <= threshold <= 1.0 or threshold != threshold:
            raise BadRequest(f"option threshold must be between 0 and 1, got {threshold}")
    classes = raw.get("classes")
    if classes is not None:
        if isinstance(classes, str):
            classes = [c.strip() for c in classes.split(",")]
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise BadRequest("option classes must be a list of class names or a comma-separated string")
        classes = tuple(c for c in classes if c)
        if not classes:
            raise BadRequest("option classes is empty: name at least one class, or leave it out")
    max_detections = raw.get("max_detections")
    if max_detections is not None:
        try:
            max_detections = int(str(max_detections))
        except ValueError:
            raise BadRequest(f"option max_detections must be an integer, got {raw['max_detections']!r}") from None
        if not 1 <= max_detections <= MAX_DETECTIONS_LIMIT:
            raise BadRequest(f"option max_detections must be between 1 and {MAX_DETECTIONS_LIMIT}, got {max_detections}")
    annotate = _parse_bool(raw["annotate"], "annotate") if "annotate" in raw else False
    return Options(threshold=threshold, classes=classes, max_detections=max_detections, annotate=annotate)


_OPTION_KEYS = ("threshold", "classes", "max_detections", "annotate")


def _options_from(*sources: Mapping[str, Any] | None) -> Options:
    merged: dict[str, Any] = {}
    for source in sources:
        if source:
            merged.update({k: v for k, v in source.items() if k in _OPTION_KEYS})
    return parse_options(merged)


# ---------------------------------------------------------------- image sources


def decode_base64(text: Any, *, what: str = "image", max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> bytes:
    """Strict base64 (a ``data:image/...;base64,`` prefix and whitespace are tolerated)."""
    if not isinstance(text, str):
        raise BadRequest(f"{what} must be a base64 string")
    text = _DATA_URL.sub("", text.strip(), count=1)
    if len(text) * 3 // 4 > max_bytes:
        raise PayloadTooLarge(f"{what} is larger than {max_bytes} bytes; upload it to S3 and send image_uri")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{what} is not valid base64") from None


def parse_s3_uri(uri: Any) -> tuple[str, str]:
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise BadRequest(f"image_uri must look like s3://bucket/key, got {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket or not key:
        raise BadRequest(f"image_uri must look like s3://bucket/key, got {uri!r}")
    return bucket, key


def _image_from_json(body: Mapping[str, Any], kind: str, options: Options, max_bytes: int) -> Request:
    if "image" in body:
        return Request(kind=kind, image=decode_base64(body["image"], max_bytes=max_bytes), options=options)
    if "image_uri" in body:
        bucket, key = parse_s3_uri(body["image_uri"])
        return Request(kind=kind, s3_bucket=bucket, s3_key=key, options=options)
    if "s3" in body:
        s3 = body["s3"]
        if not isinstance(s3, dict) or not isinstance(s3.get("bucket"), str) or not isinstance(s3.get("key"), str):
            raise BadRequest('s3 must be {"bucket": "...", "key": "..."}')
        return Request(kind=kind, s3_bucket=s3["bucket"], s3_key=s3["key"], options=options)
    raise BadRequest('no image: send {"image": "<base64>"}, {"image_uri": "s3://bucket/key"} '
                     'or {"s3": {"bucket": ..., "key": ...}}, or a raw image body over HTTP')


# ---------------------------------------------------------------- event shapes


def event_kind(event: Any) -> str:
    """Which shape ``event`` has, decided by its keys alone (never fails: a malformed event of a shape is
    still that shape, so its errors come back in that shape's form)."""
    if not isinstance(event, dict):
        return "direct"
    context = event.get("requestContext")
    if event.get("version") == "2.0" and "requestContext" in event:
        domain = str(context.get("domainName", "")) if isinstance(context, dict) else ""
        return "function_url" if ".lambda-url." in domain else "http_v2"
    if "httpMethod" in event and "requestContext" in event:
        return "rest_v1"
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict) and "s3" in records[0]:
        return "s3_notification"
    if isinstance(event.get("Items"), list) and "BatchInput" in event:  # a Distributed Map ItemBatcher input
        return "batch"
    return "direct"


def answers_http(event: Any) -> bool:
    """Whether the response must be an HTTP proxy response (statusCode/headers/body)."""
    return event_kind(event) in HTTP_KINDS


def _headers(event: Mapping[str, Any]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}


def _http_method(event: Mapping[str, Any], kind: str) -> str:
    if kind == "rest_v1":
        return str(event.get("httpMethod", "")).upper()
    return str(event.get("requestContext", {}).get("http", {}).get("method", "")).upper()


def _parse_http(event: Mapping[str, Any], kind: str, max_bytes: int) -> Request:
    method = _http_method(event, kind)
    if method and method != "POST":
        raise BadRequest(f"use POST with an image body (got {method})")
    query = dict(event.get("queryStringParameters") or {})
    body = event.get("body")
    if body is None or body == "":
        raise BadRequest("empty request body: POST the image bytes (curl --data-binary @photo.jpg) or JSON")
    if not isinstance(body, str):
        raise BadRequest("request body must be a string")
    if event.get("isBase64Encoded"):
        raw = decode_base64(body, what="request body", max_bytes=max_bytes)
    else:
        raw = body.encode("utf-8", "surrogateescape")
    content_type = _headers(event).get("content-type", "").split(";")[0].strip().lower()
    looks_json = raw[:1] in (b"{", b"[") or content_type == "application/json"
    if looks_json:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"request body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise BadRequest("JSON body must be an object")
        return _image_from_json(data, kind, _options_from(query, data), max_bytes)
    if content_type.startswith("multipart/"):
        raise UnsupportedMediaType("multipart uploads are not supported: send the raw image bytes "
                                   "(curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg') or JSON")
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"image is larger than {max_bytes} bytes")
    return Request(kind=kind, image=raw, options=_options_from(query))


def parse_event(event: Any, *, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> Request:
    """Turn any supported event into a ``Request``; ``BadRequest`` (400) says what to send instead."""
    if not isinstance(event, dict):
        raise BadRequest('event must be a JSON object such as {"image": "<base64>"}')
    kind = event_kind(event)
    if kind in HTTP_KINDS:
        return _parse_http(event, kind, max_bytes)
    if kind in JOB_KINDS:
        raise BadRequest(f"a {kind} event is a job over S3 objects, not one request (see detection.s3jobs)")
    request = _image_from_json(event, "direct", _options_from(event), max_bytes)
    return request if request.image is not None else Request(
        kind="s3", s3_bucket=request.s3_bucket, s3_key=request.s3_key, options=request.options)
