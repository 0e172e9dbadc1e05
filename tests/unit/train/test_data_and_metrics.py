"""Training samples are the served tensors; augmentations keep boxes on their objects; COCO metrics; demo data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from detection.manifest import parse_manifest
from detection.preprocess import normalization, preprocess
from train.data import (AugmentConfig, DetectionSamples, augment, jitter_colours, letterbox_sample,
                        make_target)
from train.datasets import ImageRecord, ObjectBox, load_voc
from train.demo_data import CLASSES, generate_dataset
from train.metrics import coco_metrics, format_table
from zoo import preprocessing_for
from train.predict import serving_manifest


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    generate_dataset(root, num_images=6, seed=5, min_size=96, max_size=160)
    return root


def test_demo_data_is_deterministic_and_parseable(demo_root, tmp_path):
    again = generate_dataset(tmp_path, num_images=6, seed=5, min_size=96, max_size=160)
    for name in ("scene_00003.jpg",):
        assert (demo_root / "images" / name).read_bytes() == (tmp_path / "images" / name).read_bytes()
    dataset = load_voc(demo_root, classes=list(CLASSES))
    assert len(dataset.records) == 6 and sum(again["objects"].values()) == sum(dataset.class_counts().values())
    assert dataset.report.dropped == 0


@pytest.mark.parametrize("seed", range(3))
def test_demo_scenes_overlap_but_never_hide_more_than_half_of_a_labelled_object(seed):
    """Boxes are in paint order: what later boxes cover of an earlier one is at most MAX_HIDDEN of it."""
    from train.demo_data import MAX_HIDDEN, MAX_IOU, render_scene

    overlapping = 0
    for index in range(40):
        _, objects = render_scene(np.random.default_rng([seed, index]), width=200, height=160)
        for i, (_, (x1, y1, x2, y2)) in enumerate(objects):
            covered = np.zeros((y2 - y1, x2 - x1), bool)
            for _, (a1, b1, a2, b2) in objects[i + 1:]:
                covered[max(b1 - y1, 0):max(b2 - y1, 0), max(a1 - x1, 0):max(a2 - x1, 0)] = True
            assert covered.mean() <= MAX_HIDDEN
            overlapping += bool(covered.any())
        for i, (_, a) in enumerate(objects):
            for _, b in objects[i + 1:]:
                ix = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
                union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix
                assert ix / union <= MAX_IOU
    assert overlapping > 0  # occlusion still happens


def test_parallel_generation_writes_the_same_files(tmp_path):
    serial = generate_dataset(tmp_path / "one", num_images=64, seed=3, min_size=48, max_size=72, workers=1)
    parallel = generate_dataset(tmp_path / "two", num_images=64, seed=3, min_size=48, max_size=72, workers=2)
    assert serial["objects"] == parallel["objects"]
    for folder in ("images", "annotations"):
        names = sorted(p.name for p in (tmp_path / "one" / folder).iterdir())
        assert len(names) == 64 and names == sorted(p.name for p in (tmp_path / "two" / folder).iterdir())
        assert all((tmp_path / "one" / folder / n).read_bytes() == (tmp_path / "two" / folder / n).read_bytes()
                   for n in names)


@pytest.mark.parametrize("arch", ["retinanet_resnet18_fpn", "dfine-n"])
def test_training_tensor_is_exactly_the_served_tensor(demo_root, arch):
    """Without augmentation, a sample is bit-identical to what the Lambda feeds the bundle."""
    dataset = load_voc(demo_root)
    samples = DetectionSamples(dataset.records, classes=dataset.classes, family="retinanet" if "retina" in arch
                               else "dfine", preprocessing=preprocessing_for(arch), input_size=(96, 128), train=False)
    tensor, target, _ = samples[2]
    manifest = serving_manifest(arch=arch, input_size=(96, 128))
    from PIL import Image

    image = np.asarray(Image.open(dataset.records[2].path).convert("RGB"))
    served, _ = preprocess(image, spec=manifest.preprocessing, input_spec=manifest.input)
    assert torch.equal(tensor, torch.from_numpy(served[0]))


def test_letterbox_maps_boxes_like_geometry():
    manifest = serving_manifest(arch="retinanet_resnet18_fpn", input_size=(64, 64))
    image = np.zeros((50, 100, 3), np.uint8)
    _, boxes = letterbox_sample(image, np.array([[10, 5, 60, 45]]), spec=manifest.preprocessing,
                                input_spec=manifest.input)
    # scale 64/100 = 0.64, image placed at the top-left (bottom/right padding)
    assert np.allclose(boxes, [[6.4, 3.2, 38.4, 28.8]], atol=1e-5)


def test_dfine_targets_are_normalized_cxcywh():
    target = make_target(np.array([[0, 0, 50, 20]]), np.array([2]), family="dfine", input_size=(100, 200))
    assert target["class_labels"].tolist() == [2]
    assert torch.allclose(target["boxes"], torch.tensor([[0.125, 0.1, 0.25, 0.2]]))


def _paint(image, box, value):
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    image[y1:y2, x1:x2] = value


@pytest.mark.parametrize("seed", range(6))
def test_augment_keeps_boxes_on_their_objects(seed):
    """Paint an object, augment, and check the box still frames the painted pixels."""
    image = np.full((120, 160, 3), 30, np.uint8)
    box = (40.0, 30.0, 100.0, 90.0)
    _paint(image, box, 250)
    config = AugmentConfig(flip=0.5, crop=1.0, min_crop=0.7, brightness=0, contrast=0, saturation=0)
    out, boxes, labels = augment(image, np.array([box]), np.array([1]), rng=np.random.default_rng(seed),
                                 config=config)
    bright = np.argwhere(out[..., 0] > 128)
    if len(boxes) == 0:  # cropped away (< 40 % visible)
        assert bright.size == 0 or len(bright) < 0.4 * 60 * 60
        return
    (y1, x1), (y2, x2) = bright.min(axis=0), bright.max(axis=0) + 1
    assert labels.tolist() == [1]
    assert np.allclose(boxes[0], [x1, y1, x2, y2], atol=1.0)


def test_augment_with_no_objects():
    out, boxes, labels = augment(np.zeros((20, 30, 3), np.uint8), np.zeros((0, 4)), np.zeros(0, np.int64),
                                 rng=np.random.default_rng(0))
    assert boxes.shape == (0, 4) and labels.shape == (0,) and out.dtype == np.uint8


@pytest.mark.parametrize("arch", ["retinanet_resnet18_fpn", "dfine-n"])
@pytest.mark.parametrize("seed", range(3))
def test_colour_jitter_on_the_tensor_equals_jitter_on_the_photo(arch, seed):
    """Brightness and saturation are affine per pixel, so jittering the served tensor is jittering the photo
    before the resize (up to the photo's uint8 rounding), and the jittered pixels stay within 0..255."""
    manifest = serving_manifest(arch=arch, input_size=(48, 64))
    spec, input_spec = manifest.preprocessing, manifest.input
    rng = np.random.default_rng(seed)
    photo = rng.integers(60, 190, (90, 120, 3)).astype(np.uint8)  # no value can clip at +-25 %
    config = AugmentConfig(brightness=0.25, contrast=0, saturation=0.25)
    gain, bias = normalization(spec)

    tensor, geometry = preprocess(photo, spec=spec, input_spec=input_spec)
    region = tensor[0, :, :geometry.resized_height, :geometry.resized_width]
    jitter_colours(region, rng=np.random.default_rng(seed), gain=gain, bias=bias, config=config)

    draw = np.random.default_rng(seed)
    pixels = photo.astype(np.float32) * draw.uniform(0.75, 1.25)
    grey = pixels.mean(axis=2, keepdims=True)
    pixels = (pixels - grey) * draw.uniform(0.75, 1.25) + grey
    expected, _ = preprocess(np.round(pixels).astype(np.uint8), spec=spec, input_spec=input_spec)
    assert np.abs((tensor - expected) / gain[None, :, None, None]).max() <= 0.6  # within a rounding step


def test_colour_jitter_leaves_the_padding_and_respects_a_zero_config():
    manifest = serving_manifest(arch="retinanet_resnet18_fpn", input_size=(64, 64))
    gain, bias = normalization(manifest.preprocessing)
    tensor, geometry = preprocess(np.full((32, 64, 3), 255, np.uint8), spec=manifest.preprocessing,
                                  input_spec=manifest.input)
    before = tensor.copy()
    region = tensor[0, :, :geometry.resized_height, :geometry.resized_width]
    jitter_colours(region, rng=np.random.default_rng(0), gain=gain, bias=bias,
                   config=AugmentConfig(brightness=0, contrast=0, saturation=0))
    assert np.array_equal(tensor, before)
    jitter_colours(region, rng=np.random.default_rng(0), gain=gain, bias=bias, config=AugmentConfig())
    assert np.array_equal(tensor[:, :, geometry.resized_height:], before[:, :, geometry.resized_height:])
    pixels = (region - bias[:, None, None]) / gain[:, None, None]
    assert pixels.min() >= -1e-3 and pixels.max() <= 255 + 1e-3  # white photo brightened: clipped to 255
    jitter_colours(region[:, :0], rng=np.random.default_rng(0), gain=gain, bias=bias)  # empty region: no-op


def test_serving_manifest_passes_the_lambda_validator():
    for arch in ("retinanet_resnet50_fpn", "retinanet_mobilenet_v3_fpn", "dfine-n"):
        manifest = serving_manifest(arch=arch, input_size=(320, 320))
        assert parse_manifest(manifest.to_dict()) == manifest


# ---------------------------------------------------------------- metrics


RECORDS = [
    ImageRecord(1, Path("a.jpg"), 200, 200, (ObjectBox("cat", (10, 10, 110, 110)), ObjectBox("dog", (120, 120, 190, 190)))),
    ImageRecord(2, Path("b.jpg"), 200, 200, (ObjectBox("cat", (50, 50, 150, 150)),)),
    ImageRecord(3, Path("c.jpg"), 200, 200, ()),
]


def test_perfect_detections_score_one():
    dets = {r.image_id: [{"label": o.label, "score": 0.9, "box": list(o.box)} for o in r.objects] for r in RECORDS}
    report = coco_metrics(RECORDS, ["cat", "dog"], dets)
    assert report["AP"] == pytest.approx(1.0) and report["AP50"] == pytest.approx(1.0)
    assert report["AR100"] == pytest.approx(1.0)
    assert report["AP_small"] == -1.0  # no small objects to measure
    assert report["per_class"]["dog"]["AP"] == pytest.approx(1.0)


def test_wrong_label_and_shifted_box_lower_the_score():
    dets = {1: [{"label": "dog", "score": 0.9, "box": [10, 10, 110, 110]},          # wrong class
                {"label": "dog", "score": 0.8, "box": [120, 120, 190, 190]}],
            2: [{"label": "cat", "score": 0.9, "box": [80, 80, 180, 180]}],          # IoU ~0.32
            3: [{"label": "unknown-class", "score": 0.99, "box": [0, 0, 10, 10]}]}  # ignored by name
    report = coco_metrics(RECORDS, ["cat", "dog"], dets)
    assert report["per_class"]["cat"]["AP50"] == pytest.approx(0.0)
    assert report["per_class"]["dog"]["AP50"] == pytest.approx(0.5, abs=0.01)
    assert 0 < report["AP50"] < 0.5
    assert "cat" in format_table(report)


@pytest.mark.parametrize("dets", [{}, {1: []}])
def test_no_detections_is_zero_not_an_error(dets):
    report = coco_metrics(RECORDS, ["cat", "dog"], dets)
    assert report["AP"] == 0.0 and report["per_class"]["cat"]["AP50"] == 0.0
