"""Draw detections on the image (the ``annotate`` option): a small visual check for humans."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from .postprocess import Detection

_PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212))


def draw_detections(array: np.ndarray, detections: Sequence[Detection], *, original_size: tuple[int, int]
                    ) -> np.ndarray:
    """Return a copy of ``array`` with boxes and labels; boxes are in ``original_size`` pixels."""
    image = Image.fromarray(array)
    sx = array.shape[1] / original_size[0]
    sy = array.shape[0] / original_size[1]
    draw = ImageDraw.Draw(image)
    width = max(1, round(min(array.shape[:2]) / 300))
    for det in detections:
        color = _PALETTE[det.class_id % len(_PALETTE)]
        x1, y1, x2, y2 = det.box
        draw.rectangle([x1 * sx, y1 * sy, x2 * sx, y2 * sy], outline=color, width=width)
        draw.text((x1 * sx + 2, y1 * sy + 1), f"{det.label} {det.score:.2f}", fill=color)
    return np.asarray(image)
