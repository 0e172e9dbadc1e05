import numpy as np
import pytest

from detection.manifest import parse_manifest
from detection.postprocess import boxes_to_original, decode_boxes_scores_labels, decode_detr, postprocess
from detection.preprocess import plan_geometry

CLASS_MAP = {0: "background", 1: "cat", 2: "dog"}


def _manifest(**overrides):
    data = {
        "format_version": 1, "name": "t",
        "input": {"name": "images", "height": 100, "width": 100},
        "preprocessing": {"resize": "letterbox", "pad_position": "center"},
        "output": {"format": "boxes_scores_labels", "boxes": "b", "scores": "s", "labels": "l"},
        "labels": {"offset": 0, "background_id": 0},
        "score_threshold": 0.5, "max_detections": 10,
    }
    data.update(overrides)
    return parse_manifest(data)


GEOMETRY = plan_geometry(source_width=200, source_height=100, input_width=100, input_height=100,
                         resize="letterbox", pad_position="center")  # scale 0.5, pad_y 25


@pytest.mark.parametrize(
    "boxes, expected",
    [
        ([[0, 25, 50, 75]], [[0, 0, 100, 100]]),
        ([[10, 30, 20, 40]], [[20, 10, 40, 30]]),
        ([[-5, 0, 120, 110]], [[0, 0, 200, 100]]),  # clipped to the image
        (np.zeros((0, 4)), np.zeros((0, 4))),
    ],
)
def test_boxes_to_original_undoes_each_axis(boxes, expected):
    np.testing.assert_allclose(boxes_to_original(np.asarray(boxes, np.float32), geometry=GEOMETRY), expected)


def test_boxes_to_original_with_decoder_reduction():
    # a 4000x2000 photo decoded at 1/4 (1000x500), letterboxed to 100x100 -> scale 0.1 from the decoded image
    g = plan_geometry(source_width=1000, source_height=500, input_width=100, input_height=100,
                      resize="letterbox", pad_position="bottom_right", original_width=4000, original_height=2000)
    np.testing.assert_allclose(boxes_to_original(np.array([[10, 10, 20, 30]], np.float32), geometry=g),
                               [[400, 400, 800, 1200]])


def _outputs(boxes, scores, labels, batched=False):
    b, s, l = np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32), np.asarray(labels, np.int64)
    return {"b": b[None] if batched else b, "s": s[None] if batched else s, "l": l[None] if batched else l}


@pytest.mark.parametrize("batched", [False, True])
def test_threshold_background_sort_and_limit(batched):
    outputs = _outputs([[0, 25, 10, 35], [10, 30, 20, 40], [0, 25, 50, 75], [1, 26, 2, 27]],
                       [0.6, 0.9, 0.95, 0.4], [1, 2, 0, 1], batched)
    detections = postprocess(outputs, manifest=_manifest(), geometry=GEOMETRY, class_map=CLASS_MAP)
    assert [(d.label, d.class_id, round(d.score, 2)) for d in detections] == [("dog", 2, 0.9), ("cat", 1, 0.6)]
    assert detections[0].box == (20.0, 10.0, 40.0, 30.0)
    limited = postprocess(outputs, manifest=_manifest(), geometry=GEOMETRY, class_map=CLASS_MAP, max_detections=1)
    assert [d.label for d in limited] == ["dog"]
    lower = postprocess(outputs, manifest=_manifest(), geometry=GEOMETRY, class_map=CLASS_MAP, score_threshold=0.3)
    assert [d.label for d in lower] == ["dog", "cat", "cat"]


def test_class_filter_and_offset_and_unknown_ids():
    outputs = _outputs([[0, 25, 10, 35], [10, 30, 20, 40]], [0.9, 0.8], [1, 5])
    manifest = _manifest(labels={"offset": 1, "background_id": None})
    detections = postprocess(outputs, manifest=manifest, geometry=GEOMETRY, class_map=CLASS_MAP)
    assert [(d.label, d.class_id) for d in detections] == [("dog", 2), ("class_6", 6)]
    only = postprocess(outputs, manifest=manifest, geometry=GEOMETRY, class_map=CLASS_MAP, classes=["dog"])
    assert [d.label for d in only] == ["dog"]


def test_degenerate_and_empty_outputs():
    outputs = _outputs([[0, 10, 0, 20], [5, 0, 9, 10]], [0.9, 0.9], [1, 1])  # zero width; entirely in padding
    assert postprocess(outputs, manifest=_manifest(), geometry=GEOMETRY, class_map=CLASS_MAP) == []
    empty = _outputs(np.zeros((0, 4)), [], [])
    assert postprocess(empty, manifest=_manifest(), geometry=GEOMETRY, class_map=CLASS_MAP) == []


def test_decode_boxes_scores_labels_shapes():
    b, s, l = decode_boxes_scores_labels(np.zeros((1, 3, 4)), np.zeros((1, 3)), np.zeros((1, 3), np.int32))
    assert b.shape == (3, 4) and s.shape == (3,) and l.dtype == np.int64


def test_decode_detr_top_k_over_queries_and_classes():
    logits = np.full((1, 3, 2), -10.0, np.float32)
    logits[0, 0, 1] = 3.0  # query 0 class 1
    logits[0, 2, 0] = 2.0  # query 2 class 0
    logits[0, 2, 1] = 1.0  # query 2 class 1: same box, another class
    boxes = np.array([[[0.5, 0.5, 0.2, 0.4], [0.1, 0.1, 0.1, 0.1], [0.25, 0.75, 0.5, 0.5]]], np.float32)
    b, s, l = decode_detr(logits, boxes, top_k=3, input_width=200, input_height=100)
    assert l.tolist() == [1, 0, 1]
    np.testing.assert_allclose(s, 1 / (1 + np.exp(-np.array([3.0, 2.0, 1.0]))), rtol=1e-6)
    np.testing.assert_allclose(b[0], [80, 30, 120, 70])
    np.testing.assert_allclose(b[1], [0, 50, 100, 100])
    b, s, l = decode_detr(logits, boxes, top_k=10, input_width=200, input_height=100, min_score=0.8)
    assert l.tolist() == [1, 0]


def test_decode_detr_extreme_logits_do_not_overflow():
    logits = np.array([[[1e4, -1e4]]], np.float32)
    _, s, _ = decode_detr(logits, np.array([[[0.5, 0.5, 1, 1]]], np.float32), top_k=2, input_width=1, input_height=1)
    assert s.tolist() == [1.0, 0.0]


def test_detr_manifest_end_to_end():
    manifest = _manifest(output={"format": "detr", "logits": "lg", "boxes": "bx", "top_k": 5},
                         labels={"offset": 0, "background_id": None})
    logits = np.array([[[-5.0, 5.0, -5.0]]], np.float32)
    boxes = np.array([[[0.25, 0.5, 0.5, 0.5]]], np.float32)  # input px: (0, 25)-(50, 75)
    (det,) = postprocess({"lg": logits, "bx": boxes}, manifest=manifest, geometry=GEOMETRY, class_map=CLASS_MAP)
    assert det.label == "cat" and det.box == (0.0, 0.0, 100.0, 100.0)
