"""Architectures export knows: each turns ``(weights, classes, input size)`` into a ``PreparedModel``:
an eval-mode graph wrapper that takes the already preprocessed tensor (the model's own resize/normalize
transform is skipped), plus the manifest blocks that say how it was trained and what it outputs.

Example:
    >>> sorted(ARCHS)[:3]
    ['dfine-l', 'dfine-m', 'dfine-n']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from ..errors import ExportError


@dataclass
class PreparedModel:
    """Everything needed to export one network and to describe it in the manifest."""

    arch: str
    module: nn.Module                       # (1, 3, H, W) normalized tensor -> tuple of outputs
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
    notes: dict[str, Any] = field(default_factory=dict)   # provenance extras (e.g. random-init tweaks)


Builder = Callable[..., PreparedModel]


def _registry() -> dict[str, Builder]:
    from . import dfine, retinanet

    table: dict[str, Builder] = {}
    for size in dfine.SIZES:
        table[f"dfine-{size}"] = dfine.prepare
    for name in retinanet.ARCHS:
        table[name] = retinanet.prepare
    return table


ARCHS = _registry()


def prepare(arch: str, **kwargs) -> PreparedModel:
    """Build ``arch`` (see ``ARCHS``) with ``weights``, ``classes``, ``input_size``, ``seed``."""
    if arch not in ARCHS:
        raise ExportError(f"unknown --arch {arch!r}: choose one of {', '.join(sorted(ARCHS))}, or 'onnx' "
                          "with --onnx model.onnx for a bring-your-own graph")
    size = kwargs.get("input_size")
    if isinstance(size, int):
        kwargs["input_size"] = (size, size)
    return ARCHS[arch](arch, **kwargs)
