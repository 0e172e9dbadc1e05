"""Several images per model run (``Detector.detect_many``, ``session.takes_batches``) with real ONNX graphs:
the known-answer detector with a batch axis, and one whose batch axis mixes images (only a shared run shows it)."""

from __future__ import annotations

import pytest

from detection.errors import DetectionError, InternalError
from detection.pipeline import Detector
from detection.session import takes_batches
from tests.support.known_answer import build_known_answer_bundle, square_image

BOXES = [(10, 10, 40, 30), (60, 20, 120, 90), (0, 0, 30, 100), (90, 5, 150, 40), (30, 50, 70, 110)]


def images(count: int) -> list[bytes]:
    return [square_image(width=160, height=120, box=BOXES[i % len(BOXES)]) for i in range(count)]


def detector(tmp_path, **kwargs) -> Detector:
    return Detector(build_known_answer_bundle(tmp_path / "bundle", **kwargs), threads=1)


@pytest.mark.parametrize("kwargs, expected", [
    ({"output_format": "detr"}, False),
    ({"output_format": "detr", "batch": "axis"}, True),
    ({"output_format": "detr", "batch": "mixing"}, True),
    ({"output_format": "boxes_scores_labels"}, False),  # free detection count, not a batch axis
])
def test_takes_batches_reads_the_graph(tmp_path, kwargs, expected):
    assert takes_batches(detector(tmp_path, **kwargs).session) is expected


def boxes(results) -> list:
    return [r.code if isinstance(r, DetectionError) else [d["box"] for d in r["detections"]] for r in results]


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("count", [0, 1, 5])
def test_detect_many_answers_as_one_by_one_in_order(tmp_path, batch_size, count):
    model = detector(tmp_path, output_format="detr", batch="axis", resize="stretch")
    data = images(count)
    expected = [[d["box"] for d in model.detect_bytes(image)["detections"]] for image in data]
    results = model.detect_many(data, batch_size=batch_size)
    assert boxes(results) == expected
    assert all(set(r["timings_ms"]) == {"decode", "preprocess", "inference", "postprocess", "total"}
               for r in results)


def test_a_bad_image_is_its_own_error_and_the_rest_are_detected(tmp_path):
    model = detector(tmp_path, output_format="detr", batch="axis", resize="stretch")
    data = images(4)
    data.insert(2, b"\xff\xd8\xff\xe0 not really a jpeg")
    results = model.detect_many(data, batch_size=4)
    assert [type(r).__name__ for r in results] == ["dict", "dict", "UnsupportedMediaType", "dict", "dict"]
    assert [b for i, b in enumerate(boxes(results)) if i != 2] == [
        [d["box"] for d in model.detect_bytes(image)["detections"]] for i, image in enumerate(data) if i != 2]


def test_a_failed_shared_run_is_retried_one_by_one(tmp_path):
    """Fault injection: the batched run fails (as a runtime error on a big batch would); each image is then run
    alone and gets its own answer."""

    class FailingBatches(Detector):
        def run_models(self, model_inputs):
            if len(model_inputs) > 1:
                raise InternalError("the batched run failed")
            return super().run_models(model_inputs)

    bundle = build_known_answer_bundle(tmp_path / "bundle", output_format="detr", batch="axis", resize="stretch")
    model = FailingBatches(bundle, threads=1)
    data = images(3)
    assert boxes(model.detect_many(data, batch_size=3)) == boxes(Detector(bundle, threads=1).detect_many(data))


def test_an_unchecked_batch_axis_is_run_one_by_one(tmp_path):
    """A bring-your-own graph with a named first axis but no export batch check: never batched (the mixing graph
    would show it)."""
    bundle = build_known_answer_bundle(tmp_path / "bundle", output_format="detr", batch="mixing", resize="stretch",
                                       declare_batch=False)
    model = Detector(bundle, threads=1)
    assert takes_batches(model.session) is True and model.takes_batches is False
    data = images(3)
    assert boxes(model.detect_many(data, batch_size=3)) == boxes(model.detect_many(data, batch_size=1))


def test_images_really_share_a_run(tmp_path):
    """The mixing graph answers differently only when images share a run: one by one it is the plain detector."""
    model = detector(tmp_path, output_format="detr", batch="mixing", resize="stretch")
    data = images(3)
    alone = boxes(model.detect_many(data, batch_size=1))
    together = boxes(model.detect_many(data, batch_size=3))
    assert alone == [[d["box"] for d in model.detect_bytes(image)["detections"]] for image in data]
    assert together != alone and together[0] == together[1] == together[2]


def test_a_graph_without_a_batch_axis_runs_one_by_one(tmp_path):
    model = detector(tmp_path, output_format="detr", resize="stretch")
    data = images(3)
    assert boxes(model.detect_many(data, batch_size=3)) == boxes(model.detect_many(data, batch_size=1))
