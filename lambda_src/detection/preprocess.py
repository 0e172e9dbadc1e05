"""Resize, letterbox/stretch, pad and normalize in NumPy, exactly as the model was trained.

Resizing is separable: each axis has a small table of source indices and weights (cached per size pair),
so a pass is a handful of vectorized gathers with multiply-adds. Two kernels:

- ``bilinear`` without antialias: torch's ``interpolate(mode="bilinear", align_corners=False)``
  (torchvision's detection transform);
- ``bilinear`` with antialias: torch's ``antialias=True`` / PIL's BILINEAR (triangle filter widened by the
  downscale factor), what Hugging Face processors use;
- ``nearest``: torch's legacy ``mode="nearest"`` (source index = floor(dst * in / out)).

Example:
    >>> import numpy as np
    >>> from detection.bundle import InputSpec, Preprocessing
    >>> image = np.zeros((480, 640, 3), dtype=np.uint8)
    >>> tensor, geometry = preprocess(image, spec=Preprocessing(), input_spec=InputSpec("x", 320, 320))
    >>> tensor.shape, geometry.pad_y
    ((1, 3, 320, 320), 0)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .bundle import InputSpec, Preprocessing


@dataclass(frozen=True)
class Geometry:
    """How the source image was placed into the input tensor, to map boxes back.

    ``tensor = source * scale + pad`` on each axis; ``source`` pixels relate to the original image by
    ``original_width / source_width`` (not 1 when the decoder reduced the image, e.g. JPEG draft mode).
    """

    original_width: int
    original_height: int
    source_width: int
    source_height: int
    resized_width: int
    resized_height: int
    pad_x: int
    pad_y: int

    @property
    def scale_x(self) -> float:
        return self.resized_width / self.source_width

    @property
    def scale_y(self) -> float:
        return self.resized_height / self.source_height


def plan_geometry(
    *,
    source_width: int,
    source_height: int,
    input_width: int,
    input_height: int,
    resize: str,
    pad_position: str,
    original_width: int | None = None,
    original_height: int | None = None,
) -> Geometry:
    """Where the resized image goes in the input tensor.

    Letterbox keeps the aspect ratio (``scale = min(W / w, H / h)``, sizes rounded to nearest) and pads
    the rest; stretch fills the tensor.

    Example:
        >>> g = plan_geometry(source_width=1920, source_height=1080, input_width=640, input_height=640,
        ...                   resize="letterbox", pad_position="center")
        >>> (g.resized_width, g.resized_height, g.pad_x, g.pad_y)
        (640, 360, 0, 140)
    """
    if source_width <= 0 or source_height <= 0:
        raise ValueError(f"empty image ({source_width}x{source_height})")
    if resize == "stretch":
        resized_w, resized_h = input_width, input_height
    else:
        scale = min(input_width / source_width, input_height / source_height)
        resized_w = min(input_width, max(1, int(round(source_width * scale))))
        resized_h = min(input_height, max(1, int(round(source_height * scale))))
    if pad_position == "center":
        pad_x, pad_y = (input_width - resized_w) // 2, (input_height - resized_h) // 2
    else:
        pad_x = pad_y = 0
    return Geometry(
        original_width=original_width or source_width,
        original_height=original_height or source_height,
        source_width=source_width,
        source_height=source_height,
        resized_width=resized_w,
        resized_height=resized_h,
        pad_x=pad_x,
        pad_y=pad_y,
    )


@lru_cache(maxsize=64)
def resize_taps(in_size: int, out_size: int, interpolation: str, antialias: bool) -> tuple[np.ndarray, np.ndarray]:
    """Source indices ``(out_size, taps)`` and float32 weights for one axis; rows of weights sum to 1."""
    if interpolation == "nearest":
        index = np.minimum(np.floor(np.arange(out_size) * (in_size / out_size)).astype(np.int64), in_size - 1)
        return index[:, None], np.ones((out_size, 1), dtype=np.float32)
    scale = in_size / out_size
    if antialias:
        # float32 arithmetic throughout, as torch's antialiased kernel does
        scale32 = np.float32(in_size) / np.float32(out_size)
        support = max(scale32, np.float32(1.0))  # triangle filter of radius 1, widened when downscaling
        inv = np.float32(1.0) / support
        center = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale32
        start = np.maximum((center - support + np.float32(0.5)).astype(np.int64), 0)
        stop = np.minimum((center + support + np.float32(0.5)).astype(np.int64), in_size)
        taps = int((stop - start).max())
        offsets = np.arange(taps)
        index = start[:, None] + offsets[None, :]
        distance = (index.astype(np.float32) - center[:, None] + np.float32(0.5)) * inv
        weight = np.clip(np.float32(1.0) - np.abs(distance), np.float32(0.0), None)
        weight[index >= stop[:, None]] = 0.0
        weight /= weight.sum(axis=1, keepdims=True)
        return np.minimum(index, in_size - 1), weight.astype(np.float32)
    # float32 index arithmetic, as torch does, so fractions agree to the last bit
    scale32 = np.float32(in_size) / np.float32(out_size)
    # torch's compiled kernel fuses the multiply-add (one rounding): emulate it in float64, round once
    exact = (np.arange(out_size, dtype=np.float64) + 0.5) * np.float64(scale32) - 0.5
    source = np.maximum(exact.astype(np.float32), np.float32(0.0))
    low = np.minimum(source.astype(np.int64), in_size - 1)
    high = np.minimum(low + 1, in_size - 1)
    frac = source - low.astype(np.float32)
    return np.stack([low, high], axis=1), np.stack([1.0 - frac, frac], axis=1).astype(np.float32)


def _resize_axis(image: np.ndarray, index: np.ndarray, weight: np.ndarray, axis: int) -> np.ndarray:
    taps = index.shape[1]
    if taps == 1:
        return np.take(image, index[:, 0], axis=axis).astype(np.float32, copy=False)
    shape = [1] * image.ndim
    shape[axis] = index.shape[0]
    out = np.take(image, index[:, 0], axis=axis) * weight[:, 0].reshape(shape)
    for k in range(1, taps):
        column = weight[:, k]
        if not column.any():
            continue
        out += np.take(image, index[:, k], axis=axis) * column.reshape(shape)
    return out


def resize(image: np.ndarray, *, width: int, height: int, interpolation: str = "bilinear",
           antialias: bool = False) -> np.ndarray:
    """Resize an ``(H, W, C)`` array to ``(height, width, C)`` float32 (values stay in the input's range).

    Example:
        >>> resize(np.full((4, 4, 3), 200, np.uint8), width=2, height=2).max()
        200.0
    """
    in_h, in_w = image.shape[:2]
    if (in_h, in_w) == (height, width):
        return image.astype(np.float32, copy=False)
    y_index, y_weight = resize_taps(in_h, height, interpolation, antialias)
    x_index, x_weight = resize_taps(in_w, width, interpolation, antialias)
    # Run the cheaper pass order: the first pass works on the full-size source.
    rows_first = height * in_w * y_index.shape[1] + height * width * x_index.shape[1]
    cols_first = in_h * width * x_index.shape[1] + height * width * y_index.shape[1]
    if rows_first <= cols_first:
        return _resize_axis(_resize_axis(image, y_index, y_weight, 0), x_index, x_weight, 1)
    return _resize_axis(_resize_axis(image, x_index, x_weight, 1), y_index, y_weight, 0)


def normalization(spec: Preprocessing) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``gain`` and ``bias`` so that ``tensor = pixel * gain + bias`` (pixels in 0..255)."""
    if spec.mean is None:
        gain = np.full(3, spec.scale, dtype=np.float32)
        return gain, np.zeros(3, dtype=np.float32)
    mean = np.asarray(spec.mean, dtype=np.float64)
    std = np.asarray(spec.std, dtype=np.float64)
    return (spec.scale / std).astype(np.float32), (-mean / std).astype(np.float32)


def preprocess(
    image: np.ndarray,
    *,
    spec: Preprocessing,
    input_spec: InputSpec,
    original_size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, Geometry]:
    """RGB ``uint8`` ``(H, W, 3)`` image -> ``(1, 3, H_in, W_in)`` tensor and the geometry to undo it.

    ``original_size`` is ``(width, height)`` of the image before any decoder-side reduction.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {image.shape}")
    height, width = image.shape[:2]
    geometry = plan_geometry(
        source_width=width,
        source_height=height,
        input_width=input_spec.width,
        input_height=input_spec.height,
        resize=spec.resize,
        pad_position=spec.pad_position,
        original_width=original_size[0] if original_size else None,
        original_height=original_size[1] if original_size else None,
    )
    resized = resize(
        image,
        width=geometry.resized_width,
        height=geometry.resized_height,
        interpolation=spec.interpolation,
        antialias=spec.antialias,
    )
    if spec.channel_order == "BGR":
        resized = resized[:, :, ::-1]
    gain, bias = normalization(spec)
    tensor = np.empty((1, 3, input_spec.height, input_spec.width), dtype=np.float32)
    full = (geometry.resized_width, geometry.resized_height) == (input_spec.width, input_spec.height)
    if not full:
        tensor.fill(spec.pad_value)
    region = tensor[0, :, geometry.pad_y:geometry.pad_y + geometry.resized_height,
                    geometry.pad_x:geometry.pad_x + geometry.resized_width]
    np.multiply(resized.transpose(2, 0, 1), gain[:, None, None], out=region)
    region += bias[:, None, None]
    if input_spec.dtype != "float32":
        tensor = tensor.astype(input_spec.dtype)
    return tensor, geometry
