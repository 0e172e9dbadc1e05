"""detection.telemetry: the log record's fields and EMF block for each kind of outcome."""

from __future__ import annotations

import pytest

from detection.telemetry import DIMENSIONS, NAMESPACE, UNKNOWN_MODEL, request_record, step_metric
from tests.support.emf import emf_data

MODEL = {"name": "dfine-s", "sha256": "0f" * 32}
IMAGE = {"width": 4000, "height": 3000}
TIMINGS = {"decode": 5.0, "preprocess": 2.0, "inference": 40.0, "postprocess": 1.0, "total": 48.0}


def record(**overrides):
    fields = dict(request_id="r", function_name="detect", cold_start=False, model=MODEL, event_kind="http_v2",
                  status=200, duration_ms=50.0, timestamp_ms=1_800_000_000_000)
    return request_record(**{**fields, **overrides})


@pytest.mark.parametrize(("status", "level", "client", "server"), [
    (200, "INFO", 0, 0), (400, "WARNING", 1, 0), (413, "WARNING", 1, 0), (500, "ERROR", 0, 1), (503, "ERROR", 0, 1),
])
def test_status_class_counts_and_level(status, level, client, server):
    line = record(status=status, error_code=None if status == 200 else "X")
    values = {d.name: d.value for d in emf_data(line)}
    assert (line["level"], values["ClientErrors"], values["ServerErrors"], values["Requests"]) == \
        (level, client, server, 1)


@pytest.mark.parametrize(("image", "detections", "timings", "extra"), [
    (None, None, None, set()),
    (IMAGE, 0, TIMINGS, {"ImageMegapixels", "Detections", *map(step_metric, TIMINGS)}),
    (IMAGE, 7, {}, {"ImageMegapixels", "Detections"}),
])
def test_per_image_metrics_only_when_an_image_was_answered(image, detections, timings, extra):
    names = {d.name for d in emf_data(record(image=image, detections=detections, timings_ms=timings))}
    assert names == {"Requests", "ClientErrors", "ServerErrors", "ColdStart", "Duration"} | extra


def test_values_namespace_and_dimensions():
    data = {d.name: d for d in emf_data(record(image=IMAGE, detections=3, timings_ms=TIMINGS, cold_start=True))}
    assert data["ImageMegapixels"].value == 12.0 and data["Detections"].value == 3
    assert data["InferenceTime"].value == 40.0 and data["ColdStart"].value == 1
    assert {d.namespace for d in data.values()} == {NAMESPACE}
    assert {d.dimensions for d in data.values()} == {(("FunctionName", "detect"), ("ModelName", "dfine-s"))}
    assert DIMENSIONS == ("FunctionName", "ModelName")


def test_without_a_model_the_dimension_still_has_a_value():
    line = record(model=None, status=500, error_code="BundleError")
    assert line["ModelName"] == UNKNOWN_MODEL and line["model_sha256"] is None
    assert emf_data(line)  # still a valid EMF record


def test_filter_fields_and_no_empty_optionals():
    line = record(status=404, error_code="NotFound", error_message="s3://b/k does not exist", cold_start=True)
    assert {k: line[k] for k in ("request_id", "cold_start", "model_sha256", "event_kind", "status", "error_code")} \
        == {"request_id": "r", "cold_start": True, "model_sha256": MODEL["sha256"], "event_kind": "http_v2",
            "status": 404, "error_code": "NotFound"}
    assert not {"image", "detections", "timings_ms", "trace"} & set(line)
