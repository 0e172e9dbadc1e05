"""template.yaml's monitoring: alarms and their topic, the dashboard, X-Ray tracing, and the previous bundle's
read grant that makes model switches safe — each as the parameters turn them on or off."""

from __future__ import annotations

import json
import re

import pytest

from detection.telemetry import DIMENSIONS, NAMESPACE, request_metrics, step_metric
from tests.unit.infra.cfn_view import ref_token
from tests.unit.infra.test_infra_template import permissions, statements_for_role

ALARMS = {"FunctionErrorsAlarm", "ThrottlesAlarm", "ServerErrorRateAlarm", "DurationAlarm"}
GIVEN_TOPIC = "arn:aws:sns:us-east-1:123456789012:ops-pager"


def of_type(stack, resource_type: str) -> set[str]:
    return {name for name, r in stack.resources.items() if r["Type"] == resource_type}


def props(stack, name: str) -> dict:
    return stack.resolve(stack.resources[name]["Properties"])


@pytest.mark.parametrize(("parameters", "alarms", "topic", "subscription"), [
    ({}, ALARMS, True, False),
    ({"AlarmEmail": "ops@example.com"}, ALARMS, True, True),
    ({"AlarmTopicArn": GIVEN_TOPIC, "AlarmEmail": "ops@example.com"}, ALARMS, False, False),
    ({"Alarms": "false"}, set(), False, False),
    ({"Alarms": "false", "AlarmEmail": "ops@example.com"}, set(), False, False),
])
def test_alarms_and_topic_follow_the_parameters(root_stack, parameters, alarms, topic, subscription):
    stack = root_stack(**parameters)
    assert of_type(stack, "AWS::CloudWatch::Alarm") == alarms
    assert of_type(stack, "AWS::SNS::Topic") == ({"AlarmTopic"} if topic else set())
    assert of_type(stack, "AWS::SNS::Subscription") == ({"AlarmEmailSubscription"} if subscription else set())
    assert stack.condition(stack.template["Outputs"]["AlarmTopicArn"]["Condition"]) is bool(alarms)


@pytest.mark.parametrize(("parameters", "target"), [({}, ref_token("AlarmTopic")),
                                                    ({"AlarmTopicArn": GIVEN_TOPIC}, GIVEN_TOPIC)])
def test_every_alarm_notifies_the_topic_on_alarm_and_on_recovery(root_stack, parameters, target):
    stack = root_stack(**parameters)
    for name in ALARMS:
        alarm = props(stack, name)
        assert alarm["AlarmActions"] == alarm["OKActions"] == [target], name
        assert alarm["TreatMissingData"] == "notBreaching", name  # no traffic is not an incident


@pytest.mark.parametrize(("name", "metric"), [("FunctionErrorsAlarm", "Errors"), ("ThrottlesAlarm", "Throttles")])
def test_function_error_and_throttle_alarms_fire_on_the_first_one(root_stack, name, metric):
    alarm = props(root_stack(), name)
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == ("AWS/Lambda", metric, "Sum")
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": ref_token("DetectFunction")}]
    assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["Period"] * alarm["EvaluationPeriods"]) == \
        (1, "GreaterThanOrEqualToThreshold", 300)


def metric_stats(alarm: dict) -> dict[str, dict]:
    return {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}


@pytest.mark.parametrize("percent", [1, 5])
def test_server_error_rate_alarm_is_5xx_over_requests_of_this_api(root_stack, percent):
    alarm = props(root_stack(ServerErrorRateAlarmPercent=percent), "ServerErrorRateAlarm")
    returned = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    assert len(returned) == 1 and returned[0]["Expression"] == "100 * errors / requests"
    stats = metric_stats(alarm)
    assert {k: (v["Metric"]["Namespace"], v["Metric"]["MetricName"], v["Stat"]) for k, v in stats.items()} == {
        "errors": ("AWS/ApiGateway", "5xx", "Sum"), "requests": ("AWS/ApiGateway", "Count", "Sum")}
    for stat in stats.values():
        assert stat["Metric"]["Dimensions"] == [{"Name": "ApiId", "Value": ref_token("HttpApi")},
                                                {"Name": "Stage", "Value": "$default"}]
        assert stat["Period"] == 300
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (percent, "GreaterThanThreshold")


@pytest.mark.parametrize(("timeout", "percent"), [(30, 80), (120, 50)])
def test_duration_alarm_compares_p99_with_the_timeout(root_stack, timeout, percent):
    alarm = props(root_stack(Timeout=timeout, DurationAlarmPercentOfTimeout=percent), "DurationAlarm")
    (returned,) = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    assert returned["Expression"] == f"100 * p99 / ({timeout} * 1000)"
    assert metric_stats(alarm)["p99"]["Stat"] == "p99"
    assert metric_stats(alarm)["p99"]["Metric"]["MetricName"] == "Duration"
    assert alarm["Threshold"] == percent
    # sustained for 15 minutes, so a burst of cold starts after a deploy does not page anyone
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == 3 and metric_stats(alarm)["p99"]["Period"] == 300
    # the arithmetic is right: a p99 of exactly `percent` % of the timeout is at the threshold
    p99_ms = timeout * 1000 * percent / 100
    assert eval(returned["Expression"], {}, {"p99": p99_ms}) == pytest.approx(percent)


def dashboard(stack) -> dict:
    return json.loads(props(stack, "OperationsDashboard")["DashboardBody"])


def test_dashboard_is_optional(root_stack):
    assert of_type(root_stack(), "AWS::CloudWatch::Dashboard") == {"OperationsDashboard"}
    stack = root_stack(Dashboard="false")
    assert of_type(stack, "AWS::CloudWatch::Dashboard") == set()
    assert stack.condition(stack.template["Outputs"]["DashboardUrl"]["Condition"]) is False


def test_dashboard_shows_the_alarmed_metrics_and_every_emf_metric(root_stack):
    body = dashboard(root_stack(Timeout=60))
    text = json.dumps(body)
    for namespace, metric in [("AWS/ApiGateway", "5xx"), ("AWS/ApiGateway", "Count"), ("AWS/Lambda", "Errors"),
                              ("AWS/Lambda", "Throttles"), ("AWS/Lambda", "Duration")]:
        assert namespace in text and f'"{metric}"' in text, metric
    emf_names = {name for name, _, _ in request_metrics(
        status=200, cold_start=True, duration_ms=1.0, image={"width": 1, "height": 1}, detections=0,
        timings_ms={step: 1.0 for step in ("decode", "preprocess", "inference", "postprocess", "total")})}
    searches = [m[0]["expression"] for w in body["widgets"] for m in w["properties"]["metrics"]
                if isinstance(m[0], dict)]
    shown = {name for search in searches for name in re.findall(r'MetricName="(\w+)"', search)}
    assert shown == emf_names - {"Requests", "Duration"}  # those two are the API's Count and Lambda's Duration
    for search in searches:
        assert search.startswith(f"SEARCH('{{{NAMESPACE},{','.join(DIMENSIONS)}}}")
        assert f'FunctionName="{ref_token("DetectFunction")}"' in search
    assert all(w["properties"]["region"] == "us-east-1" for w in body["widgets"])
    duration = next(w for w in body["widgets"] if "timeout" in w["properties"]["title"])
    assert duration["properties"]["annotations"]["horizontal"][0]["value"] == 60000
    assert step_metric("inference") in shown


@pytest.mark.parametrize("tracing", ["Active", "PassThrough"])
def test_tracing_mode_and_its_permission(root_stack, tracing):
    stack = root_stack(Tracing=tracing)
    assert props(stack, "DetectFunction")["TracingConfig"] == {"Mode": tracing}
    xray = {p for p in permissions(statements_for_role(stack, "FunctionRole")) if p[0].startswith("xray:")}
    assert xray == ({("xray:PutTraceSegments", "*"), ("xray:PutTelemetryRecords", "*")} if tracing == "Active"
                    else set())


def test_tracing_is_off_by_default(root_stack):
    assert props(root_stack(), "DetectFunction")["TracingConfig"] == {"Mode": "PassThrough"}


@pytest.mark.parametrize(("previous", "readable"), [
    ("", {"arn:aws:s3:::my-models/dfine-s/*"}),
    ("s3://my-models/dfine-s-old/", {"arn:aws:s3:::my-models/dfine-s/*", "arn:aws:s3:::my-models/dfine-s-old/*"}),
])
def test_previous_bundle_stays_readable_during_a_switch(root_stack, previous, readable):
    stack = root_stack(PreviousModelS3Uri=previous)
    s3 = {resource for action, resource in permissions(statements_for_role(stack, "FunctionRole"))
          if action == "s3:GetObject"}
    assert s3 == readable
    assert props(stack, "DetectFunction")["Environment"]["Variables"]["MODEL_URI"] == "s3://my-models/dfine-s/"


@pytest.mark.parametrize(("parameter", "value", "accepted"), [
    ("AlarmTopicArn", "create", True), ("AlarmTopicArn", GIVEN_TOPIC, True), ("AlarmTopicArn", "", False),
    ("AlarmTopicArn", "arn:aws:sqs:us-east-1:123456789012:q", False),
    ("AlarmEmail", "", True), ("AlarmEmail", "ops@example.com", True), ("AlarmEmail", "ops", False),
    ("PreviousModelS3Uri", "", True), ("PreviousModelS3Uri", "s3://bkt/m/1/", True), ("PreviousModelS3Uri", "s3://bkt", False),
])
def test_monitoring_parameter_patterns(root_template, parameter, value, accepted):
    pattern = root_template["Parameters"][parameter]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, value)) is accepted
