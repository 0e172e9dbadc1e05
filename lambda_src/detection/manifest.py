"""The model bundle's manifest schema, shared by export (writer) and the Lambda (reader).

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

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from .errors import BundleError

FORMAT_VERSION = 1
MANIFEST_FILE = "model.json"
MODEL_FILE = "model.onnx"
CLASS_MAP_FILE = "class_map.json"

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


def _file_name(value: Any, path: str) -> str:
    """A file directly inside the bundle: no folders, so nothing is read or written outside it."""
    _check_type(value, str, path, "a file name")
    if value in ("", ".", "..") or any(c in value for c in "/\\\0"):
        raise _fail(path, f"must be a plain file name inside the bundle (no / \\ or ..), got {value!r}")
    return value


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
        model_file=_file_name(data.get("model_file", MODEL_FILE), "model_file"),
        class_map_file=_file_name(data.get("class_map_file", CLASS_MAP_FILE), "class_map_file"),
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


# ---------------------------------------------------------------- from JSON text (a file or an S3 object)


def _json(raw: bytes | str, where: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise BundleError(f"{where} is not valid JSON: {exc}") from None


def manifest_from_json(raw: bytes | str, where: str) -> Manifest:
    """``parse_manifest`` of model.json's text; ``where`` names the file in the error."""
    return parse_manifest(_json(raw, where))


def class_map_from_json(raw: bytes | str, where: str) -> dict[int, str]:
    """``parse_class_map`` of class_map.json's text; ``where`` names the file in the error."""
    return parse_class_map(_json(raw, where))
