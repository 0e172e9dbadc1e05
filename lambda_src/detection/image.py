"""Decode image bytes into an RGB uint8 array: EXIF orientation applied, any mode converted, bombs refused.

Pillow only decodes here; every pixel operation after this is NumPy (see ``preprocess``).

Example:
    >>> import io
    >>> from PIL import Image
    >>> buffer = io.BytesIO(); Image.new("L", (64, 48)).save(buffer, "PNG")
    >>> decoded = decode_image(buffer.getvalue())
    >>> decoded.array.shape, decoded.original_width
    ((48, 64, 3), 64)
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

DEFAULT_MAX_PIXELS = 50_000_000  # 50 MP: a 8K photo fits; a decompression bomb does not
# Resize work and tables grow with the longest side, which pixels alone do not bound (1 x 40,000,000 is under
# 50 MP). 20:1 keeps a wide panorama; at 50 MP it means sides up to 31,623 px (tables ~12 MB, measured).
MAX_ASPECT_RATIO = 20
# What malformed or hostile image bytes make Pillow raise, on open or on load: the caller's fault (415).
_MALFORMED = (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError, struct.error,
              ZeroDivisionError, OverflowError)
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "MPO")

# Transposes that swap width and height (EXIF orientations 5-8).
_SWAPS_AXES = {5, 6, 7, 8}

# JPEG DCT scalings: (Pillow's decoder scale = libjpeg's scale_denom with scale_num 1, output eighths). libjpeg
# rounds 1/3 to 3/8, which Pillow's own ``draft`` (1/2, 1/4, 1/8 only) never asks for.
_DCT_SCALES = ((8, 1), (4, 2), (3, 3), (2, 4))


@dataclass(frozen=True)
class DecodedImage:
    """``array`` is (H, W, 3) uint8 RGB, possibly reduced by the decoder; ``original_*`` is the full size
    after EXIF orientation, the frame detections are reported in."""

    array: np.ndarray
    original_width: int
    original_height: int
    format: str

    @property
    def reduced(self) -> bool:
        return self.array.shape[1] != self.original_width or self.array.shape[0] != self.original_height


def _open(data: bytes) -> Image.Image:
    if not data:
        raise UnsupportedMediaType("empty image: send JPEG, PNG, WebP, BMP, GIF or TIFF bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombWarning as exc:
        raise PayloadTooLarge(f"image has too many pixels: {exc}") from None
    except Image.DecompressionBombError as exc:
        raise PayloadTooLarge(f"image has too many pixels: {exc}") from None
    except (UnidentifiedImageError, *_MALFORMED):
        raise UnsupportedMediaType(
            "body is not a supported image (JPEG, PNG, WebP, BMP, GIF or TIFF)"
        ) from None
    if image.format not in SUPPORTED_FORMATS:
        raise UnsupportedMediaType(f"{image.format} images are not supported; send JPEG, PNG, WebP, BMP, GIF or TIFF")
    return image


def decode_image(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: tuple[int, int] | None = None,
    keep_aspect: bool = False,
) -> DecodedImage:
    """Decode ``data``; refuse images over ``max_pixels`` before decoding them (413).

    ``draft_size=(w, h)`` lets the JPEG decoder reduce by 1/8, 1/4, 3/8 or 1/2 (DCT scaling, no full-size
    intermediate) while staying at least that large (in the oriented frame): a 4K photo for a 640x640 model
    decodes at 3/8 size (1440x810). With ``keep_aspect`` (letterbox models) the image need only cover the box that fits inside
    ``draft_size``. Boxes still come back in original pixels (see ``Geometry``).
    """
    image = _open(data)
    width, height = image.size
    check_image_size(width, height, max_pixels=max_pixels)
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:  # a malformed EXIF block must not fail the request: treat it as upright
        orientation = 1
    swapped = orientation in _SWAPS_AXES
    original_width, original_height = (height, width) if swapped else (width, height)
    try:
        if draft_size is not None and image.format in ("JPEG", "MPO"):
            want_w, want_h = draft_size
            if keep_aspect:
                fit = min(want_w / original_width, want_h / original_height, 1.0)
                want_w = max(1, math.ceil(original_width * fit))
                want_h = max(1, math.ceil(original_height * fit))
            if swapped:
                want_w, want_h = want_h, want_w
            _scale_while_decoding(image, want_w, want_h)
        image.load()
        if orientation != 1:
            image = ImageOps.exif_transpose(image)
        if image.mode != "RGB":
            image = _to_rgb(image)
        array = np.asarray(image)
    except _MALFORMED as exc:
        raise UnsupportedMediaType(f"image data is truncated or corrupt: {exc}") from None
    return DecodedImage(array=array, original_width=original_width, original_height=original_height,
                        format=str(image.format or "unknown"))


def check_image_size(width: int, height: int, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                     max_aspect_ratio: float = MAX_ASPECT_RATIO) -> None:
    """Refuse, before decoding, images whose decode or resize would be unbounded work.

    Example:
        >>> check_image_size(1, 40_000_000)
        Traceback (most recent call last):
        ...
        detection.errors.BadRequest: image is 1x40000000, aspect ratio 40000000:1; the limit is 20:1 (crop or pad it)
    """
    if width <= 0 or height <= 0:
        raise UnsupportedMediaType(f"image is {width}x{height}: it has no pixels")
    if width * height > max_pixels:
        raise PayloadTooLarge(
            f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels} (resize it first)"
        )
    if max(width, height) > max_aspect_ratio * min(width, height):
        ratio = max(width, height) / min(width, height)
        raise BadRequest(f"image is {width}x{height}, aspect ratio {ratio:.0f}:1; the limit is "
                         f"{max_aspect_ratio:g}:1 (crop or pad it)")


def _scale_while_decoding(image: Image.Image, want_w: int, want_h: int) -> None:
    """Have the JPEG decoder produce the smallest DCT-scaled size that still covers ``want_w x want_h``.

    Does what ``JpegImageFile.draft`` does (decoder scale, tile and size set before ``load``) with libjpeg's
    3/8 scaling added: measured on 4K -> 640x640, decode + resize 1.12x faster than at 1/2.
    """
    if len(image.tile) != 1 or getattr(image, "decoderconfig", ()):
        return
    width, height = image.size
    for denom, eighths in _DCT_SCALES:
        out_w, out_h = -(-width * eighths // 8), -(-height * eighths // 8)  # libjpeg rounds up
        if out_w >= want_w and out_h >= want_h:
            break
    else:
        return
    tile = image.tile[0]
    image.tile = [tile._replace(extents=(0, 0, out_w, out_h))]
    image._size = (out_w, out_h)
    image.decoderconfig = (denom, 0)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any mode to RGB; transparent pixels become white, as viewers show them."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit samples (Pillow opens 16-bit grey PNG/TIFF as I;16 or I): full scale is 65535, whatever this
        # image's own peak (scaling by the peak turned a uniformly dark image white)
        array = np.asarray(image, dtype=np.float64)
        gray = np.clip(np.rint(array / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    return image.convert("RGB")


def encode_jpeg(array: np.ndarray, *, quality: int = 85) -> bytes:
    """RGB uint8 array -> JPEG bytes (for ``annotate``)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
