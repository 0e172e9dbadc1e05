"""deployer.switch: which bundle a deploy or a rollback serves next, and which one stays readable."""

from __future__ import annotations

import pytest

from deployer.stack import DeployError
from deployer.switch import grant_parameters, rollback_parameters, stack_parameters, switch_parameters

A, B, C = "s3://bkt/models/a-1/", "s3://bkt/models/b-2/", "s3://bkt/models/c-3/"


@pytest.mark.parametrize(("current", "new", "want"), [
    (None, A, {"ModelS3Uri": A, "PreviousModelS3Uri": ""}),                            # first deploy
    ({"ModelS3Uri": A}, A, {"ModelS3Uri": A, "PreviousModelS3Uri": ""}),              # stack from before the parameter
    ({"ModelS3Uri": A, "PreviousModelS3Uri": ""}, B, {"ModelS3Uri": B, "PreviousModelS3Uri": A}),
    ({"ModelS3Uri": B, "PreviousModelS3Uri": A}, C, {"ModelS3Uri": C, "PreviousModelS3Uri": B}),
    ({"ModelS3Uri": B, "PreviousModelS3Uri": A}, B, {"ModelS3Uri": B, "PreviousModelS3Uri": A}),  # code-only redeploy
])
def test_switch_parameters(current, new, want):
    assert switch_parameters(current, new) == want


def test_rollback_swaps_and_keeps_every_other_parameter():
    current = {"ModelS3Uri": B, "PreviousModelS3Uri": A, "MemorySize": "3008", "Alarms": "false"}
    back = rollback_parameters(current)
    assert back == {"ModelS3Uri": A, "PreviousModelS3Uri": B, "MemorySize": "3008", "Alarms": "false"}
    assert rollback_parameters(back) == current  # a second rollback is the forward switch again


@pytest.mark.parametrize(("current", "message"), [
    (None, "the stack does not exist"),
    ({"ModelS3Uri": A, "PreviousModelS3Uri": ""}, "served only one bundle"),
    ({"ModelS3Uri": A}, "served only one bundle"),
])
def test_nothing_to_roll_back_says_why(current, message):
    with pytest.raises(DeployError, match=message):
        rollback_parameters(current)


def test_stack_parameters_reads_described_values():
    stack = {"Parameters": [{"ParameterKey": "ModelS3Uri", "ParameterValue": A},
                            {"ParameterKey": "PreviousModelS3Uri", "ParameterValue": ""}]}
    assert stack_parameters(stack) == {"ModelS3Uri": A, "PreviousModelS3Uri": ""}
    assert stack_parameters(None) is None
    assert stack_parameters({}) == {}


@pytest.mark.parametrize(("current", "new", "want"), [
    (None, A, None),
    ({"ModelS3Uri": A, "PreviousModelS3Uri": ""}, A, None),
    ({"ModelS3Uri": A, "PreviousModelS3Uri": ""}, B, {"ModelS3Uri": A, "PreviousModelS3Uri": B}),
    ({"ModelS3Uri": B, "PreviousModelS3Uri": A}, C, {"ModelS3Uri": B, "PreviousModelS3Uri": C}),
])
def test_grant_step_keeps_serving_the_old_bundle_and_adds_the_new_one(current, new, want):
    grant = grant_parameters(current, new)
    assert grant == want
    if grant:  # the readable set after the grant is exactly the set after the switch: no second IAM change
        assert set(grant.values()) == set(switch_parameters(current, new).values())
