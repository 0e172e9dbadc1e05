"""Provider choice, the tensor wire format's checks and rounding, and the packaging targets."""

from __future__ import annotations

import numpy as np
import pytest

from detection.manifest import IMAGENET_MEAN, IMAGENET_STD, parse_manifest
from detection.errors import BadRequest
from detection.preprocess import preprocess
from detection.remote import check_model_image, decode_outputs, encode_outputs, resize_for_model
from sagemaker_entry.inference import choose_providers
from lambda_build.sagemaker import TARGETS, requirements_text
from tests.unit.infra.cfn_view import NESTED_TEMPLATES, load_template

CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"


def names(providers):
    return [p if isinstance(p, str) else p[0] for p in providers]


@pytest.mark.parametrize(
    ("available", "requested", "expected"),
    [
        ([CPU], None, [CPU]),
        ([CUDA, CPU], None, [CUDA, CPU]),
        ([TRT, CUDA, CPU], None, [TRT, CUDA, CPU]),
        ([TRT, CUDA, CPU], "cuda", [CUDA, CPU]),
        ([TRT, CUDA, CPU], "cpu", [CPU]),
        ([TRT, CUDA, CPU], " TensorRT , cuda ", [TRT, CUDA, CPU]),
        ([CPU], "", [CPU]),
    ],
)
def test_choose_providers(available, requested, expected):
    chosen = choose_providers(available, requested=requested)
    assert names(chosen) == expected
    for provider in chosen:
        if not isinstance(provider, str):
            assert provider[1]["trt_fp16_enable"] and provider[1]["trt_engine_cache_enable"]


@pytest.mark.parametrize(("available", "requested", "fragment"),
                         [([CPU], "cuda", "asks for"), ([CPU], "rocm", "unknown provider")])
def test_choose_providers_refuses_what_it_cannot_give(available, requested, fragment):
    with pytest.raises(ValueError, match=fragment):
        choose_providers(available, requested=requested)


def manifest(resize="letterbox", pad_position="center", antialias=False, mean=True):
    return parse_manifest({
        "format_version": 1, "name": "m", "input": {"name": "images", "height": 96, "width": 128},
        "preprocessing": {"resize": resize, "pad_position": pad_position, "antialias": antialias,
                          "mean": list(IMAGENET_MEAN) if mean else None, "std": list(IMAGENET_STD) if mean else None},
        "output": {"format": "detr", "logits": "logits", "boxes": "pred_boxes"},
    })


@pytest.mark.parametrize("resize", ["letterbox", "stretch"])
@pytest.mark.parametrize("antialias", [False, True])
@pytest.mark.parametrize("size", [(37, 23), (640, 480), (96, 128), (1, 1)])
def test_rounded_resize_matches_the_lambda_tensor_within_half_a_level(resize, antialias, size):
    m = manifest(resize=resize, antialias=antialias)
    image = np.random.default_rng(size[0]).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    expected, geometry = preprocess(image, spec=m.preprocessing, input_spec=m.input)
    small, remote_geometry = resize_for_model(image, manifest=m)
    assert remote_geometry == geometry
    check_model_image(small, manifest=m)
    got, _ = preprocess(small, spec=m.preprocessing, input_spec=m.input)
    level = 1 / 255 / min(IMAGENET_STD)  # one uint8 step in the normalized tensor
    assert np.abs(got - expected).max() <= 0.5 * level + 1e-5


@pytest.mark.parametrize(
    ("shape", "dtype", "fragment"),
    [
        ((96, 128, 3), np.float32, "uint8"),
        ((96, 128), np.uint8, "uint8"),
        ((0, 128, 3), np.uint8, "at most"),
        ((97, 128, 3), np.uint8, "at most"),
        ((50, 50, 3), np.uint8, "not already resized"),
    ],
)
def test_check_model_image_refuses(shape, dtype, fragment):
    with pytest.raises(BadRequest, match=fragment):
        check_model_image(np.zeros(shape, dtype), manifest=manifest())


def test_outputs_round_trip_with_the_model_hash():
    outputs = {"logits": np.arange(6, dtype=np.float32).reshape(1, 2, 3), "labels": np.array([1, 2], np.int64)}
    got, sha = decode_outputs(encode_outputs(outputs, model_sha256="f" * 64))
    assert sha == "f" * 64 and set(got) == set(outputs)
    assert all(np.array_equal(got[k], v) and got[k].dtype == v.dtype for k, v in outputs.items())
    assert decode_outputs(encode_outputs({}, model_sha256=None)) == ({}, "")


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_targets_match_the_nested_templates_images(target):
    parameters = load_template(NESTED_TEMPLATES[target])["Parameters"]
    spec = TARGETS[target]
    assert parameters["ImageRepository"]["Default"] == spec.image_repository
    assert parameters["ImageTag"]["Default"] == spec.image_tag
    assert f"py{spec.python.replace('.', '')}" in spec.image_tag  # requirements pinned for the image's Python
    assert requirements_text(spec, vendored=False).splitlines()[1:] == list(spec.requirements)
