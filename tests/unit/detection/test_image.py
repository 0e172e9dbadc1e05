import io

import numpy as np
import pytest
from PIL import Image

from detection.errors import PayloadTooLarge, UnsupportedMediaType
from detection.image import decode_image, encode_jpeg
from tests.support.known_answer import square_image


def _encode(image, fmt="PNG", **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "mode, fmt",
    [("RGB", "JPEG"), ("L", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("CMYK", "JPEG"), ("I;16", "PNG"),
     ("1", "BMP"), ("LA", "PNG"), ("RGB", "WEBP"), ("RGB", "TIFF"), ("P", "GIF")],
)
def test_any_mode_becomes_rgb(mode, fmt):
    decoded = decode_image(_encode(Image.new(mode, (33, 21)), fmt))
    assert decoded.array.shape == (21, 33, 3) and decoded.array.dtype == np.uint8
    assert (decoded.original_width, decoded.original_height) == (33, 21)


def test_transparent_pixels_become_white():
    decoded = decode_image(_encode(Image.new("RGBA", (4, 4), (255, 0, 0, 0))))
    assert (decoded.array == 255).all()


@pytest.mark.parametrize(
    "orientation, size, white_at",
    [(1, (60, 40), (5, 5)), (3, (60, 40), (49, 34)), (6, (40, 60), (34, 10)), (8, (40, 60), (5, 49))],
)
def test_exif_orientation_is_applied(orientation, size, white_at):
    data = square_image(width=60, height=40, box=(0, 0, 20, 10), fmt="JPEG", exif_orientation=orientation)
    decoded = decode_image(data)
    assert (decoded.original_width, decoded.original_height) == size
    assert decoded.array.shape[:2] == (size[1], size[0])
    assert decoded.array[white_at[1], white_at[0]].min() > 200
    assert decoded.array.sum(axis=2).mean() < 0.2 * 255 * 3  # only the small block is white


def test_draft_reduces_big_jpegs_but_reports_original_size():
    data = square_image(width=1920, height=1080, box=(100, 100, 500, 500))
    full = decode_image(data)
    reduced = decode_image(data, draft_size=(640, 640), keep_aspect=True)
    assert full.array.shape == (1080, 1920, 3)
    assert reduced.array.shape == (405, 720, 3) and reduced.reduced  # 3/8: covers the 640x360 box
    assert (reduced.original_width, reduced.original_height) == (1920, 1080)
    stretched = decode_image(data, draft_size=(640, 640))  # must stay >= 640 high: no reduction possible
    assert stretched.array.shape == (1080, 1920, 3)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty image"),
        (b"hello world, not an image", "not a supported image"),
        (b"%PDF-1.4 fake", "not a supported image"),
    ],
)
def test_not_an_image_is_415(data, message):
    with pytest.raises(UnsupportedMediaType, match=message):
        decode_image(data)


def test_truncated_jpeg_is_415():
    data = square_image(width=200, height=200, box=(10, 10, 50, 50))
    with pytest.raises(UnsupportedMediaType, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2])


@pytest.mark.parametrize("size, draft_size, keep_aspect, expected", [
    ((3840, 2160), (640, 640), False, (810, 1440)),    # 3/8: the smallest DCT scaling >= 640 high
    ((3840, 2160), (640, 640), True, (540, 960)),      # 1/4 covers the 640x360 letterbox box
    ((1920, 1080), (384, 384), False, (405, 720)),     # 3/8
    ((1920, 1080), (384, 384), True, (270, 480)),      # 1/4
    ((1920, 1080), (640, 640), False, (1080, 1920)),   # nothing smaller stays 640 high
    ((1000, 1000), (100, 100), False, (125, 125)),     # 1/8
])
def test_dct_scaling_is_the_smallest_that_covers_the_model_input(size, draft_size, keep_aspect, expected):
    data = square_image(width=size[0], height=size[1], box=(100, 100, 500, 500))
    decoded = decode_image(data, draft_size=draft_size, keep_aspect=keep_aspect)
    assert decoded.array.shape == (*expected, 3)
    assert (decoded.original_width, decoded.original_height) == size


def test_dct_scaled_pixels_match_a_full_decode_reduced_afterwards():
    rng = np.random.default_rng(0)
    smooth = Image.fromarray(rng.integers(0, 256, (27, 48, 3), dtype=np.uint8)).resize((1920, 1080), Image.BICUBIC)
    data = _encode(smooth, "JPEG", quality=95)
    scaled = decode_image(data, draft_size=(384, 384)).array.astype(np.float64)  # 3/8 -> 720x405
    full = Image.open(io.BytesIO(data)).convert("RGB")
    reference = np.asarray(full.resize((720, 405), Image.BOX), dtype=np.float64)
    assert scaled.shape == reference.shape
    assert np.abs(scaled - reference).mean() < 1.5


def test_decompression_bomb_is_413_before_decoding():
    # a 20000x20000 PNG compresses to a few hundred KB; refuse it from the header alone
    bomb = _encode(Image.new("L", (20000, 20000)), "PNG")
    assert len(bomb) < 2_000_000
    with pytest.raises(PayloadTooLarge, match="pixels"):
        decode_image(bomb)
    with pytest.raises(PayloadTooLarge, match="the limit is 1000"):
        decode_image(square_image(width=100, height=100, box=(0, 0, 1, 1)), max_pixels=1000)


def test_encode_jpeg_round_trips():
    array = np.full((8, 8, 3), 128, np.uint8)
    assert decode_image(encode_jpeg(array)).array.shape == (8, 8, 3)
