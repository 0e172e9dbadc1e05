"""Measure what the Lambda should send an accelerator endpoint: the image bytes, or the uint8 model input.

For photo-like JPEGs of common sizes it prints the request size each way and the CPU time of the work that
moves between Lambda and endpoint (decode + resize), and of what the endpoint does with a uint8 image
(normalize + pad). Timings are medians on this machine's CPU, one thread, indicative only.

Example:
    $ python -m sagemaker_entry measure --input-size 640 --repeat 5
"""

from __future__ import annotations

import base64
import io
import statistics
import time

import numpy as np

from detection.manifest import IMAGENET_MEAN, IMAGENET_STD, parse_manifest
from detection.image import decode_image
from detection.preprocess import preprocess
from detection.remote import encode_array, resize_for_model

SIZES = ((640, 480), (1280, 720), (1920, 1080), (4032, 3024), (6000, 4000))
SAGEMAKER_PAYLOAD_LIMIT = 6 * 1024 * 1024  # InvokeEndpoint request body (real-time endpoints)


def photo_like(width: int, height: int, *, seed: int = 0, quality: int = 90) -> bytes:
    """A scikit-image sample photo scaled to ``width`` x ``height`` with sensor-like noise, as JPEG."""
    from PIL import Image
    from skimage import data

    base = Image.fromarray(data.astronaut()).resize((width, height), Image.BICUBIC)
    noise = np.random.default_rng(seed).normal(0, 6, (height, width, 3))
    array = np.clip(np.asarray(base, np.float32) + noise, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def manifest_for(size: int):
    return parse_manifest({
        "format_version": 1, "name": f"measure-{size}",
        "input": {"name": "images", "height": size, "width": size},
        "preprocessing": {"resize": "letterbox", "antialias": True, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "output": {"format": "detr", "logits": "logits", "boxes": "pred_boxes"},
    })


def _median_ms(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 1)


def measure(*, input_size: int = 640, repeat: int = 5, sizes=SIZES) -> list[dict]:
    """One row per image size (see the module docstring)."""
    manifest = manifest_for(input_size)
    box = (manifest.input.width, manifest.input.height)
    rows = []
    for width, height in sizes:
        jpeg = photo_like(width, height)

        def lambda_side():
            decoded = decode_image(jpeg, draft_size=box, keep_aspect=True)
            image, _ = resize_for_model(decoded.array, manifest=manifest,
                                        original_size=(decoded.original_width, decoded.original_height))
            return encode_array(image)

        npy = lambda_side()
        small, _ = resize_for_model(decode_image(jpeg, draft_size=box, keep_aspect=True).array, manifest=manifest)
        rows.append({
            "image": f"{width}x{height}",
            "jpeg_kb": round(len(jpeg) / 1024),
            "jpeg_base64_kb": round(len(base64.b64encode(jpeg)) / 1024),
            "uint8_npy_kb": round(len(npy) / 1024),
            "float32_tensor_kb": round(4 * 3 * input_size * input_size / 1024),
            "jpeg_fits_6mb": len(jpeg) <= SAGEMAKER_PAYLOAD_LIMIT,
            "decode_resize_ms": _median_ms(lambda_side, repeat),
            "endpoint_normalize_pad_ms": _median_ms(
                lambda: preprocess(small, spec=manifest.preprocessing, input_spec=manifest.input), repeat),
        })
    return rows


def format_table(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines)
