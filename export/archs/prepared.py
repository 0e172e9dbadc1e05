"""``PreparedModel``: one network ready to export, and its manifest blocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass
class PreparedModel:
    """Everything needed to export one network and to describe it in the manifest."""

    arch: str
    module: nn.Module                       # (N, 3, H, W) normalized tensor -> tuple of outputs
    input_name: str
    output_names: tuple[str, ...]
    input_size: tuple[int, int]             # (height, width)
    preprocessing: dict                     # how the network was trained (manifest block and parity reference)
    output: dict                            # manifest "output" block
    labels: dict                            # manifest "labels" block
    class_map: dict[int, str]
    weights: str                            # provenance: what --weights resolved to
    score_threshold: float = 0.5
    max_detections: int = 100
    nms_iou: float | None = None            # IoU threshold of NMS inside the graph (parity: borderline flips)
    batch_axis: bool = False                # export with a free first axis (--batch-axis; the family must allow it)
    notes: dict[str, Any] = field(default_factory=dict)   # provenance extras (e.g. random-init tweaks)


def load_trained(checkpoint, model: nn.Module, *, preprocessing: dict,
                 input_size: tuple[int, int] | None) -> tuple[tuple[int, int] | None, str]:
    """Load a checkpoint's weights into ``model`` and take how it was trained: ``preprocessing`` is updated in
    place; returns the input size (``input_size`` wins) and the provenance string."""
    checkpoint.load_into(model)
    preprocessing.update(checkpoint.preprocessing or {})
    return input_size or checkpoint.input_size, str(checkpoint.path)
