"""Bring a model bundle from S3 to local disk at cold start (or read a local one).

``MODEL_URI`` is a bundle directory or ``s3://bucket/prefix/``. An S3 bundle is downloaded into
``cache_dir/<cache_key>/`` (a digest of the manifest, class map and optimized-model sidecar: the manifest pins
the model by sha256) through a staging directory renamed into place once verified, so a later cold start on
the same /tmp (or a re-run init) finds it and downloads only those small files; a changed class map or
manifest is fetched again, never served stale, and a failed fetch leaves nothing behind. A prefix holding
``latest.json`` (``{"uri": "s3://..."}``) instead of a manifest is followed once, so MODEL_URI can name a
model rather than one version of it.

Example:
    >>> # bundle = fetch_bundle("s3://models/dfine-s/")        # -> Bundle at /tmp/model-bundles/<sha256>/
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from . import store
from .bundle import Bundle, check_model_sha256, optimized_names, read_bundle, read_manifest, stamp_suits
from .errors import BundleError, DetectionError, Forbidden, NotFound
from .manifest import MANIFEST_FILE, Manifest, class_map_from_json, manifest_from_json

LATEST_POINTER_FILE = "latest.json"
DEFAULT_CACHE_DIR = "/tmp/model-bundles"


def _bundle_error(exc: DetectionError) -> BundleError:
    return BundleError(exc.message)


def _get(s3, bucket: str, key: str, *, denied_means_missing: bool = False) -> bytes | None:
    """The object's bytes, or None if it does not exist.

    Without s3:ListBucket (the function's role has only GetObject on the prefix) S3 answers a missing key
    with AccessDenied; ``denied_means_missing`` treats that as absent when probing for optional files.
    """
    try:
        return store.read(bucket, key, s3=s3)
    except NotFound:
        return None
    except Forbidden as exc:
        if denied_means_missing:
            return None
        raise _bundle_error(exc) from None
    except DetectionError as exc:
        raise _bundle_error(exc) from None


def _required(s3, bucket: str, key: str) -> bytes:
    data = _get(s3, bucket, key)
    if data is None:
        raise BundleError(f"s3://{bucket}/{key} is missing from the bundle")
    return data


def _with_slash(prefix: str) -> str:
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def _locate_manifest(s3, uri: str) -> tuple[str, str, bytes]:
    """``(bucket, prefix, model.json bytes)`` for a bundle prefix, following ``latest.json`` once."""
    bucket, prefix = store.split_s3_uri(uri)
    prefix = _with_slash(prefix)
    raw = _get(s3, bucket, prefix + MANIFEST_FILE, denied_means_missing=True)
    if raw is not None:
        return bucket, prefix, raw
    pointer = _get(s3, bucket, prefix + LATEST_POINTER_FILE)
    if pointer is None:
        raise BundleError(f"no {MANIFEST_FILE} or {LATEST_POINTER_FILE} under {uri}")
    try:
        target = json.loads(pointer)["uri"]
        if not isinstance(target, str):
            raise TypeError(target)
        bucket, prefix = store.split_s3_uri(target)
    except (ValueError, KeyError, TypeError):
        raise BundleError(f"{uri}{LATEST_POINTER_FILE} is not {{\"uri\": \"s3://...\"}}") from None
    prefix = _with_slash(prefix)
    raw = _get(s3, bucket, prefix + MANIFEST_FILE)
    if raw is None:
        raise BundleError(f"{uri}{LATEST_POINTER_FILE} points to {target}, which has no {MANIFEST_FILE}")
    return bucket, prefix, raw


def load_manifest(uri: str, *, s3_client=None) -> tuple[Manifest, dict[int, str]]:
    """The manifest and class map of the bundle at ``uri`` (directory or s3:// prefix), without its model:
    what a front end needs when the model runs elsewhere (``detection.remote``)."""
    if not uri.startswith("s3://"):
        return read_manifest(uri)
    bucket, prefix, raw = _locate_manifest(s3_client, uri)
    manifest = manifest_from_json(raw, f"s3://{bucket}/{prefix}{MANIFEST_FILE}")
    where = f"s3://{bucket}/{prefix}{manifest.class_map_file}"
    return manifest, class_map_from_json(_required(s3_client, bucket, prefix + manifest.class_map_file), where)


def cache_key(*files: bytes | None) -> str:
    """The cache folder's name for a bundle whose small files are ``files`` (``None``: absent)."""
    digest = hashlib.sha256()
    for data in files:
        digest.update(b"-" if data is None else len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def fetch_bundle(uri: str, *, cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR, s3_client=None) -> Bundle:
    """Make the bundle at ``uri`` available on local disk and return it validated.

    The model is hashed while it downloads (checked against the manifest before the staging directory is
    renamed into the cache), never read a second time.
    """
    if not uri.startswith("s3://"):
        return read_bundle(uri)
    bucket, prefix, raw = _locate_manifest(s3_client, uri)
    manifest_where = f"s3://{bucket}/{prefix}{MANIFEST_FILE}"
    manifest = manifest_from_json(raw, manifest_where)
    if not manifest.model_sha256:
        raise BundleError(f"{manifest_where} has no model_sha256; re-export the bundle")
    class_raw = _required(s3_client, bucket, prefix + manifest.class_map_file)
    class_map = class_map_from_json(class_raw, f"s3://{bucket}/{prefix}{manifest.class_map_file}")
    _, sidecar_name = optimized_names(manifest.model_file)
    sidecar = _get(s3_client, bucket, prefix + sidecar_name, denied_means_missing=True)
    local = Path(cache_dir) / cache_key(raw, class_raw, sidecar)
    if (local / MANIFEST_FILE).is_file():
        return read_bundle(local, verify_sha256=False)  # verified before the rename below
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=cache_dir))
    try:
        (staging / manifest.class_map_file).write_bytes(class_raw)
        model_key = prefix + manifest.model_file
        try:
            actual = store.download(bucket, model_key, staging / manifest.model_file, s3=s3_client)
        except NotFound:
            raise BundleError(f"s3://{bucket}/{model_key} is missing from the bundle") from None
        except DetectionError as exc:
            raise _bundle_error(exc) from None
        check_model_sha256(actual, manifest, f"s3://{bucket}/{model_key}")
        _fetch_optimized(s3_client, bucket, prefix, manifest, sidecar, staging)
        (staging / MANIFEST_FILE).write_bytes(raw)
        try:
            staging.rename(local)
        except OSError:  # another process won the race; its copy was verified too
            shutil.rmtree(staging, ignore_errors=True)
        return Bundle(root=local, manifest=manifest, class_map=class_map)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _fetch_optimized(s3, bucket: str, prefix: str, manifest: Manifest, sidecar: bytes | None, target: Path) -> None:
    """Download ``model.optimized.onnx`` only when its sidecar suits this runtime (``bundle.stamp_suits``)."""
    if sidecar is None:
        return
    optimized_name, sidecar_name = optimized_names(manifest.model_file)
    import onnxruntime  # the runtime whose version the stamp names; usually imported already by now

    if not stamp_suits(sidecar, manifest.model_sha256, onnxruntime_version=onnxruntime.__version__):
        return
    try:
        store.download(bucket, prefix + optimized_name, target / optimized_name, s3=s3)
    except (NotFound, Forbidden):  # a sidecar without its model: serve model.onnx
        (target / optimized_name).unlink(missing_ok=True)
        return
    except DetectionError as exc:
        raise _bundle_error(exc) from None
    (target / sidecar_name).write_bytes(sidecar)
