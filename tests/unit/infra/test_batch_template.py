"""The upload trigger and batch state machine in template.yaml, asserted on the evaluated template."""

from __future__ import annotations

import json
import re

import pytest

from localaws.stepfunctions import lower_definition
from tests.unit.infra.cfn_view import ROOT_TEMPLATE, StackView, getatt_token, load_template, ref_token
from tests.unit.infra.test_infra_template import as_list, statements_for_role

BASE = {"ModelS3Uri": "s3://my-models/dfine-s/", "CodeS3Bucket": "code-bucket", "CodeS3Key": "dist/lambda.zip"}
INPUT = {**BASE, "InputBucketName": "photos-in", "InputPrefix": "images/", "OutputPrefix": "detections/"}
BATCH_RESOURCES = {"InputAccessPolicy", "BatchStateMachineRole", "BatchStateMachine"}
TRIGGER_RESOURCES = {"InputBucket", "S3InvokePermission", "DeadLetterQueue", "DeadLetterQueuePolicy",
                     "DetectEventInvokeConfig"}


@pytest.fixture(scope="module")
def template():
    return load_template(ROOT_TEMPLATE)


@pytest.mark.parametrize("parameters, expected", [
    (BASE, set()),
    ({**INPUT, "CreateInputBucket": "false"}, BATCH_RESOURCES),
    (INPUT, BATCH_RESOURCES | TRIGGER_RESOURCES),
])
def test_resources_follow_the_input_parameters(template, parameters, expected):
    stack = StackView(template, parameters)
    assert set(stack.resources) & (BATCH_RESOURCES | TRIGGER_RESOURCES) == expected


def test_function_environment_names_the_layout(template):
    variables = StackView(template, INPUT).resolve(
        template["Resources"]["DetectFunction"]["Properties"]["Environment"]["Variables"])
    assert (variables["INPUT_BUCKET"], variables["INPUT_PREFIX"], variables["OUTPUT_PREFIX"]) == \
        ("photos-in", "images/", "detections/")
    off = StackView(template, BASE).resolve(template["Resources"]["DetectFunction"]["Properties"]["Environment"]["Variables"])
    assert off["OUTPUT_PREFIX"] == ""


def test_rule_refuses_output_equal_to_input(template):
    (assertion,) = template["Rules"]["InputAndOutputApart"]["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "InputPrefix"}, {"Ref": "OutputPrefix"}]}]}
    # with one-folder prefixes (their AllowedPattern), "not equal" is the same as "neither under the other"
    for name in ("InputPrefix", "OutputPrefix"):
        pattern = template["Parameters"][name]["AllowedPattern"]
        assert re.fullmatch(pattern, "images/") and not re.fullmatch(pattern, "a/b/") and not re.fullmatch(pattern, "")


def test_uploads_notify_the_function_under_the_input_prefix_only(template):
    stack = StackView(template, INPUT)
    bucket = stack.resolve(stack.resources["InputBucket"]["Properties"])
    (notification,) = bucket["NotificationConfiguration"]["LambdaConfigurations"]
    assert notification["Function"] == getatt_token("DetectFunction", "Arn")
    assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "images/"}]
    config = stack.resolve(stack.resources["DetectEventInvokeConfig"]["Properties"])
    assert config["MaximumRetryAttempts"] == 2
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == getatt_token("DeadLetterQueue", "Arn")


def test_function_role_reads_inputs_and_writes_results_only(template):
    stack = StackView(template, INPUT)
    s3 = [s for s in statements_for_role(stack, "FunctionRole") if any(a.startswith("s3:") for a in as_list(s["Action"]))]
    writes = [s["Resource"] for s in s3 if "s3:PutObject" in as_list(s["Action"])]
    assert writes == ["arn:aws:s3:::photos-in/detections/*"]
    reads = sorted(r for s in s3 if "s3:GetObject" in as_list(s["Action"]) for r in as_list(s["Resource"]))
    assert reads[-2:] == ["arn:aws:s3:::photos-in/detections/*", "arn:aws:s3:::photos-in/images/*"]
    listing = [s for s in s3 if s["Action"] == "s3:ListBucket"]
    assert [s["Condition"] for s in listing] == [{"StringLike": {"s3:prefix": ["images/*", "detections/*"]}}]


def test_state_machine_role_is_scoped(template):
    stack = StackView(template, INPUT)
    statements = stack.resolve(stack.resources["BatchStateMachineRole"]["Properties"]["Policies"])[0][
        "PolicyDocument"]["Statement"]
    resources = [r for s in statements for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])]
    assert all("*" not in r or r.endswith(("/*", ":*")) for r in resources), resources
    assert "arn:aws:states:us-east-1:123456789012:stateMachine:det-batch" in resources
    assert "arn:aws:s3:::photos-in/detections/_runs/*" in resources
    assert not any(s["Action"] == "*" or s["Action"] == "s3:*" for s in statements)


def _definition(template, **parameters) -> dict:
    stack = StackView(template, {**INPUT, **parameters})
    return json.loads(stack.resolve(stack.resources["BatchStateMachine"]["Properties"]["DefinitionString"]))


def test_definition_is_a_distributed_map_with_the_parameters(template):
    definition = _definition(template, BatchSize="10", BatchMaxConcurrency="7",
                             BatchToleratedFailurePercentage="3", BatchChildExecutionType="STANDARD")
    detect = definition["States"]["Detect"]
    assert detect["ItemReader"]["Resource"] == "arn:aws:states:::s3:listObjectsV2"
    assert detect["ItemReader"]["Parameters"] == {"Bucket": "photos-in", "Prefix.$": "$.Prefix"}
    assert detect["ItemBatcher"] == {"MaxItemsPerBatch": 10, "BatchInput": {
        "Bucket": "photos-in", "Options.$": "$.Options", "SkipExisting.$": "$.SkipExisting"}}
    assert (detect["MaxConcurrency"], detect["ToleratedFailurePercentage"]) == (7, 3)
    assert detect["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    task = detect["ItemProcessor"]["States"]["DetectBatch"]
    assert task["Parameters"]["FunctionName"] == getatt_token("DetectFunction", "Arn")
    assert "JobFailed" in task["Retry"][0]["ErrorEquals"]
    assert detect["ResultWriter"]["Parameters"] == {"Bucket": "photos-in", "Prefix": "detections/_runs"}


def test_defaults_are_the_cost_models_pick(template):
    from bench import batch_cost

    rows = batch_cost.cost_rows(**{"compute_ms": 224.7, "memory_mb": 1769, "arch": "arm64"})
    best = batch_cost.pick_defaults(rows)
    parameters = template["Parameters"]
    assert (f"batch {parameters['BatchChildExecutionType']['Default']}", parameters["BatchSize"]["Default"]) == \
        (best["mode"], best["batch_size"])


def test_the_local_engine_keeps_what_the_definition_asks(template):
    lowered, extras = lower_definition(json.dumps(_definition(template)))
    found = extras[("Detect",)]
    assert (found.batched, found.max_items_per_batch, found.execution_type) == (True, 50, "EXPRESS")
    assert found.writer_config == {"OutputType": "JSON", "Transformation": "COMPACT"}
    assert found.tolerated_percentage_declared and not found.tolerated_count_declared
    assert "ItemBatcher" not in lowered and ref_token("DetectFunction") not in lowered


def test_with_snapstart_uploads_and_batches_invoke_the_live_alias(template):
    stack = StackView(template, {**INPUT, "SnapStart": "true"})
    notification = stack.resolve(stack.resources["InputBucket"]["Properties"])["NotificationConfiguration"]
    assert notification["LambdaConfigurations"][0]["Function"] == ref_token("DetectAlias")
    assert stack.resolve(stack.resources["DetectEventInvokeConfig"]["Properties"])["Qualifier"] == "live"
    assert stack.resolve(stack.resources["S3InvokePermission"]["Properties"])["FunctionName"] == ref_token("DetectAlias")
    task = _definition(template, SnapStart="true")["States"]["Detect"]["ItemProcessor"]["States"]["DetectBatch"]
    assert task["Parameters"]["FunctionName"] == ref_token("DetectAlias")
