"""Bring a model bundle from S3 to local disk at cold start (or read a local one).

``MODEL_URI`` is a bundle directory or ``s3://bucket/prefix/``. An S3 bundle is downloaded into
``cache_dir/<cache_key>/`` (a digest of the manifest, class map and optimized-model sidecar: the manifest pins
the model by sha256) through a staging directory renamed into place once verified, so a later cold start on
the same /tmp (or a re-run init) finds it and downloads only those small files; a changed class map or
manifest is fetched again, never served stale, and a failed fetch leaves nothing behind. A prefix holding
``latest.json`` (``{"uri": "s3://..."}``) instead of a manifest is followed once, so MODEL_URI can name a
model rather than one version of it.

Each model file is hashed once per environment: while it downloads (S3), or on the first read of a local
directory; a marker (``bundle.record_verified``) then vouches for it by a stat of the file, so a re-run init,
another process on the same /tmp or a restored SnapStart snapshot does not read it again.

``BundlePrefetch`` runs the fetch in a thread, so the download overlaps the imports that follow it (the
handler starts it before importing onnxruntime and the pipeline).

Example:
    >>> # bundle = fetch_bundle("s3://models/dfine-s/")        # -> Bundle at /tmp/model-bundles/<sha256>/
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

from . import store
from .bundle import (
    VERIFIED_FILE, Bundle, check_model_sha256, optimized_names, read_bundle, read_manifest, record_verified,
    sha256_file, stamp_suits, still_verified,
)
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
    """Make the bundle at ``uri`` available on local disk and return it validated (model sha256 checked, at
    most once per environment)."""
    if not uri.startswith("s3://"):
        return _read_local(Path(uri), Path(cache_dir))
    bucket, prefix, raw = _locate_manifest(s3_client, uri)
    manifest_where = f"s3://{bucket}/{prefix}{MANIFEST_FILE}"
    manifest = manifest_from_json(raw, manifest_where)
    if not manifest.model_sha256:
        raise BundleError(f"{manifest_where} has no model_sha256; re-export the bundle")
    class_raw = _required(s3_client, bucket, prefix + manifest.class_map_file)
    class_map = class_map_from_json(class_raw, f"s3://{bucket}/{prefix}{manifest.class_map_file}")
    *_, sidecar_name = optimized_names(manifest.model_file)
    sidecar = _get(s3_client, bucket, prefix + sidecar_name, denied_means_missing=True)
    local = Path(cache_dir) / cache_key(raw, class_raw, sidecar)
    if (local / MANIFEST_FILE).is_file():
        cached = read_bundle(local, verify_sha256=False)
        if _verified_now(cached, local / VERIFIED_FILE):
            return cached
        shutil.rmtree(local, ignore_errors=True)  # damaged since it was verified: download it again
    return _download(s3_client, bucket, prefix, manifest, local,
                     files={MANIFEST_FILE: raw, manifest.class_map_file: class_raw}, class_map=class_map, sidecar=sidecar)


def confirm_intact(bundle: Bundle, *, cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR) -> bool:
    """Whether ``bundle``'s model file is still the one verified (a stat when a marker vouches for it, else a
    re-hash); what a restored snapshot checks before trusting /tmp."""
    marker = bundle.root / VERIFIED_FILE
    if not marker.is_file():  # a local directory's marker lives in the cache directory
        marker = _local_marker(bundle.manifest, Path(cache_dir))
    try:
        return _verified_now(bundle, marker)
    except (BundleError, OSError):
        return False


class BundlePrefetch:
    """``fetch_bundle`` in a background thread; ``result()`` waits for it and raises what it raised.

    Example:
        >>> # prefetch = BundlePrefetch("s3://models/dfine-s/", cache_dir="/tmp/model-bundles")
        >>> # import onnxruntime                      # meanwhile the model downloads
        >>> # bundle = prefetch.result()
    """

    def __init__(self, uri: str, *, cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR):
        self.uri = uri
        self._bundle: Bundle | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(uri, cache_dir), name="bundle-prefetch",
                                        daemon=True)
        self._thread.start()

    def _run(self, uri: str, cache_dir: str | os.PathLike) -> None:
        try:
            self._bundle = fetch_bundle(uri, cache_dir=cache_dir)
        except BaseException as exc:  # handed to the thread that asks for the result
            self._error = exc

    def result(self) -> Bundle:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._bundle


def _verified_now(bundle: Bundle, marker: Path) -> bool:
    """True when ``marker`` vouches for the model as it is; else re-hash it, note it if it matches."""
    if not bundle.manifest.model_sha256 or still_verified(bundle, marker):
        return True
    if sha256_file(bundle.model_path) != bundle.manifest.model_sha256:
        return False
    _note_verified(bundle, marker)
    return True


def _note_verified(bundle: Bundle, marker: Path) -> None:
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        record_verified(bundle, marker)
    except OSError:  # a read-only cache directory only costs the next cold start a re-hash
        pass


def _local_marker(manifest: Manifest, cache_dir: Path) -> Path:
    return cache_dir / "verified" / f"{manifest.model_sha256}.json"


def _read_local(root: Path, cache_dir: Path) -> Bundle:
    """A bundle directory (read-only, e.g. in the package or a layer): hashed unless already verified here."""
    bundle = read_bundle(root, verify_sha256=False)
    if bundle.manifest.model_sha256:
        marker = _local_marker(bundle.manifest, cache_dir)
        if not still_verified(bundle, marker):
            check_model_sha256(sha256_file(bundle.model_path), bundle.manifest, bundle.model_path)
            _note_verified(bundle, marker)
    return bundle


def _download(s3_client, bucket: str, prefix: str, manifest: Manifest, local: Path, *, files: dict[str, bytes],
              class_map: dict[int, str], sidecar: bytes | None) -> Bundle:
    """Into a staging directory renamed to ``local`` once the model's sha256 (taken on the way) matched;
    ``files`` are the small files already read (manifest, class map), written as they came."""
    local.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=local.parent))
    try:
        model_key = prefix + manifest.model_file
        try:
            actual = store.download(bucket, model_key, staging / manifest.model_file, s3=s3_client)
        except NotFound:
            raise BundleError(f"s3://{bucket}/{model_key} is missing from the bundle") from None
        except DetectionError as exc:
            raise _bundle_error(exc) from None
        check_model_sha256(actual, manifest, f"s3://{bucket}/{model_key}")
        _fetch_optimized(s3_client, bucket, prefix, manifest, sidecar, staging)
        for name, data in files.items():
            (staging / name).write_bytes(data)
        try:
            staging.rename(local)
        except OSError:  # another process won the race; its copy was verified too
            shutil.rmtree(staging, ignore_errors=True)
            return read_bundle(local, verify_sha256=False)
        bundle = Bundle(root=local, manifest=manifest, class_map=class_map)
        _note_verified(bundle, local / VERIFIED_FILE)  # rename keeps size, mtime and inode
        return bundle
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise _disk_error(exc, local.parent) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _disk_error(exc: OSError, cache_dir: Path) -> Exception:
    """A full /tmp as what to change (the function's ephemeral storage), other OS errors as they are."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return BundleError(f"no space left in {cache_dir} for the model bundle ({exc.strerror}): raise the "
                           "function's EphemeralStorage, point MODEL_CACHE_DIR elsewhere, or use a smaller model")
    return exc


def _fetch_optimized(s3, bucket: str, prefix: str, manifest: Manifest, sidecar: bytes | None, target: Path) -> None:
    """Download ``model.optimized.onnx`` and its weights only when its sidecar suits this runtime
    (``bundle.stamp_suits``)."""
    if sidecar is None:
        return
    *files, sidecar_name = optimized_names(manifest.model_file)
    import onnxruntime  # the runtime whose version the stamp names; usually imported already by now

    if not stamp_suits(sidecar, manifest.model_sha256, onnxruntime_version=onnxruntime.__version__):
        return
    try:
        for name in files:
            store.download(bucket, prefix + name, target / name, s3=s3)
    except (NotFound, Forbidden):  # a sidecar without its model or weights: serve model.onnx
        for name in files:
            (target / name).unlink(missing_ok=True)
        return
    except DetectionError as exc:
        raise _bundle_error(exc) from None
    (target / sidecar_name).write_bytes(sidecar)
