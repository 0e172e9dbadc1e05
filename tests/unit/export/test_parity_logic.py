"""Matching and thresholds of the parity gate, and the torch reference against the Lambda's NumPy code."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from detection.image import decode_image
from detection.manifest import InputSpec, parse_manifest
from detection.pipeline import Detector
from detection.preprocess import preprocess
from export.parity import Tolerances, batch_check, iou, match_detections, onnx_detections, pick_threshold
from export.reference import reference_preprocess
from tests.support.known_answer import build_known_answer_bundle, square_image


@dataclass
class Det:
    class_id: int
    score: float
    box: tuple


@pytest.mark.parametrize("a, b, expected", [
    ((0, 0, 10, 10), (0, 0, 10, 10), 1.0), ((0, 0, 10, 10), (10, 10, 20, 20), 0.0),
    ((0, 0, 10, 10), (0, 0, 10, 5), 0.5), ((0, 0, 0, 0), (0, 0, 0, 0), 0.0),
])
def test_iou(a, b, expected):
    assert iou(a, b) == pytest.approx(expected)


@pytest.mark.parametrize("scores, base, expected", [
    ([], 0.5, 0.5),
    ([0.9] * 12, 0.5, 0.5),                        # enough confident detections: the manifest's threshold
    ([0.9, 0.8, 0.3, 0.29], 0.95, 0.55),           # widest gap after the 2nd
    ([0.4, 0.3], 0.5, 0.3),                        # fewer than wanted: keep them all
])
def test_pick_threshold(scores, base, expected):
    assert pick_threshold(scores, base=base, min_detections=2) == pytest.approx(expected)


A = Det(1, 0.80, (10, 10, 50, 50))
B = Det(2, 0.60, (60, 60, 90, 90))
TOL = Tolerances()


@pytest.mark.parametrize("reference, candidate, passed, problems", [
    ([], [], True, 0),
    ([A, B], [B, A], True, 0),                                                  # order does not matter
    ([A], [Det(1, 0.80005, (10, 10, 50, 50.1))], True, 0),                      # within tolerance
    ([A], [Det(1, 0.8003, (10, 10, 50, 50))], False, 1),                        # score off by 3e-4
    ([A], [Det(1, 0.80, (10, 10, 50, 52))], False, 2),                          # IoU 0.95: both sides unmatched
    ([A], [Det(2, 0.80, (10, 10, 50, 50))], False, 2),                          # other class: both unmatched
    ([A, B], [A], False, 1),                                                    # ONNX lost one
    ([A], [A, B], False, 1),                                                    # ONNX invented one
    ([A, Det(2, 0.30002, (1, 1, 5, 5))], [A], True, 0),                         # at the threshold: borderline
])
def test_match_detections(reference, candidate, passed, problems):
    verdict = match_detections(reference, candidate, threshold=0.3, tolerances=TOL)
    assert verdict["passed"] is passed
    assert verdict["problem_count"] == problems


def test_match_counts_borderline():
    verdict = match_detections([A, Det(2, 0.30002, (1, 1, 5, 5))], [A], threshold=0.3, tolerances=TOL)
    assert (verdict["matched"], verdict["borderline"]) == (1, 1)


PRESETS = {
    "dfine": {"resize": "stretch", "antialias": True, "scale": 1 / 255},
    "retinanet": {"resize": "letterbox", "antialias": False, "pad_position": "bottom_right",
                  "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    "icevision": {"resize": "letterbox", "antialias": False, "pad_position": "center",
                  "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    "nearest-bgr": {"resize": "letterbox", "interpolation": "nearest", "channel_order": "BGR", "pad_value": 0.5},
}


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("shape", [(120, 160), (300, 100), (64, 64), (700, 900)])
def test_reference_agrees_with_lambda_numpy(preset, shape):
    """Two independent implementations of the manifest semantics (torch here, NumPy in the Lambda)."""
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    manifest = parse_manifest({"format_version": 1, "name": "t", "input": {"name": "x", "height": 96, "width": 128},
                               "preprocessing": PRESETS[preset],
                               "output": {"format": "detr", "logits": "l", "boxes": "b"}})
    expected, geometry = preprocess(image, spec=manifest.preprocessing, input_spec=InputSpec("x", 96, 128))
    actual, reference_geometry = reference_preprocess(image, preprocessing=PRESETS[preset], height=96, width=128)
    assert (reference_geometry.pad_x, reference_geometry.pad_y) == (geometry.pad_x, geometry.pad_y)
    assert (reference_geometry.resized_width, reference_geometry.resized_height) == (
        geometry.resized_width, geometry.resized_height)
    assert np.abs(actual.numpy() - expected).max() < 1e-4


# Two same-class boxes overlapping at exactly IoU 0.5: NMS at 0.5 may keep or drop the weaker one.
HIGH = Det(3, 0.54, (0, 0, 100, 20))
AT_NMS = Det(3, 0.52, (0, 0, 100, 20 * 2 / 3 + 1e-6))     # IoU 0.6667 -> not at the threshold
HALF = Det(3, 0.52, (0, 0, 100, 10))                      # IoU exactly 0.5 with HIGH
CASCADE = Det(3, 0.51, (0, 2, 100, 11))                   # suppressed by HALF (IoU 0.8), not by HIGH (0.45)


@pytest.mark.parametrize("reference, candidate, nms_iou, passed", [
    ([HIGH, HALF], [HIGH], 0.5, True),                    # NMS flip at the threshold: borderline
    ([HIGH, HALF], [HIGH], None, False),                  # no NMS in the graph: a real difference
    ([HIGH, AT_NMS], [HIGH], 0.5, False),                 # clear overlap, not at the threshold
    ([HIGH, HALF], [HIGH, CASCADE], 0.5, True),           # the flip's survivor suppressed another box
    ([HIGH], [HIGH, CASCADE], 0.5, False),                # ... but not without the flip
])
def test_nms_borderline(reference, candidate, nms_iou, passed):
    verdict = match_detections(reference, candidate, threshold=0.3, tolerances=TOL, nms_iou=nms_iou)
    assert verdict["passed"] is passed, verdict


@pytest.mark.parametrize("batch, passed", [("none", None), ("axis", True), ("mixing", False)])
def test_batch_check_compares_one_run_with_one_by_one(tmp_path, batch, passed):
    bundle = build_known_answer_bundle(tmp_path / "bundle", output_format="detr", batch=batch, resize="stretch")
    detector = Detector(bundle, threads=1)
    singles = []
    for box in [(10, 10, 40, 30), (60, 20, 120, 90)]:
        array = decode_image(square_image(width=160, height=120, box=box)).array
        singles.append((array, 0.5, onnx_detections(detector, array, threshold=0.5)))
    report = batch_check(detector, singles, tolerances=Tolerances(), nms_iou=None)
    if passed is None:
        assert report is None  # a graph without a batch axis is served one by one: nothing to check
    else:
        assert report["images"] == 3 and report["passed"] is passed  # two images and the first again
        assert bool(report["problems"]) is not passed
    assert batch_check(detector, singles[:1], tolerances=Tolerances(), nms_iou=None) is None
