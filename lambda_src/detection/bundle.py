"""The model bundle contract, shared by export (writer) and the Lambda (reader).

A bundle is a directory or S3 prefix holding:

- ``model.onnx``       the detector graph;
- ``class_map.json``   class ids -> names (``{"1": "person"}``), or icevision's names -> ids, or a list;
- ``model.json``       the manifest: everything the Lambda needs to serve the model, no code per model.

Manifest (``format_version`` 1)::

    {
      "format_version": 1,
      "name": "dfine-s-coco",
      "model_file": "model.onnx", "model_sha256": "<64 hex>", "class_map_file": "class_map.json",
      "input": {"name": "pixel_values", "height": 640, "width": 640, "dtype": "float32", "layout": "NCHW"},
      "preprocessing": {
        "resize": "letterbox" | "stretch",
        "interpolation": "bilinear" | "nearest",
        "antialias": true,               # PIL/HF-style antialiased bilinear; false = torch's plain bilinear
        "pad_position": "center" | "bottom_right",
        "pad_value": 0.0,                # value of padded cells in the final (normalized) tensor
        "scale": 0.00392156862745098,    # raw 0..255 pixels are multiplied by this first
        "mean": [0.485, 0.456, 0.406],   # then (x - mean) / std per channel; null = skip
        "std": [0.229, 0.224, 0.225],
        "channel_order": "RGB" | "BGR"
      },
      "output": {
        "format": "boxes_scores_labels",  # NMS inside the graph; boxes xyxy in input-tensor pixels
        "boxes": "boxes", "scores": "scores", "labels": "labels"
      } | {
        "format": "detr",                 # logits + normalized cxcywh boxes; sigmoid + top-k outside
        "logits": "logits", "boxes": "pred_boxes", "top_k": 300
      },
      "labels": {"offset": 0, "background_id": null},   # class_id = graph label + offset; background dropped
      "score_threshold": 0.5, "max_detections": 100,
      "provenance": {"architecture": "...", "weights": "...", "versions": {...}},
      "parity": {...}                     # optional, written by export's parity gate
    }

Example:
    >>> manifest = parse_manifest(example_manifest())
    >>> manifest.preprocessing.resize
    'letterbox'
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import BundleError

FORMAT_VERSION = 1
MANIFEST_FILE = "model.json"
MODEL_FILE = "model.onnx"
CLASS_MAP_FILE = "class_map.json"
LATEST_POINTER_FILE = "latest.json"

RESIZE_MODES = ("letterbox", "stretch")
INTERPOLATIONS = ("bilinear", "nearest")
PAD_POSITIONS = ("center", "bottom_right")
CHANNEL_ORDERS = ("RGB", "BGR")
OUTPUT_FORMATS = ("boxes_scores_labels", "detr")
INPUT_DTYPES = ("float32", "float16", "uint8")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputSpec:
    name: str
    height: int
    width: int
    dtype: str = "float32"
    layout: str = "NCHW"


@dataclass(frozen=True)
class Preprocessing:
    resize: str = "letterbox"
    interpolation: str = "bilinear"
    antialias: bool = False
    pad_position: str = "bottom_right"
    pad_value: float = 0.0
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    channel_order: str = "RGB"


@dataclass(frozen=True)
class OutputSpec:
    format: str
    boxes: str
    scores: str | None = None
    labels: str | None = None
    logits: str | None = None
    top_k: int = 300


@dataclass(frozen=True)
class LabelSpec:
    offset: int = 0
    background_id: int | None = None


@dataclass(frozen=True)
class Manifest:
    name: str
    input: InputSpec
    preprocessing: Preprocessing
    output: OutputSpec
    labels: LabelSpec = field(default_factory=LabelSpec)
    model_sha256: str | None = None
    model_file: str = MODEL_FILE
    class_map_file: str = CLASS_MAP_FILE
    score_threshold: float = 0.5
    max_detections: int = 100
    provenance: Mapping[str, Any] = field(default_factory=dict)
    parity: Mapping[str, Any] | None = None
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict:
        data = asdict(self)
        data["provenance"] = dict(self.provenance)
        data["parity"] = dict(self.parity) if self.parity is not None else None
        for key in ("mean", "std"):
            value = data["preprocessing"][key]
            data["preprocessing"][key] = list(value) if value is not None else None
        output = {k: v for k, v in data["output"].items() if v is not None}
        if output["format"] != "detr":
            output.pop("top_k", None)
        data["output"] = output
        if data["parity"] is None:
            del data["parity"]
        return data


# ---------------------------------------------------------------- validation


def _fail(path: str, message: str) -> BundleError:
    return BundleError(f"invalid manifest: {path}: {message}")


def _require(data: Mapping, key: str, path: str) -> Any:
    if key not in data:
        raise _fail(f"{path}.{key}" if path else key, "is required")
    return data[key]


def _check_type(value: Any, types: type | tuple, path: str, what: str) -> Any:
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise _fail(path, f"must be {what}, got {value!r}")
    if not isinstance(value, types):
        raise _fail(path, f"must be {what}, got {value!r}")
    return value


def _check_choice(value: Any, choices: tuple, path: str) -> str:
    if value not in choices:
        raise _fail(path, f"must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def _check_unknown(data: Mapping, allowed: set, path: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise _fail(path or "manifest", f"unknown key(s) {', '.join(unknown)}")


def _positive_int(value: Any, path: str) -> int:
    _check_type(value, int, path, "a positive integer")
    if value <= 0:
        raise _fail(path, f"must be a positive integer, got {value}")
    return value


def _triple(value: Any, path: str, *, positive: bool = False) -> tuple[float, float, float] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise _fail(path, f"must be a list of 3 numbers (one per channel) or null, got {value!r}")
    for i, v in enumerate(value):
        _check_type(v, (int, float), f"{path}[{i}]", "a number")
        if positive and v <= 0:
            raise _fail(f"{path}[{i}]", f"must be > 0, got {v}")
    return tuple(float(v) for v in value)


def _parse_input(data: Any) -> InputSpec:
    _check_type(data, dict, "input", "an object")
    _check_unknown(data, {"name", "height", "width", "dtype", "layout"}, "input")
    name = _check_type(_require(data, "name", "input"), str, "input.name", "a string")
    height = _positive_int(_require(data, "height", "input"), "input.height")
    width = _positive_int(_require(data, "width", "input"), "input.width")
    dtype = _check_choice(data.get("dtype", "float32"), INPUT_DTYPES, "input.dtype")
    layout = _check_choice(data.get("layout", "NCHW"), ("NCHW",), "input.layout")
    return InputSpec(name=name, height=height, width=width, dtype=dtype, layout=layout)


def _parse_preprocessing(data: Any) -> Preprocessing:
    _check_type(data, dict, "preprocessing", "an object")
    allowed = {f for f in Preprocessing.__dataclass_fields__}
    _check_unknown(data, allowed, "preprocessing")
    p = "preprocessing"
    mean = _triple(data.get("mean"), f"{p}.mean")
    std = _triple(data.get("std"), f"{p}.std", positive=True)
    if (mean is None) != (std is None):
        raise _fail(f"{p}.mean/std", "give both mean and std, or neither")
    scale = _check_type(data.get("scale", 1.0 / 255.0), (int, float), f"{p}.scale", "a number")
    if scale <= 0:
        raise _fail(f"{p}.scale", f"must be > 0, got {scale}")
    return Preprocessing(
        resize=_check_choice(data.get("resize", "letterbox"), RESIZE_MODES, f"{p}.resize"),
        interpolation=_check_choice(data.get("interpolation", "bilinear"), INTERPOLATIONS, f"{p}.interpolation"),
        antialias=_check_type(data.get("antialias", False), bool, f"{p}.antialias", "true or false"),
        pad_position=_check_choice(data.get("pad_position", "bottom_right"), PAD_POSITIONS, f"{p}.pad_position"),
        pad_value=float(_check_type(data.get("pad_value", 0.0), (int, float), f"{p}.pad_value", "a number")),
        scale=float(scale),
        mean=mean,
        std=std,
        channel_order=_check_choice(data.get("channel_order", "RGB"), CHANNEL_ORDERS, f"{p}.channel_order"),
    )


def _parse_output(data: Any) -> OutputSpec:
    _check_type(data, dict, "output", "an object")
    fmt = _check_choice(_require(data, "format", "output"), OUTPUT_FORMATS, "output.format")
    if fmt == "boxes_scores_labels":
        _check_unknown(data, {"format", "boxes", "scores", "labels"}, "output")
        names = {k: _check_type(_require(data, k, "output"), str, f"output.{k}", "an output name")
                 for k in ("boxes", "scores", "labels")}
        return OutputSpec(format=fmt, **names)
    _check_unknown(data, {"format", "boxes", "logits", "top_k"}, "output")
    names = {k: _check_type(_require(data, k, "output"), str, f"output.{k}", "an output name")
             for k in ("boxes", "logits")}
    top_k = _positive_int(data.get("top_k", 300), "output.top_k")
    return OutputSpec(format=fmt, top_k=top_k, **names)


def _parse_labels(data: Any) -> LabelSpec:
    if data is None:
        return LabelSpec()
    _check_type(data, dict, "labels", "an object")
    _check_unknown(data, {"offset", "background_id"}, "labels")
    offset = _check_type(data.get("offset", 0), int, "labels.offset", "an integer")
    background = data.get("background_id")
    if background is not None:
        _check_type(background, int, "labels.background_id", "an integer or null")
    return LabelSpec(offset=offset, background_id=background)


def parse_manifest(data: Any) -> Manifest:
    """Validate a manifest (a dict loaded from model.json) and return it typed.

    Raises ``BundleError`` naming the offending key and what to put there.
    """
    _check_type(data, dict, "manifest", "a JSON object")
    allowed = {f for f in Manifest.__dataclass_fields__}
    _check_unknown(data, allowed, "")
    version = _require(data, "format_version", "")
    if version != FORMAT_VERSION:
        raise _fail("format_version", f"this Lambda reads version {FORMAT_VERSION}, the bundle has {version!r}")
    sha = data.get("model_sha256")
    if sha is not None:
        _check_type(sha, str, "model_sha256", "a 64-character hex string")
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise _fail("model_sha256", f"must be 64 lowercase hex characters, got {sha!r}")
    threshold = _check_type(data.get("score_threshold", 0.5), (int, float), "score_threshold", "a number")
    if not 0.0 <= threshold <= 1.0:
        raise _fail("score_threshold", f"must be between 0 and 1, got {threshold}")
    provenance = data.get("provenance", {})
    _check_type(provenance, dict, "provenance", "an object")
    parity = data.get("parity")
    if parity is not None:
        _check_type(parity, dict, "parity", "an object")
    return Manifest(
        format_version=version,
        name=_check_type(_require(data, "name", ""), str, "name", "a string"),
        model_file=_check_type(data.get("model_file", MODEL_FILE), str, "model_file", "a file name"),
        class_map_file=_check_type(data.get("class_map_file", CLASS_MAP_FILE), str, "class_map_file", "a file name"),
        model_sha256=sha,
        input=_parse_input(_require(data, "input", "")),
        preprocessing=_parse_preprocessing(_require(data, "preprocessing", "")),
        output=_parse_output(_require(data, "output", "")),
        labels=_parse_labels(data.get("labels")),
        score_threshold=float(threshold),
        max_detections=_positive_int(data.get("max_detections", 100), "max_detections"),
        provenance=provenance,
        parity=parity,
    )


def example_manifest() -> dict:
    """A valid manifest (torchvision-RetinaNet-like), handy for docs and tests."""
    return {
        "format_version": FORMAT_VERSION,
        "name": "example",
        "input": {"name": "images", "height": 640, "width": 640},
        "preprocessing": {"resize": "letterbox", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "output": {"format": "boxes_scores_labels", "boxes": "boxes", "scores": "scores", "labels": "labels"},
    }


# ---------------------------------------------------------------- class maps


def parse_class_map(data: Any) -> dict[int, str]:
    """Normalize a class map to ``{class_id: name}``.

    Accepts id -> name (``{"1": "person"}``), icevision's name -> id (``{"background": 0, "milk": 1}``),
    a list of names (index = id), or any of these under a ``"class_map"``/``"id2label"``/``"label2id"`` key.

    Example:
        >>> parse_class_map({"background": 0, "milk_bottle": 1})
        {0: 'background', 1: 'milk_bottle'}
        >>> parse_class_map(["cat", "dog"])
        {0: 'cat', 1: 'dog'}
    """
    if isinstance(data, dict):
        for key in ("class_map", "id2label", "label2id"):
            if key in data and len(data) == 1:
                return parse_class_map(data[key])
    if isinstance(data, list):
        if not data:
            raise BundleError("invalid class map: expected a non-empty object (id -> name or name -> id) or a list")
        if not all(isinstance(n, str) for n in data):
            raise BundleError("invalid class map: a list class map must hold class names (strings)")
        return dict(enumerate(data))
    if not isinstance(data, dict) or not data:
        raise BundleError("invalid class map: expected a non-empty object (id -> name or name -> id) or a list")
    values = list(data.values())
    if all(isinstance(v, str) for v in values):  # id -> name
        out = {}
        for key, name in data.items():
            try:
                out[int(key)] = name
            except (TypeError, ValueError):
                raise BundleError(f"invalid class map: key {key!r} is not an integer class id") from None
        return dict(sorted(out.items()))
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):  # name -> id (icevision)
        out = {}
        for name, class_id in data.items():
            if class_id in out:
                raise BundleError(f"invalid class map: id {class_id} is used by {out[class_id]!r} and {name!r}")
            out[class_id] = name
        return dict(sorted(out.items()))
    raise BundleError("invalid class map: values must be all names (id -> name) or all integer ids (name -> id)")


# ---------------------------------------------------------------- bundle files


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


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(f"bundle at {path.parent} has no {path.name} ({what})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"bundle file {path} is not valid JSON: {exc}") from None


def read_bundle(root: str | os.PathLike, *, verify_sha256: bool = True) -> Bundle:
    """Read and validate a bundle directory; check model.onnx against the manifest's sha256."""
    root = Path(root)
    if not root.is_dir():
        raise BundleError(f"model bundle directory {root} does not exist")
    manifest = parse_manifest(_read_json(root / MANIFEST_FILE, "the manifest"))
    class_map = parse_class_map(_read_json(root / manifest.class_map_file, "the class map"))
    model_path = root / manifest.model_file
    if not model_path.is_file():
        raise BundleError(f"bundle at {root} has no {manifest.model_file}")
    if verify_sha256 and manifest.model_sha256:
        actual = sha256_file(model_path)
        if actual != manifest.model_sha256:
            raise BundleError(
                f"{model_path} has sha256 {actual[:12]}..., the manifest says {manifest.model_sha256[:12]}...: "
                "the bundle is corrupt or mixed from two exports"
            )
    return Bundle(root=root, manifest=manifest, class_map=class_map)


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


# ---------------------------------------------------------------- fetching (cold start)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b/`` -> ``("bucket", "a/b/")``.

    Example:
        >>> split_s3_uri("s3://models/dfine/")
        ('models', 'dfine/')
    """
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {uri!r}")
    return bucket, key


def _s3_get(client, bucket: str, key: str, *, denied_means_missing: bool = False) -> bytes | None:
    """The object's bytes, or None if it does not exist.

    Without s3:ListBucket (the function's role has only GetObject on the prefix) S3 answers a missing key
    with AccessDenied; ``denied_means_missing`` treats that as absent when probing for optional files.
    """
    from botocore.exceptions import ClientError

    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NotFound") or (denied_means_missing and code in ("AccessDenied", "403")):
            return None
        raise BundleError(f"cannot read s3://{bucket}/{key}: {code or exc}") from None


def _with_slash(prefix: str) -> str:
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def _locate_s3_manifest(client, uri: str) -> tuple[str, str, bytes]:
    """``(bucket, prefix, model.json bytes)`` for a bundle prefix, following ``latest.json`` once."""
    bucket, prefix = split_s3_uri(uri)
    prefix = _with_slash(prefix)
    raw = _s3_get(client, bucket, prefix + MANIFEST_FILE, denied_means_missing=True)
    if raw is not None:
        return bucket, prefix, raw
    pointer = _s3_get(client, bucket, prefix + LATEST_POINTER_FILE)
    if pointer is None:
        raise BundleError(f"no {MANIFEST_FILE} or {LATEST_POINTER_FILE} under {uri}")
    try:
        target = json.loads(pointer)["uri"]
        bucket, prefix = split_s3_uri(target)
    except (ValueError, KeyError, TypeError):
        raise BundleError(f"{uri}{LATEST_POINTER_FILE} is not {{\"uri\": \"s3://...\"}}") from None
    prefix = _with_slash(prefix)
    raw = _s3_get(client, bucket, prefix + MANIFEST_FILE)
    if raw is None:
        raise BundleError(f"{uri}{LATEST_POINTER_FILE} points to {target}, which has no {MANIFEST_FILE}")
    return bucket, prefix, raw


def _parse_manifest_bytes(raw: bytes, where: str) -> Manifest:
    try:
        return parse_manifest(json.loads(raw))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise BundleError(f"{where} is not valid JSON: {exc}") from None


def load_manifest(uri: str, *, s3_client=None) -> tuple[Manifest, dict[int, str]]:
    """The manifest and class map of the bundle at ``uri`` (directory or s3:// prefix), without its model:
    what a front end needs when the model runs elsewhere (``detection.remote``)."""
    if not uri.startswith("s3://"):
        root = Path(uri)
        manifest = parse_manifest(_read_json(root / MANIFEST_FILE, "the manifest"))
        return manifest, parse_class_map(_read_json(root / manifest.class_map_file, "the class map"))
    if s3_client is None:
        import boto3

        s3_client = boto3.client("s3")
    bucket, prefix, raw = _locate_s3_manifest(s3_client, uri)
    manifest = _parse_manifest_bytes(raw, f"s3://{bucket}/{prefix}{MANIFEST_FILE}")
    class_raw = _s3_get(s3_client, bucket, prefix + manifest.class_map_file)
    if class_raw is None:
        raise BundleError(f"s3://{bucket}/{prefix}{manifest.class_map_file} is missing from the bundle")
    try:
        return manifest, parse_class_map(json.loads(class_raw))
    except ValueError as exc:
        raise BundleError(f"s3://{bucket}/{prefix}{manifest.class_map_file} is not valid JSON: {exc}") from None


def fetch_bundle(uri: str, *, cache_dir: str | os.PathLike = "/tmp/model-bundles", s3_client=None) -> Bundle:
    """Make the bundle at ``uri`` available on local disk and return it validated.

    ``uri`` is a local directory or ``s3://bucket/prefix/``. For S3 the files go to
    ``cache_dir/<sha256>/``; a second call (a warm container, or a new one on the same /tmp) finds them
    there and downloads nothing. A prefix holding ``latest.json`` (``{"uri": "s3://..."}``) instead of a
    manifest is followed once, so MODEL_URI can name a model rather than one version of it.
    """
    if not uri.startswith("s3://"):
        return read_bundle(uri)
    if s3_client is None:
        import boto3  # present in the Lambda runtime; honours AWS_ENDPOINT_URL

        s3_client = boto3.client("s3")
    bucket, prefix, raw = _locate_s3_manifest(s3_client, uri)
    manifest = _parse_manifest_bytes(raw, f"s3://{bucket}/{prefix}{MANIFEST_FILE}")
    if not manifest.model_sha256:
        raise BundleError(f"s3://{bucket}/{prefix}{MANIFEST_FILE} has no model_sha256; re-export the bundle")
    local = Path(cache_dir) / manifest.model_sha256
    if (local / MANIFEST_FILE).is_file():
        return read_bundle(local, verify_sha256=False)  # verified before the rename below
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=_ensure_dir(cache_dir)))
    try:
        for name in (manifest.class_map_file, manifest.model_file):
            data = _s3_get(s3_client, bucket, prefix + name)
            if data is None:
                raise BundleError(f"s3://{bucket}/{prefix}{name} is missing from the bundle")
            (staging / name).write_bytes(data)
        _fetch_optimized(s3_client, bucket, prefix, manifest, staging)
        (staging / MANIFEST_FILE).write_bytes(raw)
        bundle = read_bundle(staging, verify_sha256=True)
        try:
            staging.rename(local)
        except OSError:  # another process won the race; its copy was verified too
            shutil.rmtree(staging, ignore_errors=True)
        return Bundle(root=local, manifest=bundle.manifest, class_map=bundle.class_map)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _fetch_optimized(client, bucket: str, prefix: str, manifest: Manifest, target: Path) -> None:
    """Download ``model.optimized.onnx`` only when its sidecar says it suits this runtime (see
    ``session.optimize_for_serving``): same source model, onnxruntime version and CPU architecture."""
    import platform

    stem = manifest.model_file[:-len(".onnx")] if manifest.model_file.endswith(".onnx") else manifest.model_file
    sidecar_name, optimized_name = stem + ".optimized.json", stem + ".optimized.onnx"
    sidecar = _s3_get(client, bucket, prefix + sidecar_name, denied_means_missing=True)
    if sidecar is None:
        return
    try:
        import onnxruntime

        stamp = json.loads(sidecar)
        suits = (stamp.get("source_sha256") == manifest.model_sha256 and stamp.get("machine") == platform.machine()
                 and stamp.get("onnxruntime") == onnxruntime.__version__)
    except (ValueError, AttributeError, ImportError):
        suits = False
    if not suits:
        return
    data = _s3_get(client, bucket, prefix + optimized_name, denied_means_missing=True)
    if data is not None:
        (target / optimized_name).write_bytes(data)
        (target / sidecar_name).write_bytes(sidecar)


def _ensure_dir(path: str | os.PathLike) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path
