"""A seeded, offline demo detection dataset in Pascal VOC layout (``annotations/*.xml`` + ``images/*.jpg``).

Four textured "products" on cluttered backgrounds, so a detector has to learn shape *and* texture:

- ``soda_can``     upright rounded rectangle with horizontal stripes;
- ``cereal_box``   rectangle with a checkerboard print;
- ``orange``       disc with speckle texture and a highlight;
- ``milk_carton``  rectangle with a gabled (triangular) top and a label band.

Backgrounds are random gradients with noise, plus distractors (plain polygons, ellipses, lines) that share
colours with the objects but not their shape+texture. Objects vary in size (about 6-40 % of the image side),
aspect, colour and may overlap (IoU <= 0.35; the later one occludes the earlier, covering at most half of
its box, so every labelled object stays visible); every box is the full object extent, as VOC annotators
draw it. Generation is deterministic for a given seed.

Example:
    >>> from tempfile import mkdtemp
    >>> summary = generate_dataset(mkdtemp(), num_images=4, seed=0)
    >>> summary["images"]
    4
"""

from __future__ import annotations

import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ("soda_can", "cereal_box", "orange", "milk_carton")
GENERATOR_VERSION = 2  # part of the demo cache keys: bump when the same parameters would draw other scenes
MAX_IOU = 0.35  # between any two objects' boxes
MAX_HIDDEN = 0.5  # most of an object's box that later objects may cover


def _gradient_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Two-colour linear gradient at a random angle, plus per-pixel noise and a few soft blobs."""
    c0 = rng.uniform(20, 235, 3)
    c1 = rng.uniform(20, 235, 3)
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (xs * math.cos(angle) + ys * math.sin(angle))
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    image = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    image += rng.normal(0, rng.uniform(3, 14), (height, width, 1)) + rng.normal(0, 4, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def _draw_distractors(rng: np.random.Generator, draw: ImageDraw.ImageDraw, width: int, height: int) -> None:
    for _ in range(int(rng.integers(2, 9))):
        kind = rng.integers(0, 3)
        colour = _random_colour(rng)
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        size = rng.uniform(0.04, 0.25) * min(width, height)
        if kind == 0:  # irregular polygon
            n = int(rng.integers(3, 7))
            angles = np.sort(rng.uniform(0, 2 * math.pi, n))
            radii = size * rng.uniform(0.4, 1.0, n)
            points = [(cx + r * math.cos(a), cy + r * math.sin(a)) for a, r in zip(angles, radii)]
            draw.polygon(points, fill=colour)
        elif kind == 1:  # flat ellipse, plain fill
            draw.ellipse([cx - size, cy - size * 0.3, cx + size, cy + size * 0.3], fill=colour)
        else:
            draw.line([cx, cy, cx + rng.uniform(-2, 2) * size, cy + rng.uniform(-2, 2) * size],
                      fill=colour, width=int(rng.integers(2, 8)))


def _object_size(rng: np.random.Generator, label: str, side: int) -> tuple[int, int]:
    base = rng.uniform(0.08, 0.4) * side
    aspect = {"soda_can": rng.uniform(1.6, 2.2), "cereal_box": rng.uniform(1.2, 1.6),
              "orange": 1.0, "milk_carton": rng.uniform(1.6, 2.1)}[label]  # height / width
    width = base / math.sqrt(aspect)
    return max(14, int(width)), max(14, int(width * aspect))


def _texture(rng: np.random.Generator, label: str, w: int, h: int) -> np.ndarray:
    """The object's RGB pixels (h, w, 3) before masking."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    if label == "soda_can":
        c0, c1 = np.array(_random_colour(rng), np.float32), np.array(_random_colour(rng), np.float32)
        period = max(4.0, h / rng.uniform(4, 8))
        stripes = (np.floor(ys / period) % 2)[..., None]
        image = c0 * (1 - stripes) + c1 * stripes
        shade = 0.65 + 0.35 * np.sin(np.pi * (xs + 0.5) / w)[..., None]  # cylinder shading
        return image * shade
    if label == "cereal_box":
        c0, c1 = np.array(_random_colour(rng), np.float32), np.array(_random_colour(rng), np.float32)
        cell = max(3.0, w / rng.uniform(3, 6))
        checker = ((np.floor(xs / cell) + np.floor(ys / cell)) % 2)[..., None]
        return c0 * (1 - checker) + c1 * checker
    if label == "orange":
        base = np.array([rng.uniform(200, 255), rng.uniform(90, 170), rng.uniform(0, 50)], np.float32)
        speckle = rng.normal(0, 22, (h, w, 1))
        r = np.hypot((xs - w * 0.35) / w, (ys - h * 0.35) / h)
        highlight = np.clip(1.0 - r * 3.0, 0, 1)[..., None] * 70
        return base + speckle + highlight
    # milk_carton: pale body, coloured band across the middle, darker gable
    body = np.array([rng.uniform(200, 250)] * 3, np.float32) + rng.normal(0, 4, 3)
    band = np.array(_random_colour(rng), np.float32)
    image = np.broadcast_to(body, (h, w, 3)).copy()
    band_rows = (ys > h * 0.5) & (ys < h * 0.72)
    image[band_rows] = band
    image[ys < h * 0.3] *= 0.8
    return image


def _mask(label: str, w: int, h: int) -> Image.Image:
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    if label == "soda_can":
        draw.rounded_rectangle([0, 0, w - 1, h - 1], radius=max(2, w // 4), fill=255)
    elif label == "cereal_box":
        draw.rectangle([0, 0, w - 1, h - 1], fill=255)
    elif label == "orange":
        draw.ellipse([0, 0, w - 1, h - 1], fill=255)
    else:
        gable = int(h * 0.3)
        draw.polygon([(0, gable), (w // 2, 0), (w - 1, gable), (w - 1, h - 1), (0, h - 1)], fill=255)
    return mask


def _iou(a: tuple, b: tuple) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _cover(mask: np.ndarray, box: tuple, by: tuple) -> np.ndarray:
    """``mask`` (the hidden pixels of ``box``) with the part under ``by`` added."""
    out = mask.copy()
    x1, y1 = max(by[0] - box[0], 0), max(by[1] - box[1], 0)
    x2, y2 = min(by[2], box[2]) - box[0], min(by[3], box[3]) - box[1]
    if x2 > x1 and y2 > y1:
        out[y1:y2, x1:x2] = True
    return out


def render_scene(rng: np.random.Generator, *, width: int, height: int, max_objects: int = 6,
                 classes: tuple[str, ...] = CLASSES) -> tuple[Image.Image, list[tuple[str, tuple[int, ...]]]]:
    """One RGB scene and its objects ``[(label, (xmin, ymin, xmax, ymax)), ...]`` (pixel edges, ints).

    Example:
        >>> image, objects = render_scene(np.random.default_rng(0), width=160, height=120)
        >>> image.size
        (160, 120)
    """
    canvas = Image.fromarray(_gradient_background(rng, width, height))
    _draw_distractors(rng, ImageDraw.Draw(canvas), width, height)
    objects: list[tuple[str, tuple[int, ...]]] = []
    hidden: list[np.ndarray] = []  # per placed object: which of its box pixels later objects cover
    wanted = int(rng.integers(0, max_objects + 1)) if rng.uniform() < 0.05 else int(rng.integers(1, max_objects + 1))
    for _ in range(wanted * 4):  # a few tries per object to respect the overlap limit
        if len(objects) >= wanted:
            break
        label = classes[int(rng.integers(0, len(classes)))]
        w, h = _object_size(rng, label, min(width, height))
        if w >= width or h >= height:
            continue
        x0, y0 = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        box = (x0, y0, x0 + w, y0 + h)
        if any(_iou(box, other) > MAX_IOU for _, other in objects):
            continue
        covered = [_cover(mask, other, box) for mask, (_, other) in zip(hidden, objects)]
        if any(mask.mean() > MAX_HIDDEN for mask in covered):  # an annotator would not see it: no label
            continue
        hidden = covered + [np.zeros((h, w), dtype=bool)]
        pixels = np.clip(_texture(rng, label, w, h), 0, 255).astype(np.uint8)
        canvas.paste(Image.fromarray(pixels), (x0, y0), _mask(label, w, h))
        objects.append((label, box))
    if rng.uniform() < 0.3:  # a little camera blur now and then
        canvas = canvas.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.2))))
    return canvas, objects


def voc_xml(*, filename: str, width: int, height: int, objects: list[tuple[str, tuple[int, ...]]]) -> str:
    """Pascal VOC annotation XML for one image."""
    parts = [
        "<annotation>",
        "  <folder>images</folder>",
        f"  <filename>{escape(filename)}</filename>",
        f"  <size><width>{width}</width><height>{height}</height><depth>3</depth></size>",
    ]
    for label, (x1, y1, x2, y2) in objects:
        parts += [
            "  <object>",
            f"    <name>{escape(label)}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>",
            f"    <bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox>",
            "  </object>",
        ]
    parts.append("</annotation>")
    return "\n".join(parts) + "\n"


def _write_scene(index: int, *, out: Path, seed: int, min_size: int, max_size: int, max_objects: int,
                 jpeg_quality: int) -> list[str]:
    rng = np.random.default_rng([seed, index])  # per-image streams: image i is the same for any count or order
    width, height = (int(v) for v in rng.integers(min_size, max_size + 1, 2))
    image, objects = render_scene(rng, width=width, height=height, max_objects=max_objects)
    stem = f"scene_{index:05d}"
    image.save(out / "images" / f"{stem}.jpg", quality=jpeg_quality)
    (out / "annotations" / f"{stem}.xml").write_text(
        voc_xml(filename=f"{stem}.jpg", width=width, height=height, objects=objects))
    return [label for label, _ in objects]


def generate_dataset(
    out_dir: str | Path,
    *,
    num_images: int = 200,
    seed: int = 0,
    min_size: int = 320,
    max_size: int = 480,
    max_objects: int = 6,
    jpeg_quality: int = 90,
    workers: int | None = None,
) -> dict:
    """Write ``num_images`` scenes to ``out_dir/images`` and their VOC XML to ``out_dir/annotations``.

    Image sides are drawn uniformly from ``[min_size, max_size]`` (so aspect ratios vary). Returns a summary
    with per-class object counts. ``workers`` processes render in parallel (default: the CPUs this process
    may use); the files are the same for any number of workers.
    """
    if num_images < 0:
        raise ValueError(f"num_images must be >= 0, got {num_images}")
    if not 32 <= min_size <= max_size:
        raise ValueError(f"need 32 <= min_size <= max_size, got {min_size}, {max_size}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    write = partial(_write_scene, out=out, seed=seed, min_size=min_size, max_size=max_size,
                    max_objects=max_objects, jpeg_quality=jpeg_quality)
    if workers is None:
        # lazy: pulls onnxruntime; the spawned render workers import this module and must not
        from detection.session import available_cpus

        workers = available_cpus()
    if workers > 1 and num_images >= 64:
        # spawn, not fork: the caller may hold torch's OpenMP threads, which a forked child must not inherit
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            labels = list(pool.map(write, range(num_images), chunksize=16))
    else:
        labels = [write(index) for index in range(num_images)]
    counts = {name: 0 for name in CLASSES}
    for image_labels in labels:
        for label in image_labels:
            counts[label] += 1
    return {"path": str(out), "images": num_images, "seed": seed, "objects": counts, "classes": list(CLASSES)}
