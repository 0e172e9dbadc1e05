"""Bring your own ONNX: inspect the graph, apply a preprocessing preset, write the manifest.

Presets (how the common exporters trained their models):

- ``icevision``: letterbox with **centered** padding (albumentations ``LongestMaxSize`` + ``PadIfNeeded``
  filled with the ImageNet mean, i.e. 0 after normalizing), bilinear without antialias (OpenCV
  ``INTER_LINEAR``), ImageNet mean/std; outputs boxes/scores/labels with NMS inside; class map
  name -> id with ``background`` at 0.
- ``torchvision``: letterbox, bottom/right zero padding, ImageNet mean/std, no antialias, background 0.
- ``hf-detr``: stretch, antialiased bilinear, x/255, no mean/std; ``detr`` outputs (logits, pred_boxes).

Example:
    >>> guess_outputs([{"name": "boxes", "dtype": "float32", "shape": [None, 4]},
    ...                {"name": "scores", "dtype": "float32", "shape": [None]},
    ...                {"name": "labels", "dtype": "int64", "shape": [None]}])["format"]
    'boxes_scores_labels'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from detection.manifest import IMAGENET_MEAN, IMAGENET_STD

from .classes import parse_classes
from .errors import ExportError
from .onnx_io import describe_graph

_IMAGENET = {"scale": 1.0 / 255.0, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
PRESETS: dict[str, dict] = {
    "icevision": {
        "preprocessing": {"resize": "letterbox", "interpolation": "bilinear", "antialias": False,
                          "pad_position": "center", "pad_value": 0.0, "channel_order": "RGB", **_IMAGENET},
        "background": True,
    },
    "torchvision": {
        "preprocessing": {"resize": "letterbox", "interpolation": "bilinear", "antialias": False,
                          "pad_position": "bottom_right", "pad_value": 0.0, "channel_order": "RGB", **_IMAGENET},
        "background": True,
    },
    "hf-detr": {
        "preprocessing": {"resize": "stretch", "interpolation": "bilinear", "antialias": True,
                          "pad_position": "bottom_right", "pad_value": 0.0, "scale": 1.0 / 255.0,
                          "mean": None, "std": None, "channel_order": "RGB"},
        "background": False,
    },
}
_FLOATS = ("float32", "float16", "float64")


def _describe(outputs: list[dict]) -> str:
    return ", ".join(f"{o['name']}{o['shape']} {o['dtype']}" for o in outputs)


def parse_outputs(text: str | Mapping[str, str] | None) -> dict[str, str] | None:
    """``"boxes=b,scores=s,labels=l"`` -> ``{"boxes": "b", ...}``."""
    if text is None or isinstance(text, Mapping):
        return dict(text) if text else None
    pairs = {}
    for item in str(text).split(","):
        role, sep, name = item.partition("=")
        if not sep or role.strip() not in ("boxes", "scores", "labels", "logits") or not name.strip():
            raise ExportError(f"--outputs {text!r}: expected boxes=NAME,scores=NAME,labels=NAME or "
                              "logits=NAME,boxes=NAME")
        pairs[role.strip()] = name.strip()
    return pairs


def guess_outputs(outputs: list[dict], *, given: Mapping[str, str] | None = None) -> dict:
    """The manifest ``output`` block for a graph: from ``given`` names, then by name, then by shape/dtype."""
    names = {o["name"] for o in outputs}
    if given:
        missing = [n for n in given.values() if n not in names]
        if missing:
            raise ExportError(f"--outputs names {', '.join(missing)} are not outputs of the graph "
                              f"({_describe(outputs)})")
        if set(given) == {"logits", "boxes"}:
            return {"format": "detr", **given}
        if set(given) == {"boxes", "scores", "labels"}:
            return {"format": "boxes_scores_labels", **given}
        raise ExportError("--outputs must name boxes, scores and labels, or logits and boxes")
    lowered = {o["name"].lower(): o["name"] for o in outputs}
    if {"boxes", "scores", "labels"} <= set(lowered):
        return {"format": "boxes_scores_labels", "boxes": lowered["boxes"], "scores": lowered["scores"],
                "labels": lowered["labels"]}
    if "logits" in lowered and ("pred_boxes" in lowered or "boxes" in lowered):
        return {"format": "detr", "logits": lowered["logits"], "boxes": lowered.get("pred_boxes", lowered.get("boxes"))}
    if len(outputs) == 3:  # by shape and dtype: (N, 4) floats, (N,) floats, (N,) integers
        boxes = [o for o in outputs if o["dtype"] in _FLOATS and o["shape"] and o["shape"][-1] == 4]
        ints = [o for o in outputs if o["dtype"] not in _FLOATS]
        rest = [o for o in outputs if o not in boxes and o not in ints]
        if len(boxes) == 1 and len(ints) == 1 and len(rest) == 1:
            return {"format": "boxes_scores_labels", "boxes": boxes[0]["name"], "scores": rest[0]["name"],
                    "labels": ints[0]["name"]}
    raise ExportError(f"cannot tell the output layout of this graph ({_describe(outputs)}): pass "
                      "--outputs boxes=NAME,scores=NAME,labels=NAME (NMS inside, xyxy input pixels) or "
                      "--outputs logits=NAME,boxes=NAME (DETR: normalized cxcywh)")


def _input_block(inputs: list[dict], input_size: tuple[int, int] | None) -> dict:
    if len(inputs) != 1:
        raise ExportError(f"the graph has {len(inputs)} inputs ({_describe(inputs)}); the Lambda feeds exactly one "
                          "(1, 3, H, W) image tensor")
    spec = inputs[0]
    shape = spec["shape"]
    if len(shape) != 4 or shape[1] not in (3, None):
        raise ExportError(f"input {spec['name']} has shape {shape}; expected (1, 3, H, W) NCHW")
    if spec["dtype"] not in ("float32", "float16", "uint8"):
        raise ExportError(f"input {spec['name']} is {spec['dtype']}; the Lambda feeds float32, float16 or uint8")
    graph_hw = tuple(shape[2:])
    if all(isinstance(v, int) and v > 0 for v in graph_hw):
        if input_size and tuple(input_size) != graph_hw:
            raise ExportError(f"--input-size {input_size[0]}x{input_size[1]} but the graph's input is fixed at "
                              f"{graph_hw[0]}x{graph_hw[1]}: drop --input-size")
        height, width = graph_hw
    elif input_size:
        height, width = input_size
    else:
        raise ExportError(f"input {spec['name']} has a dynamic size {shape}: pass --input-size HEIGHTxWIDTH "
                          "(the size the model was trained at)")
    return {"name": spec["name"], "height": int(height), "width": int(width), "dtype": spec["dtype"], "layout": "NCHW"}


def byo_manifest(onnx_path: str | Path, *, classes: Any, preset: str | None, input_size: tuple[int, int] | None,
                 outputs: Mapping[str, str] | str | None, preprocessing: Mapping | None, name: str | None,
                 score_threshold: float | None) -> tuple[dict, dict[int, str]]:
    """The manifest (without sha256/parity) and class map for a bring-your-own graph."""
    graph = describe_graph(onnx_path)
    if classes is None:
        raise ExportError("--arch onnx needs --classes (class_map.json: id -> name, or icevision's name -> id)")
    class_map = parse_classes(classes)
    if preset is None and not preprocessing:
        raise ExportError(f"--arch onnx needs --preset ({', '.join(PRESETS)}) or a full --preprocessing JSON: "
                          "the graph does not say how its images were resized and normalized")
    if preset is not None and preset not in PRESETS:
        raise ExportError(f"unknown --preset {preset!r}: choose one of {', '.join(PRESETS)}")
    chosen = PRESETS.get(preset, {"preprocessing": {}, "background": False})
    output = guess_outputs(graph["outputs"], given=parse_outputs(outputs))
    if output["format"] == "detr":
        logits = next(o for o in graph["outputs"] if o["name"] == output["logits"])
        queries = logits["shape"][1] if len(logits["shape"]) == 3 and isinstance(logits["shape"][1], int) else 300
        output["top_k"] = int(queries)
    background = 0 if chosen["background"] and class_map.get(0, "").lower() in ("background", "__background__") else None
    manifest = {
        "name": name or Path(onnx_path).stem,
        "input": _input_block(graph["inputs"], input_size),
        "preprocessing": {**chosen["preprocessing"], **dict(preprocessing or {})},
        "output": output,
        "labels": {"offset": 0, "background_id": background},
        "score_threshold": 0.5 if score_threshold is None else score_threshold,
        "max_detections": 100,
    }
    return manifest, class_map
