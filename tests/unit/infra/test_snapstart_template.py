"""The SnapStart option of template.yaml: a published Version + "live" alias that the API integration and its
invoke permission point at; refused with more than 512 MB of /tmp; absent (function ARN, no version) when off."""

from __future__ import annotations

import pytest

from tests.unit.infra.cfn_view import getatt_token, ref_token
from tests.unit.infra.test_accelerator_passthrough import rule_violations


def _by_type(stack, kind):
    return {name: r for name, r in stack.resources.items() if r["Type"] == kind}


def test_snapstart_publishes_a_version_and_alias_that_the_api_calls(root_stack):
    stack = root_stack(SnapStart="true")
    function = stack.resolve(stack.resources["DetectFunction"]["Properties"])
    assert function["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert function["Runtime"] in ("python3.12", "python3.13")  # SnapStart for Python needs 3.12+
    (version_name, version), = _by_type(stack, "AWS::Lambda::Version").items()
    assert stack.resolve(version["Properties"]["FunctionName"]) == ref_token("DetectFunction")
    (alias_name, alias), = _by_type(stack, "AWS::Lambda::Alias").items()
    alias_props = stack.resolve(alias["Properties"])
    assert alias_props["FunctionVersion"] == getatt_token(version_name, "Version") and alias_props["Name"] == "live"
    integration = stack.resolve(stack.resources["DetectIntegration"]["Properties"])
    assert integration["IntegrationUri"] == ref_token(alias_name)  # Ref of an alias is its ARN
    permission = stack.resolve(stack.resources["ApiInvokePermission"]["Properties"])
    assert permission["FunctionName"] == ref_token(alias_name)
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert stack.resolve(stack.template["Outputs"]["InvokedArn"]["Value"]) == ref_token(alias_name)


def test_without_snapstart_the_api_calls_the_function_directly(root_stack):
    stack = root_stack()
    assert not _by_type(stack, "AWS::Lambda::Version") and not _by_type(stack, "AWS::Lambda::Alias")
    function = stack.resolve(stack.resources["DetectFunction"]["Properties"])
    assert "SnapStart" not in function
    integration = stack.resolve(stack.resources["DetectIntegration"]["Properties"])
    assert integration["IntegrationUri"] == getatt_token("DetectFunction", "Arn")
    permission = stack.resolve(stack.resources["ApiInvokePermission"]["Properties"])
    assert permission["FunctionName"] == ref_token("DetectFunction")


@pytest.mark.parametrize("changed", [
    {"CodeS3Key": "serverless-detection/code/lambda-x86_64-0123456789ab.zip"},
    {"ModelS3Uri": "s3://my-models/dfine-n/"},
    {"ScoreThreshold": "0.3"},
    {"MemorySize": 3008},
])
def test_a_new_code_model_or_setting_publishes_a_new_version(root_stack, changed):
    """A Version is replaced (published anew, re-snapshotted) only when its properties change."""
    def version_properties(**overrides):
        stack = root_stack(SnapStart="true", **overrides)
        (version,) = _by_type(stack, "AWS::Lambda::Version").values()
        return stack.resolve(version["Properties"])

    assert version_properties(**changed) != version_properties()


@pytest.mark.parametrize("snapstart, storage, refused", [
    ("true", 512, False),
    ("true", 1024, True),
    ("true", 10240, True),
    ("false", 10240, False),
    ("false", 512, False),
])
def test_snapstart_is_refused_with_more_than_512_mb_of_tmp(root_stack, snapstart, storage, refused):
    stack = root_stack(SnapStart=snapstart, EphemeralStorage=storage)
    failed = rule_violations(stack)
    assert bool([f for f in failed if "SnapStart" in f]) == refused
    function = stack.resolve(stack.resources["DetectFunction"]["Properties"])
    assert function["EphemeralStorage"] == {"Size": storage}
