"""Resize, letterbox/stretch, pad and normalize in NumPy, exactly as the model was trained.

Resizing is separable: each axis has a small table of source indices and weights (cached per size pair),
so a pass is a handful of vectorized gathers with multiply-adds. Antialiased downscaling has many taps per
output (7 for 1920 -> 640), so there each axis is instead a chain of small dense matrix products over bands of
outputs (a band of 8 outputs reads only the ~30 inputs under it): BLAS does the multiply-adds on interleaved
RGB rows (each uint8 row band converted while it is in cache), and only the last step, the gain multiply,
writes channel planes into the padded NCHW tensor (1.03-1.35x faster than resizing planes, measured on
1080p/4K to 640/384). Kernels:

- ``bilinear`` without antialias: torch's ``interpolate(mode="bilinear", align_corners=False)``
  (torchvision's detection transform);
- ``bilinear`` with antialias: torch's ``antialias=True`` / PIL's BILINEAR (triangle filter widened by the
  downscale factor), what Hugging Face processors use;
- ``nearest``: torch's legacy ``mode="nearest"`` (source index = floor(dst * in / out)).

Example:
    >>> import numpy as np
    >>> from detection.manifest import InputSpec, Preprocessing
    >>> image = np.zeros((480, 640, 3), dtype=np.uint8)
    >>> tensor, geometry = preprocess(image, spec=Preprocessing(), input_spec=InputSpec("x", 320, 320))
    >>> tensor.shape, geometry.pad_y
    ((1, 3, 320, 320), 0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .manifest import InputSpec, Preprocessing
from .memo import ByteBoundedCache

# Every resize table (taps and bands, both axes) shares one budget: a table grows with the image side, and
# a caller may send any number of distinct sizes. 64 MiB holds the tables of ~38 distinct 4K sizes
# (1.7 MB each, measured).
RESIZE_TABLE_BYTES = 64 * 1024 * 1024
resize_tables = ByteBoundedCache(max_bytes=RESIZE_TABLE_BYTES)


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


@resize_tables
def resize_taps(in_size: int, out_size: int, interpolation: str, antialias: bool) -> tuple[np.ndarray, np.ndarray]:
    """Source indices ``(out_size, taps)`` and float32 weights for one axis; rows of weights sum to 1."""
    if interpolation == "nearest":
        index = np.minimum(np.floor(np.arange(out_size) * (in_size / out_size)).astype(np.int64), in_size - 1)
        return index[:, None], np.ones((out_size, 1), dtype=np.float32)
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


# OpenBLAS threads a gemm only above 4 * 65536 multiply-adds; we keep each product below that: the threads
# would fight ONNX Runtime's pool for the same vCPUs (and spin after each call) for no gain on bands this thin.
_SINGLE_THREAD_MACS = 200_000
_BAND = 8  # outputs per band: 8 keeps the dense band near the filter's true width (measured: 8 < 16 < 32 ms)


@resize_tables
def resize_bands(in_size: int, out_size: int, interpolation: str, antialias: bool,
                 band: int = _BAND) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """One axis as bands ``(in_start, in_stop, out_start, out_stop, weights (in_stop - in_start, outs))``.

    Example:
        >>> [(b[0], b[1], b[2], b[3]) for b in resize_bands(8, 2, "bilinear", True, 1)]
        [(0, 6, 0, 1), (2, 8, 1, 2)]
    """
    index, weight = resize_taps(in_size, out_size, interpolation, antialias)
    bands = []
    for out_start in range(0, out_size, band):
        out_stop = min(out_size, out_start + band)
        rows, weights = index[out_start:out_stop], weight[out_start:out_stop]
        live = weights != 0
        used = rows[live] if live.any() else rows.ravel()
        in_start, in_stop = int(used.min()), int(used.max()) + 1
        dense = np.zeros((in_stop - in_start, out_stop - out_start), dtype=np.float32)
        columns = np.broadcast_to(np.arange(out_stop - out_start)[:, None], rows.shape)
        # add.at: clamped edge taps may name the same source pixel twice
        np.add.at(dense, (np.clip(rows - in_start, 0, in_stop - in_start - 1), columns), np.where(live, weights, 0))
        bands.append((in_start, in_stop, out_start, out_stop, dense))
    return tuple(bands)


def _matmul_single_threaded(a: np.ndarray, b: np.ndarray, out: np.ndarray, *, axis: int) -> None:
    """``out = a @ b`` in slices along ``axis`` (0: rows of ``a``, 1: columns of ``b``), each below BLAS's
    threading threshold."""
    if axis == 0:
        step = max(1, _SINGLE_THREAD_MACS // max(1, a.shape[1] * b.shape[1]))
        for start in range(0, a.shape[0], step):
            np.matmul(a[start:start + step], b, out=out[start:start + step])
    else:
        step = max(1, _SINGLE_THREAD_MACS // max(1, a.shape[0] * a.shape[1]))
        for start in range(0, b.shape[1], step):
            np.matmul(a, b[:, start:start + step], out=out[:, start:start + step])


@resize_tables
def _row_bands(in_size: int, out_size: int, interpolation: str, antialias: bool):
    """Row bands with their weights transposed (outputs x inputs), for ``weights @ source rows``."""
    return tuple((a, b, c, d, np.ascontiguousarray(w.T))
                 for a, b, c, d, w in resize_bands(in_size, out_size, interpolation, antialias))


@resize_tables
def _pixel_bands(in_size: int, out_size: int, interpolation: str, antialias: bool):
    """Column bands acting on interleaved RGB: each weight becomes a 3x3 identity block, so one product
    resizes all three channels of a row band in place of three strided ones."""
    eye = np.eye(3, dtype=np.float32)
    return tuple((3 * a, 3 * b, 3 * c, 3 * d, np.kron(w, eye))
                 for a, b, c, d, w in resize_bands(in_size, out_size, interpolation, antialias))


def _banded_resize_into(image: np.ndarray, out: np.ndarray, *, gains: np.ndarray, channels: tuple[int, ...],
                        interpolation: str, antialias: bool) -> None:
    """``out[c] = resize(image[..., channels[c]]) * gains[c]`` for an ``(H, W, 3)`` image, ``out`` (3, h, w).

    Everything stays interleaved (H, W*3) until the last write: a row band of the uint8 source is converted
    while it is hot in cache and multiplied from the left (a wide, contiguous product), the column pass reads
    contiguous row segments, and only the final gain multiply transposes to planes.
    """
    in_h, in_w = image.shape[:2]
    out_h, out_w = out.shape[1:]
    flat = np.ascontiguousarray(image).reshape(in_h, in_w * 3)
    rows_done = np.empty((out_h, in_w * 3), dtype=np.float32)
    for in_start, in_stop, out_start, out_stop, weights in _row_bands(in_h, out_h, interpolation, antialias):
        _matmul_single_threaded(weights, flat[in_start:in_stop].astype(np.float32),
                                rows_done[out_start:out_stop], axis=1)
    pixels = np.empty((out_h, out_w * 3), dtype=np.float32)
    for in_start, in_stop, out_start, out_stop, weights in _pixel_bands(in_w, out_w, interpolation, antialias):
        _matmul_single_threaded(rows_done[:, in_start:in_stop], weights, pixels[:, out_start:out_stop], axis=0)
    by_channel = pixels.reshape(out_h, out_w, 3).transpose(2, 0, 1)
    for c, source_channel in enumerate(channels):
        np.multiply(by_channel[source_channel], gains[c], out=out[c])


def _use_bands(in_h: int, in_w: int, height: int, width: int, interpolation: str, antialias: bool) -> bool:
    """Bands win when outputs have many taps (antialiased downscaling); gathers win for 1-2 taps."""
    return interpolation == "bilinear" and antialias and (in_h > height or in_w > width)


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
        >>> float(resize(np.full((4, 4, 3), 200, np.uint8), width=2, height=2).max())
        200.0
    """
    in_h, in_w = image.shape[:2]
    if (in_h, in_w) == (height, width):
        return image.astype(np.float32, copy=False)
    if image.ndim == 3 and image.shape[2] == 3 and _use_bands(in_h, in_w, height, width, interpolation, antialias):
        planes = np.empty((3, height, width), dtype=np.float32)
        _banded_resize_into(image, planes, gains=np.ones(3, np.float32), channels=(0, 1, 2),
                            interpolation=interpolation, antialias=antialias)
        return planes.transpose(1, 2, 0)
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


def geometry_for(image: np.ndarray, *, spec: Preprocessing, input_spec: InputSpec,
                 original_size: tuple[int, int] | None = None) -> Geometry:
    """``plan_geometry`` for an ``(H, W, 3)`` RGB array and a manifest's preprocessing and input."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {image.shape}")
    height, width = image.shape[:2]
    return plan_geometry(
        source_width=width,
        source_height=height,
        input_width=input_spec.width,
        input_height=input_spec.height,
        resize=spec.resize,
        pad_position=spec.pad_position,
        original_width=original_size[0] if original_size else None,
        original_height=original_size[1] if original_size else None,
    )


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
    geometry = geometry_for(image, spec=spec, input_spec=input_spec, original_size=original_size)
    height, width = image.shape[:2]
    gain, bias = normalization(spec)
    tensor = np.empty((1, 3, input_spec.height, input_spec.width), dtype=np.float32)
    full = (geometry.resized_width, geometry.resized_height) == (input_spec.width, input_spec.height)
    if not full:
        tensor.fill(spec.pad_value)
    region = tensor[0, :, geometry.pad_y:geometry.pad_y + geometry.resized_height,
                    geometry.pad_x:geometry.pad_x + geometry.resized_width]
    if _use_bands(height, width, geometry.resized_height, geometry.resized_width, spec.interpolation,
                  spec.antialias):
        channels = (2, 1, 0) if spec.channel_order == "BGR" else (0, 1, 2)
        _banded_resize_into(image, region, gains=gain, channels=channels, interpolation=spec.interpolation,
                            antialias=spec.antialias)
    else:
        resized = resize(
            image,
            width=geometry.resized_width,
            height=geometry.resized_height,
            interpolation=spec.interpolation,
            antialias=spec.antialias,
        )
        if spec.channel_order == "BGR":
            resized = resized[:, :, ::-1]
        np.multiply(resized.transpose(2, 0, 1), gain[:, None, None], out=region)
    if bias.any():
        region += bias[:, None, None]
    if input_spec.dtype != "float32":
        tensor = tensor.astype(input_spec.dtype)
    return tensor, geometry
