"""Real photos upscaled to 1080p and 4K JPEGs at bench time (written to the cache, never committed).

Sources: matplotlib's ``grace_hopper.jpg`` and scikit-image's ``astronaut``/``coffee``/``chelsea``; each is
center-cropped to 16:9 and upscaled with Lanczos, then saved as quality-90 baseline JPEG (what a phone or
webcam frame looks like to the decoder).

Example:
    >>> sizes = {name: size for name, size in RESOLUTIONS.items()}
    >>> sizes["1080p"]
    (1920, 1080)
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

RESOLUTIONS = {"1080p": (1920, 1080), "4k": (3840, 2160)}
JPEG_QUALITY = 90


def source_photos() -> dict[str, np.ndarray]:
    """Real photos installed with matplotlib and scikit-image (RGB uint8)."""
    photos: dict[str, np.ndarray] = {}
    try:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        if path.exists():
            photos["grace_hopper"] = np.asarray(Image.open(path).convert("RGB"))
    except ImportError:
        pass
    try:
        from skimage import data

        for name in ("astronaut", "coffee", "chelsea"):
            photos[name] = np.asarray(Image.fromarray(getattr(data, name)()).convert("RGB"))
    except ImportError:
        pass
    if not photos:
        raise RuntimeError("no sample photos found: install matplotlib or scikit-image (requirements/dev.txt)")
    return photos


def _crop_to_aspect(image: Image.Image, width: int, height: int) -> Image.Image:
    target = width / height
    w, h = image.size
    if w / h > target:
        new_w = int(round(h * target))
        left = (w - new_w) // 2
        return image.crop((left, 0, left + new_w, h))
    new_h = int(round(w / target))
    top = (h - new_h) // 2
    return image.crop((0, top, w, top + new_h))


def make_jpeg(photo: np.ndarray, *, width: int, height: int, quality: int = JPEG_QUALITY) -> bytes:
    """``photo`` cropped to the aspect of ``width x height``, Lanczos-upscaled, JPEG-encoded."""
    image = _crop_to_aspect(Image.fromarray(photo), width, height).resize((width, height), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def bench_images(out_dir: Path, *, photo: str | None = None) -> dict[str, Path]:
    """``{"1080p": path, "4k": path}`` JPEGs of one photo (the first available unless ``photo`` names one)."""
    photos = source_photos()
    name = photo or next(iter(photos))
    if name not in photos:
        raise RuntimeError(f"unknown photo {name!r}: choose one of {', '.join(photos)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for label, (width, height) in RESOLUTIONS.items():
        path = out_dir / f"{name}-{label}.jpg"
        if not path.exists():
            path.write_bytes(make_jpeg(photos[name], width=width, height=height))
        paths[label] = path
    return paths
