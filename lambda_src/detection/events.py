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
MAX_CLASS_NAMES = 1000  # bounds the per-request cost of the classes filter (a model has at most a few hundred)
MAX_CLASS_NAME_CHARS = 200
MAX_S3_KEY_BYTES = 1024
DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024
HTTP_KINDS = ("http_v2", "function_url", "rest_v1")
JOB_KINDS = ("s3_notification", "batch")
OPTION_KEYS = ("threshold", "classes", "max_detections", "annotate")
IMAGE_KEYS = ("image", "image_uri", "s3")
_DATA_URL = re.compile(r"^data:[\w/+.-]*;base64,", re.IGNORECASE)
_BUCKET_NAME = re.compile(r"[a-zA-Z0-9._-]{1,255}")  # what botocore sends (legacy names included); S3 judges the rest


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


# ---------------------------------------------------------------- values from the caller


def _show(value: Any, limit: int = 60) -> str:
    """A short repr for error messages (never fails: huge ints refuse ``repr``)."""
    try:
        text = repr(value)
    except ValueError:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


def _object(value: Any, what: str) -> Mapping[str, Any]:
    """A JSON object from the caller; ``null`` or missing reads as empty."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def load_json(raw: bytes | str, what: str = "request body") -> Any:
    """``json.loads`` whose every failure is the caller's 400 (bad syntax, bad UTF-8, nesting past the
    interpreter's recursion limit)."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise BadRequest(f"{what} is nested too deeply: send a flat JSON object") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"{what} is not valid JSON: {exc}") from None


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
    raise BadRequest(f"option {name} must be true or false, got {_show(value)}")


def _parse_threshold(value: Any) -> float:
    wanted = f"option threshold must be a number between 0 and 1, got {_show(value)}"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadRequest(wanted)
    try:
        threshold = float(value)
    except (ValueError, OverflowError):  # OverflowError: an integer too large for a float
        raise BadRequest(wanted) from None
    if not 0.0 <= threshold <= 1.0:
        raise BadRequest(wanted)
    return threshold


def _parse_classes(value: Any) -> tuple[str, ...]:
    """Names to keep, bounded so that checking them stays cheap (``MAX_CLASS_NAMES``, ``MAX_CLASS_NAME_CHARS``)."""
    if isinstance(value, str):
        if len(value) > MAX_CLASS_NAMES * (MAX_CLASS_NAME_CHARS + 1):
            raise BadRequest(f"option classes is {len(value)} characters; name at most {MAX_CLASS_NAMES} classes")
        value = [c.strip() for c in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise BadRequest("option classes must be a list of class names or a comma-separated string")
    if len(value) > MAX_CLASS_NAMES:
        raise BadRequest(f"option classes names {len(value)} classes; the limit is {MAX_CLASS_NAMES}")
    long = next((c for c in value if len(c) > MAX_CLASS_NAME_CHARS), None)
    if long is not None:
        raise BadRequest(f"option classes: {_show(long)} is longer than {MAX_CLASS_NAME_CHARS} characters")
    classes = tuple(dict.fromkeys(c for c in value if c))
    if not classes:
        raise BadRequest("option classes is empty: name at least one class, or leave it out")
    return classes


def _parse_max_detections(value: Any) -> int:
    wanted = f"option max_detections must be an integer between 1 and {MAX_DETECTIONS_LIMIT}, got {_show(value)}"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise BadRequest(wanted)
    if isinstance(value, str):
        if not value.strip().isdigit() or len(value) > 12:
            raise BadRequest(wanted)
        value = int(value)
    if not 1 <= value <= MAX_DETECTIONS_LIMIT:
        raise BadRequest(wanted)
    return value


def parse_options(raw: Mapping[str, Any]) -> Options:
    """Validate options from a JSON body or a query string (strings are accepted for every option); a key
    that is not an option is refused, naming the known ones.

    Example:
        >>> parse_options({"classes": "cat,dog", "max_detections": "5"})
        Options(threshold=None, classes=('cat', 'dog'), max_detections=5, annotate=False)
    """
    unknown = sorted(str(k) for k in raw if k not in OPTION_KEYS)
    if unknown:
        raise BadRequest(f"unknown option(s) {', '.join(map(_show, unknown))}; "
                         f"the options are {', '.join(OPTION_KEYS)}")
    get = raw.get
    return Options(
        threshold=_parse_threshold(get("threshold")) if get("threshold") is not None else None,
        classes=_parse_classes(get("classes")) if get("classes") is not None else None,
        max_detections=_parse_max_detections(get("max_detections")) if get("max_detections") is not None else None,
        annotate=_parse_bool(raw["annotate"], "annotate") if "annotate" in raw else False,
    )


def _options_from(*sources: Mapping[str, Any], besides: tuple[str, ...] = IMAGE_KEYS) -> Options:
    """Options merged from ``sources`` (later ones win); every key but ``besides`` (the image's) is an option."""
    merged: dict[str, Any] = {}
    for source in sources:
        merged.update({k: v for k, v in source.items() if k not in besides})
    unknown = sorted(str(k) for k in merged if k not in OPTION_KEYS)
    if unknown and besides:
        raise BadRequest(f"unknown key(s) {', '.join(map(_show, unknown))}: send the image as "
                         f"{' or '.join(besides)} and options among {', '.join(OPTION_KEYS)}")
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


def s3_location(bucket: Any, key: Any) -> tuple[str, str]:
    """A bucket and key S3 will accept, checked before any request is made (so botocore never refuses them).

    Example:
        >>> s3_location("photos", "2026/cat.jpg")
        ('photos', '2026/cat.jpg')
    """
    where = f"s3://{bucket}/{key}" if isinstance(bucket, str) and isinstance(key, str) else "the S3 location"
    if not isinstance(bucket, str) or not isinstance(key, str):
        raise BadRequest('an S3 image is {"bucket": "<name>", "key": "<object key>"} (two strings)')
    if bucket.startswith("arn:"):
        raise BadRequest(f"{_show(bucket)} is an ARN: access points are not supported, send the bucket's name")
    if not _BUCKET_NAME.fullmatch(bucket):
        raise BadRequest(f"{_show(bucket)} is not an S3 bucket name (3-63 of a-z 0-9 . -)")
    try:
        key_bytes = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadRequest(f"{_show(where)}: the key is not valid UTF-8") from None
    if not 1 <= key_bytes <= MAX_S3_KEY_BYTES:
        raise BadRequest(f"{_show(where)}: an object key is 1 to {MAX_S3_KEY_BYTES} bytes, got {key_bytes}")
    return bucket, key


def parse_s3_uri(uri: Any) -> tuple[str, str]:
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise BadRequest(f"image_uri must look like s3://bucket/key, got {_show(uri)}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket or not key:
        raise BadRequest(f"image_uri must look like s3://bucket/key, got {_show(uri)}")
    return s3_location(bucket, key)


def _image_from_json(body: Mapping[str, Any], kind: str, options: Options, max_bytes: int) -> Request:
    given = [k for k in IMAGE_KEYS if k in body]
    if len(given) > 1:
        raise BadRequest(f"send one image: the request has {' and '.join(given)}")
    if "image" in body:
        return Request(kind=kind, image=decode_base64(body["image"], max_bytes=max_bytes), options=options)
    if "image_uri" in body:
        bucket, key = parse_s3_uri(body["image_uri"])
        return Request(kind=kind, s3_bucket=bucket, s3_key=key, options=options)
    if "s3" in body:
        s3 = body["s3"]
        if not isinstance(s3, dict) or set(s3) != {"bucket", "key"}:
            raise BadRequest('s3 must be {"bucket": "...", "key": "..."}')
        bucket, key = s3_location(s3["bucket"], s3["key"])
        return Request(kind=kind, s3_bucket=bucket, s3_key=key, options=options)
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
    return {str(k).lower(): str(v) for k, v in _object(event.get("headers"), "headers").items()}


def _http_method(event: Mapping[str, Any], kind: str) -> str:
    if kind == "rest_v1":
        return str(event.get("httpMethod") or "").upper()
    context = _object(event.get("requestContext"), "requestContext")
    return str(_object(context.get("http"), "requestContext.http").get("method") or "").upper()


def _query(event: Mapping[str, Any], kind: str) -> dict[str, str]:
    """Query options; repeated keys joined with commas, as HTTP API 2.0 sends them (REST v1 keeps only the last
    value in ``queryStringParameters``, all of them in ``multiValueQueryStringParameters``)."""
    query = dict(_object(event.get("queryStringParameters"), "queryStringParameters"))
    if kind == "rest_v1":
        for name, values in _object(event.get("multiValueQueryStringParameters"),
                                    "multiValueQueryStringParameters").items():
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise BadRequest("multiValueQueryStringParameters must map names to lists of strings")
            query[name] = ",".join(values)
    return query


def _parse_http(event: Mapping[str, Any], kind: str, max_bytes: int) -> Request:
    method = _http_method(event, kind)
    if method and method != "POST":
        raise BadRequest(f"use POST with an image body (got {method})")
    query = _query(event, kind)
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
        data = load_json(raw)
        if not isinstance(data, dict):
            raise BadRequest("JSON body must be an object")
        return _image_from_json(data, kind, _options_from(query, data), max_bytes)
    if content_type.startswith("multipart/"):
        raise UnsupportedMediaType("multipart uploads are not supported: send the raw image bytes "
                                   "(curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg') or JSON")
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"image is larger than {max_bytes} bytes")
    return Request(kind=kind, image=raw, options=_options_from(query, besides=()))


def parse_event(event: Any, *, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> Request:
    """Turn any supported event into a ``Request``; ``BadRequest`` (400) says what to send instead.

    Every exception caller-controlled data can cause here is a ``DetectionError`` with a 4xx status.
    """
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
