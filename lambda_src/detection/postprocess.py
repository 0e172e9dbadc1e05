"""Model outputs -> detections in original-image pixels.

Two output formats (see ``bundle``): ``boxes_scores_labels`` (NMS inside the graph, xyxy boxes in
input-tensor pixels) and ``detr`` (per-query class logits + normalized cxcywh boxes: sigmoid, then top-k over
queries x classes, as Hugging Face's D-FINE post-processing does).

Example:
    >>> import numpy as np
    >>> from detection.preprocess import plan_geometry
    >>> g = plan_geometry(source_width=200, source_height=100, input_width=100, input_height=100,
    ...                   resize="letterbox", pad_position="center")
    >>> boxes_to_original(np.array([[0., 25., 50., 75.]]), geometry=g).tolist()
    [[0.0, 0.0, 100.0, 100.0]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Mapping

import numpy as np

from .manifest import Manifest
from .preprocess import Geometry


@dataclass(frozen=True)
class Detection:
    label: str
    class_id: int
    score: float
    box: tuple[float, float, float, float]

    def to_dict(self, *, decimals: int = 2) -> dict:
        return {
            "label": self.label,
            "class_id": self.class_id,
            "score": round(self.score, 4),
            "box": [round(v, decimals) for v in self.box],
        }


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # overflow-free logistic


def decode_boxes_scores_labels(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray
                               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop a leading batch axis if present; return (N, 4) float32, (N,) float32, (N,) int64."""
    boxes = np.asarray(boxes, dtype=np.float32)
    if boxes.ndim == 3:
        boxes, scores, labels = boxes[0], np.asarray(scores)[0], np.asarray(labels)[0]
    return boxes.reshape(-1, 4), np.asarray(scores, np.float32).reshape(-1), np.asarray(labels).astype(np.int64).reshape(-1)


def decode_detr(logits: np.ndarray, boxes: np.ndarray, *, top_k: int, input_width: int, input_height: int,
                min_score: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sigmoid class scores, top-k over (query, class) pairs, cxcywh (0..1) -> xyxy input pixels.

    Example:
        >>> logits = np.full((1, 2, 3), -9.0); logits[0, 1, 2] = 4.0
        >>> b, s, l = decode_detr(logits, np.array([[[.5, .5, .2, .2], [.5, .5, .5, .5]]]), top_k=1,
        ...                       input_width=100, input_height=100)
        >>> b.tolist(), l.tolist()
        ([[25.0, 25.0, 75.0, 75.0]], [2])
    """
    logits = np.asarray(logits, dtype=np.float32)
    boxes = np.asarray(boxes, dtype=np.float32)
    if logits.ndim == 3:
        logits, boxes = logits[0], boxes[0]
    num_queries, num_classes = logits.shape
    flat = logits.reshape(-1)
    k = min(top_k, flat.size)
    if k == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    # Top-k on logits (sigmoid is monotonic), then sigmoid only the k winners.
    if k < flat.size:
        candidates = np.argpartition(-flat, k - 1)[:k]
    else:
        candidates = np.arange(flat.size)
    order = candidates[np.argsort(-flat[candidates], kind="stable")]
    scores = _sigmoid(flat[order])
    keep = scores >= min_score
    order, scores = order[keep], scores[keep]
    queries, labels = np.divmod(order, num_classes)
    cx, cy, w, h = boxes[queries].T
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    xyxy *= np.array([input_width, input_height, input_width, input_height], dtype=np.float32)
    return xyxy.astype(np.float32), scores.astype(np.float32), labels.astype(np.int64)


def boxes_to_original(boxes: np.ndarray, *, geometry: Geometry) -> np.ndarray:
    """Undo padding and scaling on each axis and clip to the original image."""
    if boxes.size == 0:
        return np.zeros((0, 4), np.float32)
    factor_x = geometry.original_width / geometry.resized_width
    factor_y = geometry.original_height / geometry.resized_height
    out = np.empty_like(boxes, dtype=np.float32)
    out[:, [0, 2]] = (boxes[:, [0, 2]] - geometry.pad_x) * factor_x
    out[:, [1, 3]] = (boxes[:, [1, 3]] - geometry.pad_y) * factor_y
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, geometry.original_width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, geometry.original_height)
    return out


def postprocess(
    outputs: Mapping[str, np.ndarray],
    *,
    manifest: Manifest,
    geometry: Geometry,
    class_map: Mapping[int, str],
    score_threshold: float | None = None,
    classes: Collection[str] | None = None,
    max_detections: int | None = None,
) -> list[Detection]:
    """Threshold, drop background, map labels, filter by class name, rescale, clip, drop empty boxes.

    Detections come back sorted by score, at most ``max_detections`` (the manifest's by default).
    """
    spec = manifest.output
    threshold = manifest.score_threshold if score_threshold is None else score_threshold
    limit = manifest.max_detections if max_detections is None else max_detections
    if spec.format == "detr":
        boxes, scores, labels = decode_detr(
            outputs[spec.logits], outputs[spec.boxes], top_k=spec.top_k,
            input_width=manifest.input.width, input_height=manifest.input.height, min_score=threshold,
        )
    else:
        boxes, scores, labels = decode_boxes_scores_labels(outputs[spec.boxes], outputs[spec.scores],
                                                           outputs[spec.labels])
    keep = scores >= threshold
    if manifest.labels.background_id is not None:
        keep &= labels != manifest.labels.background_id
    class_ids = labels + manifest.labels.offset
    if classes is not None:
        wanted = {cid for cid, name in class_map.items() if name in set(classes)}
        keep &= np.isin(class_ids, list(wanted))
    boxes, scores, class_ids = boxes[keep], scores[keep], class_ids[keep]
    boxes = boxes_to_original(boxes, geometry=geometry)
    nonempty = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, scores, class_ids = boxes[nonempty], scores[nonempty], class_ids[nonempty]
    order = np.argsort(-scores, kind="stable")[:limit]
    return [
        Detection(
            label=class_map.get(int(class_ids[i]), f"class_{int(class_ids[i])}"),
            class_id=int(class_ids[i]),
            score=float(scores[i]),
            box=tuple(float(v) for v in boxes[i]),
        )
        for i in order
    ]
