"""S3 access for the Lambda: one client per process, and reads whose failures say what went wrong.

Both the caller's images (``{"s3": ...}`` requests) and the model bundle come from here. S3's error codes
are sorted once: a missing bucket or key is ``NotFound`` (404), a refusal ``Forbidden`` (403), a malformed
location ``BadRequest`` (400); anything else is ``StorageError`` (500, ours). Callers decide what those
mean for them (the bundle fetch turns them into ``BundleError``; an image request passes them on).

Example:
    >>> split_s3_uri("s3://models/dfine/")
    ('models', 'dfine/')
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from .errors import BadRequest, DetectionError, Forbidden, NotFound, PayloadTooLarge

CHUNK_BYTES = 1 << 20

_NOT_FOUND_CODES = ("NoSuchKey", "NoSuchBucket", "404", "NotFound")
_FORBIDDEN_CODES = ("AccessDenied", "403", "Forbidden", "AllAccessDisabled")
_BAD_LOCATION_CODES = ("InvalidBucketName", "KeyTooLongError")

_client = None


class StorageError(DetectionError):
    """S3 failed in a way that is not the caller's doing (throttling, a network fault, a server error)."""

    status = 500
    code = "StorageError"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b/`` -> ``("bucket", "a/b/")``."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {uri!r}")
    return bucket, key


def client():
    """This process's S3 client (made on first use; ``reset_client`` drops it, e.g. after a snapshot restore)."""
    global _client
    if _client is None:
        import boto3  # in the Lambda runtime; imported on first use, it is ~0.3 s of a cold start; honours AWS_ENDPOINT_URL

        _client = boto3.client("s3")
    return _client


def reset_client() -> None:
    global _client
    _client = None


def _translate(exc: Exception, location: str) -> DetectionError:
    from botocore.exceptions import ParamValidationError

    if isinstance(exc, ParamValidationError):  # botocore refused the name before sending anything
        return BadRequest(f"{location} is not a valid S3 location: {exc}")
    response = getattr(exc, "response", None) or {}
    code = response.get("Error", {}).get("Code", "")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in _NOT_FOUND_CODES or status == 404:
        return NotFound(f"{location} does not exist")
    if code in _FORBIDDEN_CODES or status == 403:
        return Forbidden(f"this function may not read {location} (access denied)")
    if code in _BAD_LOCATION_CODES:
        return BadRequest(f"{location} is not a valid S3 location ({code})")
    return StorageError(f"cannot read {location}: {code or exc}")


def _open(bucket: str, key: str, s3: Any) -> dict:
    from botocore.exceptions import BotoCoreError, ClientError  # loaded with boto3 by client()

    try:
        return (s3 or client()).get_object(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError) as exc:
        raise _translate(exc, f"s3://{bucket}/{key}") from None


def read(bucket: str, key: str, *, max_bytes: int | None = None, s3: Any = None) -> bytes:
    """The object's bytes; ``PayloadTooLarge`` (413) before reading when it is over ``max_bytes``."""
    obj = _open(bucket, key, s3)
    size = obj.get("ContentLength", 0)
    if max_bytes is not None and size > max_bytes:
        obj["Body"].close()
        raise PayloadTooLarge(f"s3://{bucket}/{key} is {size} bytes; the limit is {max_bytes}")
    return obj["Body"].read()


def download(bucket: str, key: str, path: str | os.PathLike, *, s3: Any = None) -> str:
    """Stream the object into ``path`` and return its sha256, computed on the way (no second read)."""
    from botocore.exceptions import BotoCoreError

    body = _open(bucket, key, s3)["Body"]
    digest = hashlib.sha256()
    try:
        with open(path, "wb") as out:
            while chunk := body.read(CHUNK_BYTES):
                digest.update(chunk)
                out.write(chunk)
    except BotoCoreError as exc:  # the connection broke mid-object
        raise StorageError(f"cannot read s3://{bucket}/{key}: {exc}") from None
    return digest.hexdigest()


def write_json(bucket: str, key: str, document: dict, *, s3: Any = None) -> None:
    """Put ``document`` as compact JSON; rewriting a key replaces it (S3 jobs' results are idempotent)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        (s3 or client()).put_object(Bucket=bucket, Key=key, ContentType="application/json",
                                    Body=json.dumps(document, separators=(",", ":")).encode("utf-8"))
    except (ClientError, BotoCoreError) as exc:
        raise StorageError(f"cannot write s3://{bucket}/{key}: {exc}") from None


def exists(bucket: str, key: str, *, s3: Any = None) -> bool:
    """Whether the object exists (HEAD); refusals and other errors raise as for ``read``."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        (s3 or client()).head_object(Bucket=bucket, Key=key)
        return True
    except (ClientError, BotoCoreError) as exc:
        error = _translate(exc, f"s3://{bucket}/{key}")
        if isinstance(error, NotFound):
            return False
        raise error from None
