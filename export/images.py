"""Images for the parity gate: real photos that ship inside installed packages, plus synthetic scenes.

Real photos come from matplotlib's ``sample_data`` (grace_hopper.jpg) and, when scikit-image is installed,
its ``data`` folder (astronaut, chelsea, coffee, rocket). Synthetic scenes cover what photos may not:
extreme aspect ratios (letterbox padding on either axis), upscaling from a tiny image, flat colour areas.
Nothing is downloaded and nothing large lives in the repository.

Example:
    >>> [image.name for image in synthetic_scenes()][:2]
    ['scene-landscape-1280x720.jpg', 'scene-portrait-480x800.png']
"""

from __future__ import annotations

import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .errors import ExportError


@dataclass(frozen=True)
class ParityImage:
    """An encoded image (the bytes a client would send) and a name for the report."""

    name: str
    data: bytes


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)  # locate without importing (scikit-image's import is slow)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def real_photo_paths() -> list[Path]:
    """Photos found in installed packages, in a fixed order (may be empty)."""
    candidates = []
    matplotlib_dir = _package_dir("matplotlib")
    if matplotlib_dir is not None:
        candidates.append(matplotlib_dir / "mpl-data" / "sample_data" / "grace_hopper.jpg")
    skimage_dir = _package_dir("skimage")
    if skimage_dir is not None:
        for name in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"):
            candidates.append(skimage_dir / "data" / name)
    return [path for path in candidates if path.is_file()]


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def _scene(width: int, height: int, *, seed: int, shapes: int = 6) -> Image.Image:
    """A gradient background with random filled rectangles and ellipses (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    background = top * (1 - y) + bottom * y + 40 * np.sin(6.0 * x)
    background += rng.normal(0.0, 6.0, (height, width, 3))  # sensor-like noise: no flat ties in the features
    image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(shapes):
        w, h = int(rng.integers(width // 10, width // 2)), int(rng.integers(height // 10, height // 2))
        x0, y0 = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=color)
        else:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=color)
    return image


def synthetic_scenes() -> list[ParityImage]:
    """Scenes at sizes that exercise letterbox on both axes and upscaling."""
    specs = [("landscape", 1280, 720, "JPEG"), ("portrait", 480, 800, "PNG"), ("tiny", 160, 120, "PNG")]
    out = []
    for seed, (kind, width, height, fmt) in enumerate(specs):
        name = f"scene-{kind}-{width}x{height}.{'jpg' if fmt == 'JPEG' else 'png'}"
        out.append(ParityImage(name, _encode(_scene(width, height, seed=seed), fmt)))
    return out


def default_parity_images(*, photos: int = 3) -> list[ParityImage]:
    """``photos`` real photos (as many as are installed) followed by the synthetic scenes."""
    real = [ParityImage(path.name, path.read_bytes()) for path in real_photo_paths()[:photos]]
    return real + synthetic_scenes()


def load_parity_images(paths: list[str | Path]) -> list[ParityImage]:
    """Images given by the user (``--parity-images``)."""
    out = []
    for path in map(Path, paths):
        if not path.is_file():
            raise ExportError(f"--parity-images: {path} is not a file")
        out.append(ParityImage(path.name, path.read_bytes()))
    if not out:
        raise ExportError("--parity-images: no images given")
    return out
