"""AWS Lambda entry point (``handler.handler``): event -> image -> detections -> response.

Configuration (environment):
    MODEL_URI         s3://bucket/prefix/ or a local directory holding model.json, model.onnx, class_map.json
    SCORE_THRESHOLD   default score threshold (overrides the manifest's), 0..1
    MODEL_CACHE_DIR   where S3 bundles are cached (default /tmp/model-bundles)
    MAX_IMAGE_BYTES   largest accepted image (default 20 MiB; Lambda's payload limit is 6 MB: use S3 above)
    MAX_IMAGE_PIXELS  largest accepted image in pixels (default 50 MP), checked before decoding
    JPEG_DRAFT        1 (default) lets the JPEG decoder reduce big photos to the size the model needs
    ORT_THREADS       ONNX Runtime intra-op threads (default: the vCPUs Lambda gives this memory size)
    ENDPOINT_NAME     set by Backend=gpu|inferentia: forward to that SageMaker endpoint (detection.remote);
                      the response schema and options stay the same
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

from detection.errors import BadRequest, DetectionError, Forbidden, NotFound, PayloadTooLarge
from detection.events import DEFAULT_MAX_IMAGE_BYTES, Request, parse_event
from detection.image import DEFAULT_MAX_PIXELS
from detection.pipeline import Detector
from detection.response import error_body, respond

MAX_IMAGE_BYTES = int(os.environ.get("MAX_IMAGE_BYTES", DEFAULT_MAX_IMAGE_BYTES))

_detector: Detector | None = None
_s3 = None


def _env_threshold() -> float | None:
    raw = os.environ.get("SCORE_THRESHOLD", "").strip()
    if not raw:
        return None
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"SCORE_THRESHOLD must be between 0 and 1, got {raw}")
    return value


def load_detector() -> Detector:
    """Load the model once per container (at import when MODEL_URI is set: Lambda's init phase)."""
    global _detector
    if _detector is None:
        uri = os.environ.get("MODEL_URI", "").strip()
        if not uri:
            raise RuntimeError("MODEL_URI is not set: point it at s3://bucket/prefix/ or a bundle directory")
        endpoint = os.environ.get("ENDPOINT_NAME", "").strip()
        if endpoint:  # Backend=gpu|inferentia: same interface and response, the model runs on the endpoint
            from detection.remote import RemoteDetector

            _detector = RemoteDetector.from_uri(uri, endpoint_name=endpoint, draft=os.environ.get("JPEG_DRAFT", "1") != "0",
                                                max_pixels=int(os.environ.get("MAX_IMAGE_PIXELS", DEFAULT_MAX_PIXELS)))
            return _detector
        threads = int(os.environ["ORT_THREADS"]) if os.environ.get("ORT_THREADS") else None
        _detector = Detector.from_uri(
            uri,
            cache_dir=os.environ.get("MODEL_CACHE_DIR", "/tmp/model-bundles"),
            threads=threads,
            draft=os.environ.get("JPEG_DRAFT", "1") != "0",
            max_pixels=int(os.environ.get("MAX_IMAGE_PIXELS", DEFAULT_MAX_PIXELS)),
        )
    return _detector


DEFAULT_THRESHOLD = _env_threshold()


def _s3_client():
    global _s3
    if _s3 is None:
        import boto3  # in the Lambda runtime; honours AWS_ENDPOINT_URL

        _s3 = boto3.client("s3")
    return _s3


def read_s3_image(bucket: str, key: str) -> bytes:
    """The caller's S3 object; their mistakes are 404/403/413, not our 500."""
    from botocore.exceptions import ClientError

    location = f"s3://{bucket}/{key}"
    try:
        obj = _s3_client().get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound") or status == 404:
            raise NotFound(f"{location} does not exist") from None
        if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled") or status == 403:
            raise Forbidden(f"this function may not read {location} (access denied)") from None
        if code in ("InvalidBucketName", "KeyTooLongError"):
            raise BadRequest(f"{location} is not a valid S3 location ({code})") from None
        raise
    if obj.get("ContentLength", 0) > MAX_IMAGE_BYTES:
        raise PayloadTooLarge(f"{location} is {obj['ContentLength']} bytes; the limit is {MAX_IMAGE_BYTES}")
    return obj["Body"].read()


def _log(record: dict) -> None:
    sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def handle(request: Request, *, threshold: float | None) -> dict:
    detector = load_detector()
    image = request.image if request.image is not None else read_s3_image(request.s3_bucket, request.s3_key)
    options = request.options
    return detector.detect_bytes(
        image,
        threshold=options.threshold if options.threshold is not None else threshold,
        classes=options.classes,
        max_detections=options.max_detections,
        annotate=options.annotate,
    )


def handler(event, context):
    start = time.perf_counter()
    request_id = getattr(context, "aws_request_id", None)
    record = {"level": "INFO", "request_id": request_id, "message": "detect"}
    http = isinstance(event, dict) and ("requestContext" in event)
    try:
        request = parse_event(event, max_bytes=MAX_IMAGE_BYTES)
        http = request.http
        record.update(event_kind=request.kind, image_bytes=len(request.image) if request.image else None)
        body = handle(request, threshold=DEFAULT_THRESHOLD)
        status = 200
        record.update(image=body["image"], detections=len(body["detections"]), timings_ms=body["timings_ms"])
    except DetectionError as exc:
        status, body = exc.status, error_body(exc)
        record.update(level="WARNING" if status < 500 else "ERROR", error=exc.code, error_message=exc.message)
    except Exception as exc:  # our fault: log the trace with the request id, tell the caller only that much
        status = 500
        body = {"error": {"code": "InternalError", "status": 500,
                          "message": f"internal error; quote request id {request_id} when reporting it"}}
        record.update(level="ERROR", error=type(exc).__name__, error_message=str(exc),
                      trace=traceback.format_exc(limit=8))
    record.update(status=status, duration_ms=round((time.perf_counter() - start) * 1000, 2))
    _log(record)
    return respond(http=http, status=status, body=body)


if os.environ.get("MODEL_URI"):
    load_detector()
