"""Upload a bundle to S3 as ``s3://bucket/prefix/<name>/<sha256[:12]>/{model.onnx,class_map.json,model.json}``
and point ``s3://bucket/prefix/<name>/latest.json`` (``{"uri": ...}``) at it, which
``detection.fetch.fetch_bundle`` follows, so ``MODEL_URI=s3://bucket/prefix/<name>/`` always serves the
latest verified export.

Each object is sent with its SHA-256 (S3 rejects a body that does not match) and then checked with
``HeadObject``: size and checksum must equal the local file, before the pointer moves. Stores that keep no
checksum (moto, some S3-compatibles) get the object read back and hashed instead. boto3 honours
``AWS_ENDPOINT_URL`` (a local S3 such as moto works unchanged).

Example:
    >>> version_prefix("s3://models/detectors", name="dfine-s-coco", sha256="ab" * 32)
    ('models', 'detectors/dfine-s-coco/abababababab/')
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Callable

from detection.bundle import Bundle, optimized_names
from detection.fetch import LATEST_POINTER_FILE
from detection.manifest import MANIFEST_FILE
from detection.store import split_s3_uri

from .errors import UploadError


def version_prefix(uri: str, *, name: str, sha256: str) -> tuple[str, str]:
    """Bucket and key prefix of one bundle version under ``uri``."""
    try:
        bucket, prefix = split_s3_uri(uri)
    except ValueError as exc:
        raise UploadError(f"--upload {uri!r}: {exc}; expected s3://bucket/prefix/") from None
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, f"{prefix}{name}/{sha256[:12]}/"


def _sha256_b64(path: Path) -> tuple[str, str]:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest(), base64.b64encode(digest.digest()).decode("ascii")


def describe_client_error(exc: Exception, *, bucket: str, key: str) -> str:
    """One line for an S3 failure: what happened and what to do."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, PartialCredentialsError

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return ("no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                "(or run where an IAM role is attached)")
    if isinstance(exc, EndpointConnectionError):
        return f"cannot reach the S3 endpoint ({exc}); check AWS_ENDPOINT_URL / network"
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            return f"bucket {bucket!r} does not exist: create it or fix --upload"
        if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
            return f"access denied writing s3://{bucket}/{key}: the credentials need s3:PutObject and s3:GetObject there"
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
            return f"AWS rejected the credentials ({code}): refresh them or pick another AWS_PROFILE"
        if code in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
            return f"S3 rejected s3://{bucket}/{key}: the uploaded bytes do not match their checksum ({code}); retry"
        return f"S3 refused s3://{bucket}/{key}: {code or exc}"
    return f"upload of s3://{bucket}/{key} failed: {type(exc).__name__}: {exc}"


def _remote_sha256(client, *, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    for chunk in iter(lambda: body.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def _put_verified(client, path: Path, *, bucket: str, key: str, content_type: str) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    size = path.stat().st_size
    hex_digest, b64_digest = _sha256_b64(path)
    try:
        with open(path, "rb") as body:
            client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type,
                              ChecksumSHA256=b64_digest, Metadata={"sha256": hex_digest})
        head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except (ClientError, BotoCoreError) as exc:
        raise UploadError(describe_client_error(exc, bucket=bucket, key=key)) from None
    if head.get("ContentLength") != size:
        raise UploadError(f"s3://{bucket}/{key} has {head.get('ContentLength')} bytes after upload, the file has {size}")
    remote = head.get("ChecksumSHA256") or ""
    if remote and remote != b64_digest:
        raise UploadError(f"s3://{bucket}/{key} checksum {remote} differs from the local file's {b64_digest}")
    if not remote:  # an S3-compatible store that keeps no checksums: read the object back and hash it
        try:
            actual = _remote_sha256(client, bucket=bucket, key=key)
        except (ClientError, BotoCoreError) as exc:
            raise UploadError(describe_client_error(exc, bucket=bucket, key=key)) from None
        if actual != hex_digest:
            raise UploadError(f"s3://{bucket}/{key} reads back with sha256 {actual[:12]}..., the file has "
                              f"{hex_digest[:12]}...: the upload is corrupt; retry")
    return size


def upload_bundle(bundle: Bundle, uri: str, *, s3_client=None, progress: Callable[[str], None] | None = None) -> str:
    """Upload ``bundle`` under ``uri``; return the version's ``s3://.../<sha12>/`` URI (pointer updated last)."""
    say = progress or (lambda _: None)
    manifest = bundle.manifest
    bucket, prefix = version_prefix(uri, name=manifest.name, sha256=manifest.model_sha256)
    if s3_client is None:
        import boto3

        s3_client = boto3.client("s3")
    files = [(manifest.model_file, "application/octet-stream"), (manifest.class_map_file, "application/json")]
    optimized, weights, sidecar = optimized_names(manifest.model_file)
    for optional, content_type in ((optimized, "application/octet-stream"), (weights, "application/octet-stream"),
                                   (sidecar, "application/json")):  # sidecar last: it vouches for the other two
        if (bundle.root / optional).is_file():  # written by --optimize-for-serving
            files.append((optional, content_type))
    files.append((MANIFEST_FILE, "application/json"))  # manifest last: a version without it is never served
    for name, content_type in files:
        size = _put_verified(s3_client, bundle.root / name, bucket=bucket, key=prefix + name,
                             content_type=content_type)
        say(f"uploaded and verified s3://{bucket}/{prefix}{name} ({size / 1e6:.1f} MB)")
    version_uri = f"s3://{bucket}/{prefix}"
    pointer_key = prefix.rstrip("/").rsplit("/", 1)[0] + "/" + LATEST_POINTER_FILE
    body = json.dumps({"uri": version_uri, "sha256": manifest.model_sha256}).encode()
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        s3_client.put_object(Bucket=bucket, Key=pointer_key, Body=body, ContentType="application/json")
    except (ClientError, BotoCoreError) as exc:
        raise UploadError(describe_client_error(exc, bucket=bucket, key=pointer_key)) from None
    say(f"s3://{bucket}/{pointer_key} -> {version_uri}")
    return version_uri
