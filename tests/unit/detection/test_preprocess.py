import numpy as np
import pytest

from detection.manifest import IMAGENET_MEAN, IMAGENET_STD, InputSpec, Preprocessing
from detection.preprocess import normalization, plan_geometry, preprocess, resize, resize_taps

torch = pytest.importorskip("torch", reason="torch is the reference for resize parity; it lives in .venv, not the Lambda")
F = torch.nn.functional

SIZES = [  # (in_h, in_w, out_h, out_w): down, up, mixed, identity, tiny, odd ratios
    (1080, 1920, 640, 640),
    (1080, 1920, 360, 640),
    (480, 640, 320, 427),
    (100, 50, 640, 320),
    (37, 91, 64, 64),
    (64, 64, 64, 64),
    (1, 1, 8, 8),
    (7, 5, 3, 2),
]


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return {size: rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8) for size in SIZES}


def _torch_resize(image, out_h, out_w, **kwargs):
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    return F.interpolate(tensor, size=(out_h, out_w), **kwargs)[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("antialias", [False, True])
def test_bilinear_matches_torch_within_1e5(images, size, antialias):
    image = images[size]
    expected = _torch_resize(image, size[2], size[3], mode="bilinear", align_corners=False, antialias=antialias)
    actual = resize(image, width=size[3], height=size[2], antialias=antialias)
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() / 255.0 <= 1e-5


@pytest.mark.parametrize("size", SIZES)
def test_nearest_matches_torch_exactly(images, size):
    image = images[size]
    expected = _torch_resize(image, size[2], size[3], mode="nearest")
    np.testing.assert_array_equal(resize(image, width=size[3], height=size[2], interpolation="nearest"), expected)


def test_full_preprocess_matches_torchvision_style_reference(images):
    image = images[(480, 640, 320, 427)]
    spec = Preprocessing(resize="letterbox", pad_position="bottom_right", mean=IMAGENET_MEAN, std=IMAGENET_STD)
    tensor, geometry = preprocess(image, spec=spec, input_spec=InputSpec("images", 320, 320))
    reference = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
    reference = F.interpolate(reference[None], size=(geometry.resized_height, geometry.resized_width),
                              mode="bilinear", align_corners=False)[0]
    reference = (reference - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    padded = torch.zeros(3, 320, 320)
    padded[:, : geometry.resized_height, : geometry.resized_width] = reference
    assert np.abs(tensor[0] - padded.numpy()).max() <= 1e-5 * 4.5  # 1e-5 of the 0..1 range, in std units


def test_dfine_style_stretch_matches_hf_reference(images):
    image = images[(1080, 1920, 640, 640)]
    spec = Preprocessing(resize="stretch", antialias=True, scale=1 / 255)
    tensor, geometry = preprocess(image, spec=spec, input_spec=InputSpec("pixel_values", 640, 640))
    reference = _torch_resize(image, 640, 640, mode="bilinear", align_corners=False, antialias=True) / 255.0
    assert np.abs(tensor[0].transpose(1, 2, 0) - reference).max() <= 1e-5
    assert (geometry.pad_x, geometry.pad_y) == (0, 0)


@pytest.mark.parametrize(
    "src, dst, mode, pad, expected",
    [
        ((1920, 1080), (640, 640), "letterbox", "center", (640, 360, 0, 140)),
        ((1920, 1080), (640, 640), "letterbox", "bottom_right", (640, 360, 0, 0)),
        ((1080, 1920), (640, 640), "letterbox", "center", (360, 640, 140, 0)),
        ((100, 100), (640, 480), "letterbox", "center", (480, 480, 80, 0)),
        ((1920, 1080), (640, 640), "stretch", "center", (640, 640, 0, 0)),
        ((1, 1000), (64, 64), "letterbox", "center", (1, 64, 31, 0)),
    ],
)
def test_plan_geometry(src, dst, mode, pad, expected):
    g = plan_geometry(source_width=src[0], source_height=src[1], input_width=dst[0], input_height=dst[1],
                      resize=mode, pad_position=pad)
    assert (g.resized_width, g.resized_height, g.pad_x, g.pad_y) == expected


def test_plan_geometry_rejects_empty_images():
    with pytest.raises(ValueError, match="empty image"):
        plan_geometry(source_width=0, source_height=10, input_width=8, input_height=8,
                      resize="stretch", pad_position="center")


def test_padding_value_and_bgr_order():
    image = np.zeros((10, 20, 3), np.uint8)
    image[..., 0] = 255  # pure red
    spec = Preprocessing(resize="letterbox", pad_position="center", pad_value=-7.0, scale=1 / 255,
                         channel_order="BGR")
    tensor, geometry = preprocess(image, spec=spec, input_spec=InputSpec("x", 20, 20))
    assert geometry.pad_y == 5
    assert (tensor[0, :, :5] == -7.0).all() and (tensor[0, :, 15:] == -7.0).all()
    np.testing.assert_allclose(tensor[0, :, 5:15], np.array([0.0, 0.0, 1.0])[:, None, None] * np.ones((3, 10, 20)))


@pytest.mark.parametrize("in_size, out_size", [(10, 3), (3, 10), (640, 640), (1, 5)])
@pytest.mark.parametrize("antialias", [False, True])
def test_resize_taps_are_normalized(in_size, out_size, antialias):
    index, weight = resize_taps(in_size, out_size, "bilinear", antialias)
    assert index.min() >= 0 and index.max() < in_size
    np.testing.assert_allclose(weight.sum(axis=1), 1.0, rtol=1e-6)


def test_normalization_without_mean_is_plain_scaling():
    gain, bias = normalization(Preprocessing(scale=0.5))
    np.testing.assert_array_equal(gain, [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(bias, [0, 0, 0])


def test_preprocess_rejects_non_rgb():
    with pytest.raises(ValueError, match="RGB"):
        preprocess(np.zeros((4, 4), np.uint8), spec=Preprocessing(), input_spec=InputSpec("x", 4, 4))
