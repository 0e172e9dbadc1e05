"""The built zip in a real local execution environment writes one log line per request that CloudWatch would
read as EMF metrics: names, units, dimensions and values checked against the responses they describe."""

from __future__ import annotations

import json

import pytest

from detection.telemetry import NAMESPACE
from localaws.lambda_runtime import LocalFunction
from tests.conftest import load_event
from tests.support.lambda_package import function_env, invoke_json
from tests.support.emf import emf_data, emf_records

STEPS = ("decode", "preprocess", "inference", "postprocess", "total")
ALWAYS = {"Requests": "Count", "ClientErrors": "Count", "ServerErrors": "Count", "ColdStart": "Count",
          "Duration": "Milliseconds"}
PER_IMAGE = {"ImageMegapixels": "None", "Detections": "Count",
             **{f"{step.capitalize()}Time": "Milliseconds" for step in STEPS}}


@pytest.fixture(scope="module")
def logged_requests(aws_package, known_answer_bundle, moto_endpoint, tmp_path_factory):
    """Three requests (direct cold, HTTP warm, a bad one) and the EMF records the environment logged for them."""
    log_path = tmp_path_factory.mktemp("emf-logs") / "detect.log"
    answers = []
    with LocalFunction(aws_package.zip_path, env=function_env(moto_endpoint, known_answer_bundle.root),
                       function_name="detect", timeout_s=60, log_path=log_path) as function:
        for event in (load_event("direct.json"), load_event("http_api_v2_binary.json"), {"image": "not base64!"}):
            answers.append(invoke_json(function, event))
    return answers, emf_records(log_path.read_text())


def test_one_emf_record_per_request_in_the_function_log(logged_requests):
    answers, records = logged_requests
    assert len(records) == len(answers) == 3
    assert [r["event_kind"] for r in records] == ["direct", "http_v2", None]
    assert [r["status"] for r in records] == [status for status, _ in answers] == [200, 200, 400]


def test_metric_names_units_and_dimensions(logged_requests, known_answer_bundle):
    answers, records = logged_requests
    model_name = answers[0][1]["model"]["name"]
    for record, (status, _) in zip(records, answers):
        data = emf_data(record)
        assert {d.namespace for d in data} == {NAMESPACE}
        assert {d.dimensions for d in data} == {(("FunctionName", "detect"), ("ModelName", model_name))}
        want = {**ALWAYS, **(PER_IMAGE if status == 200 else {})}
        assert {d.name: d.unit for d in data} == want


def test_metric_values_describe_the_requests(logged_requests):
    answers, records = logged_requests
    values = [{d.name: d.value for d in emf_data(record)} for record in records]
    assert [v["ColdStart"] for v in values] == [1, 0, 0]
    assert [(v["ClientErrors"], v["ServerErrors"]) for v in values] == [(0, 0), (0, 0), (1, 0)]
    for (status, body), value in zip(answers[:2], values[:2]):
        assert value["Detections"] == len(body["detections"]) == 1
        assert value["ImageMegapixels"] == pytest.approx(body["image"]["width"] * body["image"]["height"] / 1e6)
        assert value["InferenceTime"] == body["timings_ms"]["inference"]
        assert value["Duration"] >= value["TotalTime"] > 0


def test_structured_fields_operators_filter_on(logged_requests):
    answers, records = logged_requests
    sha256 = answers[0][1]["model"]["sha256"]
    assert len(sha256) == 64
    for record in records:
        assert record["request_id"] and record["function"] == "detect" and record["model_sha256"] == sha256
        assert record["cold_start"] is (record is records[0])
    assert records[2]["error_code"] == "BadRequest" and records[2]["level"] == "WARNING"
    assert "error_code" not in records[0] and records[0]["level"] == "INFO"
    assert len({r["request_id"] for r in records}) == 3
    assert all(len(json.dumps(r)) < 4096 for r in records)  # well under CloudWatch's 256 KB event limit
