"""Draw detections on the image (the ``annotate`` option): a small visual check for humans."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from .image import encode_jpeg
from .postprocess import Detection

# Lambda refuses a synchronous response over 6 MB (6,291,456 bytes, JSON and base64 included); the annotated
# JPEG, base64-encoded (4/3), must leave room for the rest of the body (1000 detections ~ 120 KB).
RESPONSE_LIMIT_BYTES = 6 * 1024 * 1024
ANNOTATED_JPEG_MAX_BYTES = (RESPONSE_LIMIT_BYTES - 512 * 1024) * 3 // 4

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


def jpeg_within(array: np.ndarray, *, max_bytes: int = ANNOTATED_JPEG_MAX_BYTES) -> bytes:
    """JPEG of ``array``, scaled down (same aspect) until it is at most ``max_bytes``.

    Example:
        >>> noise = np.random.default_rng(0).integers(0, 256, (400, 600, 3), dtype=np.uint8)
        >>> len(jpeg_within(noise, max_bytes=50_000)) <= 50_000
        True
    """
    image = array
    while len(data := encode_jpeg(image)) > max_bytes and image.size > 3:
        shrink = math.sqrt(max_bytes / len(data)) * 0.9  # JPEG size is roughly proportional to pixels
        height, width = image.shape[:2]
        size = (max(1, int(width * shrink)), max(1, int(height * shrink)))
        image = np.asarray(Image.fromarray(array).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))
    return data
