"""PyTorch reference side of the parity gate: preprocessing and decoding written in torch, on purpose
independent of the Lambda's NumPy code in ``detection.preprocess`` / ``detection.postprocess``.

The reference follows how the *model was trained* (the architecture's own preprocessing), not the manifest:
a manifest that disagrees with training shows up as a parity failure.

Example:
    >>> import numpy as np
    >>> tensor, geometry = reference_preprocess(np.zeros((100, 200, 3), np.uint8), height=64, width=64,
    ...     preprocessing={"resize": "letterbox", "pad_position": "center", "scale": 1 / 255})
    >>> tuple(tensor.shape), (geometry.resized_width, geometry.resized_height, geometry.pad_y)
    ((1, 3, 64, 64), (64, 32, 16))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ReferenceGeometry:
    original_width: int
    original_height: int
    resized_width: int
    resized_height: int
    pad_x: int
    pad_y: int


@dataclass(frozen=True)
class ReferenceDetection:
    class_id: int
    score: float
    box: tuple[float, float, float, float]


def _placement(width: int, height: int, *, input_width: int, input_height: int, resize: str,
               pad_position: str) -> ReferenceGeometry:
    if resize == "stretch":
        resized_w, resized_h = input_width, input_height
    else:
        scale = min(input_width / width, input_height / height)
        resized_w = min(input_width, max(1, round(width * scale)))
        resized_h = min(input_height, max(1, round(height * scale)))
    pad_x = (input_width - resized_w) // 2 if pad_position == "center" else 0
    pad_y = (input_height - resized_h) // 2 if pad_position == "center" else 0
    return ReferenceGeometry(width, height, resized_w, resized_h, pad_x, pad_y)


def reference_preprocess(array: np.ndarray, *, preprocessing: Mapping, height: int, width: int
                         ) -> tuple[torch.Tensor, ReferenceGeometry]:
    """uint8 ``(H, W, 3)`` RGB -> ``(1, 3, height, width)`` float32 with ``torch.nn.functional.interpolate``.

    Resizing runs on the raw 0..255 values in float32 (no rounding back to uint8), then scale, mean/std and
    padding with ``pad_value`` in the normalized domain, as the bundle contract defines them.
    """
    spec = dict(preprocessing)
    geometry = _placement(array.shape[1], array.shape[0], input_width=width, input_height=height,
                          resize=spec.get("resize", "letterbox"), pad_position=spec.get("pad_position", "bottom_right"))
    image = torch.from_numpy(np.array(array, dtype=np.uint8, copy=True)).permute(2, 0, 1)[None].to(torch.float32)
    size = (geometry.resized_height, geometry.resized_width)
    if size != tuple(image.shape[-2:]):
        if spec.get("interpolation", "bilinear") == "nearest":
            image = F.interpolate(image, size=size, mode="nearest")
        else:
            image = F.interpolate(image, size=size, mode="bilinear", align_corners=False,
                                  antialias=bool(spec.get("antialias", False)))
    if spec.get("channel_order", "RGB") == "BGR":
        image = image.flip(1)
    image = image * float(spec.get("scale", 1.0 / 255.0))
    if spec.get("mean") is not None:
        mean = torch.tensor(spec["mean"], dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(spec["std"], dtype=torch.float32).view(1, 3, 1, 1)
        image = (image - mean) / std
    tensor = torch.full((1, 3, height, width), float(spec.get("pad_value", 0.0)), dtype=torch.float32)
    tensor[:, :, geometry.pad_y:geometry.pad_y + size[0], geometry.pad_x:geometry.pad_x + size[1]] = image
    return tensor, geometry


def decode_outputs(outputs: Mapping[str, torch.Tensor], *, output: Mapping, labels: Mapping,
                   height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Graph outputs -> (xyxy boxes in input pixels, scores, class ids), background dropped, score-sorted.

    ``detr``: sigmoid over all (query, class) pairs, top-k, normalized cxcywh -> xyxy, as Hugging Face's
    ``post_process_object_detection`` for D-FINE; ``boxes_scores_labels``: taken as the graph gives them.
    """
    if output["format"] == "detr":
        logits = outputs[output["logits"]].reshape(-1, outputs[output["logits"]].shape[-1])
        boxes = outputs[output["boxes"]].reshape(-1, 4)
        probabilities = logits.sigmoid().flatten()
        k = min(int(output.get("top_k", 300)), probabilities.numel())
        scores, index = probabilities.topk(k)
        queries, graph_labels = index // logits.shape[1], index % logits.shape[1]
        cx, cy, w, h = boxes[queries].unbind(-1)
        xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
        xyxy = xyxy * torch.tensor([width, height, width, height], dtype=xyxy.dtype)
    else:
        xyxy = outputs[output["boxes"]].reshape(-1, 4).to(torch.float32)
        scores = outputs[output["scores"]].reshape(-1).to(torch.float32)
        graph_labels = outputs[output["labels"]].reshape(-1).to(torch.int64)
    background = labels.get("background_id")
    keep = graph_labels != background if background is not None else torch.ones_like(scores, dtype=torch.bool)
    class_ids = graph_labels + int(labels.get("offset", 0))
    xyxy, scores, class_ids = xyxy[keep], scores[keep], class_ids[keep]
    order = scores.argsort(descending=True, stable=True)
    return xyxy[order], scores[order], class_ids[order]


def to_original(boxes: torch.Tensor, scores: torch.Tensor, class_ids: torch.Tensor, *,
                geometry: ReferenceGeometry) -> list[ReferenceDetection]:
    """Undo padding and scaling per axis, clip to the image, drop boxes that collapse to nothing."""
    factor_x = geometry.original_width / geometry.resized_width
    factor_y = geometry.original_height / geometry.resized_height
    boxes = boxes.to(torch.float64).clone()
    boxes[:, [0, 2]] = ((boxes[:, [0, 2]] - geometry.pad_x) * factor_x).clamp(0, geometry.original_width)
    boxes[:, [1, 3]] = ((boxes[:, [1, 3]] - geometry.pad_y) * factor_y).clamp(0, geometry.original_height)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return [
        ReferenceDetection(int(c), float(s), tuple(float(v) for v in b))
        for b, s, c in zip(boxes[keep].tolist(), scores[keep].tolist(), class_ids[keep].tolist())
    ]
