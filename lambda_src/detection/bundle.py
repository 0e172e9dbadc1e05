"""A model bundle on local disk: read and verify it, write it, and name its pre-optimized model.

The files (``model.json`` manifest, ``model.onnx``, ``class_map.json``) are described in ``manifest``;
``fetch`` brings a bundle from S3 into a local directory read here.

A bundle may also carry ``model.optimized.onnx``, its weights ``model.optimized.weights`` (external
initializers: ONNX Runtime reads them straight into its tensors, without first parsing them out of the
protobuf; D-FINE-S's session opened in 97 instead of 125 ms) and its sidecar ``model.optimized.json`` (all written
by ``session.optimize_for_serving``). The sidecar's stamp says which model, onnxruntime version and CPU
architecture the file was made from and for; ``optimized_stamp`` is the one rule both the fetch (download
it or not) and the session (open it or not) apply.

Example:
    >>> optimized_paths("bundles/dfine-s/model.onnx")[0].name
    'model.optimized.onnx'
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .errors import BundleError
from .manifest import (
    CLASS_MAP_FILE, FORMAT_VERSION, MANIFEST_FILE, MODEL_FILE, Manifest, class_map_from_json, manifest_from_json,
    parse_class_map, parse_manifest,
)

VERIFIED_FILE = ".verified.json"
OPTIMIZED_SUFFIX = ".optimized.onnx"
WEIGHTS_SUFFIX = ".optimized.weights"
SIDECAR_SUFFIX = ".optimized.json"
OPTIMIZATION_LEVEL = "extended"


@dataclass(frozen=True)
class Bundle:
    """A bundle on local disk, validated."""

    root: Path
    manifest: Manifest
    class_map: dict[int, str]

    @property
    def model_path(self) -> Path:
        return self.root / self.manifest.model_file


def sha256_file(path: str | os.PathLike, *, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise BundleError(f"bundle at {path.parent} has no {path.name} ({what})") from None
    except UnicodeDecodeError as exc:
        raise BundleError(f"bundle file {path} is not valid JSON: {exc}") from None


def read_manifest(root: str | os.PathLike) -> tuple[Manifest, dict[int, str]]:
    """The manifest and class map of the bundle directory ``root``, without touching its model."""
    root = Path(root)
    path = root / MANIFEST_FILE
    manifest = manifest_from_json(_read_text(path, "the manifest"), f"bundle file {path}")
    class_path = root / manifest.class_map_file
    return manifest, class_map_from_json(_read_text(class_path, "the class map"), f"bundle file {class_path}")


def check_model_sha256(actual: str, manifest: Manifest, where: str | os.PathLike) -> None:
    """Raise ``BundleError`` unless ``actual`` is the manifest's ``model_sha256`` (when it has one)."""
    if manifest.model_sha256 and actual != manifest.model_sha256:
        raise BundleError(
            f"{where} has sha256 {actual[:12]}..., the manifest says {manifest.model_sha256[:12]}...: "
            "the bundle is corrupt or mixed from two exports"
        )


def read_bundle(root: str | os.PathLike, *, verify_sha256: bool = True) -> Bundle:
    """Read and validate a bundle directory; check model.onnx against the manifest's sha256."""
    root = Path(root)
    if not root.is_dir():
        raise BundleError(f"model bundle directory {root} does not exist")
    manifest, class_map = read_manifest(root)
    model_path = root / manifest.model_file
    if not model_path.is_file():
        raise BundleError(f"bundle at {root} has no {manifest.model_file}")
    if verify_sha256 and manifest.model_sha256:
        check_model_sha256(sha256_file(model_path), manifest, model_path)
    return Bundle(root=root, manifest=manifest, class_map=class_map)


# ---------------------------------------------------------------- verified once per environment


def fingerprint(path: str | os.PathLike) -> list[int]:
    """What changes when a file is replaced or rewritten: size, mtime (ns) and inode."""
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def record_verified(bundle: Bundle, marker: str | os.PathLike) -> None:
    """Note in ``marker`` that ``bundle``'s model matched its sha256 as the file is now."""
    Path(marker).write_text(json.dumps({"model_sha256": bundle.manifest.model_sha256, "root": str(bundle.root),
                                        "model": fingerprint(bundle.model_path)}))


def still_verified(bundle: Bundle, marker: str | os.PathLike) -> bool:
    """Whether ``marker`` (``record_verified``) vouches for ``bundle``'s model file as it is now: a stat, not a
    re-hash. Any doubt (no marker, another model, a file touched since) says no."""
    try:
        noted = json.loads(Path(marker).read_text())
        return (isinstance(noted, dict) and noted.get("model_sha256") == bundle.manifest.model_sha256
                and noted.get("root") == str(bundle.root) and noted.get("model") == fingerprint(bundle.model_path))
    except (OSError, ValueError):
        return False


def write_bundle(
    out_dir: str | os.PathLike,
    *,
    manifest: Mapping[str, Any],
    class_map: Mapping[int, str],
    model_path: str | os.PathLike | None = None,
) -> Bundle:
    """Write a bundle: copy the model in (unless already there), fill in its sha256, validate, save.

    Example:
        >>> # write_bundle("out/", manifest=manifest_dict, class_map={1: "person"}, model_path="model.onnx")
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = dict(manifest)
    model_file = data.setdefault("model_file", MODEL_FILE)
    data.setdefault("class_map_file", CLASS_MAP_FILE)
    data.setdefault("format_version", FORMAT_VERSION)
    target = out / model_file
    if model_path is not None and Path(model_path).resolve() != target.resolve():
        shutil.copyfile(model_path, target)
    data["model_sha256"] = sha256_file(target)
    parsed = parse_manifest(data)
    normalized = parse_class_map({str(k): v for k, v in class_map.items()})
    (out / parsed.class_map_file).write_text(json.dumps({str(k): v for k, v in normalized.items()}, indent=1))
    (out / MANIFEST_FILE).write_text(json.dumps(parsed.to_dict(), indent=2))
    return read_bundle(out)


# ---------------------------------------------------------------- the pre-optimized model


def optimized_names(model_file: str) -> tuple[str, str, str]:
    """``("model.optimized.onnx", "model.optimized.weights", "model.optimized.json")`` for ``model_file``."""
    stem = model_file[:-len(".onnx")] if model_file.endswith(".onnx") else model_file
    return stem + OPTIMIZED_SUFFIX, stem + WEIGHTS_SUFFIX, stem + SIDECAR_SUFFIX


def optimized_paths(model_path: str | os.PathLike) -> tuple[Path, Path, Path]:
    """``(model.optimized.onnx, model.optimized.weights, model.optimized.json)`` next to ``model_path``."""
    path = Path(model_path)
    return tuple(path.with_name(name) for name in optimized_names(path.name))


def optimized_stamp(source_sha256: str, *, onnxruntime_version: str) -> dict:
    """The sidecar a ``model.optimized.onnx`` needs to be used here: made from the model with this sha256,
    by this onnxruntime version, on this CPU architecture, at the ``extended`` level, with its weights beside it
    (an older file with embedded weights does not suit: the plain model is served until it is re-optimized)."""
    return {"source_sha256": source_sha256, "onnxruntime": onnxruntime_version, "machine": platform.machine(),
            "level": OPTIMIZATION_LEVEL, "external_weights": True}


def stamp_suits(sidecar_text: bytes | str, source_sha256: str, *, onnxruntime_version: str) -> bool:
    """Whether a sidecar's text is exactly ``optimized_stamp`` for this model and runtime (unreadable: no)."""
    try:
        stamp = json.loads(sidecar_text)
    except ValueError:
        return False
    return stamp == optimized_stamp(source_sha256, onnxruntime_version=onnxruntime_version)
