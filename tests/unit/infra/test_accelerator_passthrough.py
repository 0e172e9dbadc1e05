"""template.yaml's accelerator parameters reach the GPU / Inferentia nested stacks: instance type (empty = the
backend's default), DLC registry account, instance counts and the autoscaling target; Rules reject an instance
type of the other backend before anything is created."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.infra.cfn_view import StackView

ACCELERATORS = {"gpu": "GpuStack", "inferentia": "InferentiaStack"}
PASSED_THROUGH = {  # root parameter -> nested stack parameter
    "AcceleratorInstanceType": "InstanceType",
    "ImageRegistryAccount": "ImageRegistryAccount",
    "MinInstanceCount": "MinInstanceCount",
    "MaxInstanceCount": "MaxInstanceCount",
    "TargetInvocationsPerInstance": "TargetInvocationsPerInstance",
}


def child_view(root: StackView, nested_templates: dict, backend: str) -> StackView:
    """The nested stack evaluated with exactly the parameters the root passes it."""
    passed = root.resolve(root.resources[ACCELERATORS[backend]]["Properties"]["Parameters"])
    return StackView(nested_templates[backend], passed)


def rule_violations(stack: StackView) -> list[str]:
    """AssertDescriptions of the template's Rules that fail for the stack's parameters (as CloudFormation
    evaluates them before creating anything)."""

    def evaluate(node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            (key, args), = node.items()
            if key == "Fn::Contains":
                return evaluate(args[1]) in [evaluate(item) for item in args[0]]
            if key == "Fn::Equals":
                return str(evaluate(args[0])) == str(evaluate(args[1]))
            if key == "Fn::Not":
                return not evaluate(args[0])
            if key == "Ref":
                return stack.parameters[args]
        return node

    failed = []
    for rule in stack.template.get("Rules", {}).values():
        if "RuleCondition" in rule and not evaluate(rule["RuleCondition"]):
            continue
        failed += [a["AssertDescription"] for a in rule["Assertions"] if not evaluate(a["Assert"])]
    return failed


def test_every_parameter_is_in_exactly_one_interface_group(root_template):
    groups = root_template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    listed = [name for group in groups for name in group["Parameters"]]
    assert sorted(listed) == sorted(root_template["Parameters"])
    (accelerator_group,) = [g for g in groups if "Accelerator" in g["Label"]["default"]]
    assert set(accelerator_group["Parameters"]) == set(PASSED_THROUGH)


def test_instance_type_choices_are_the_nested_stacks_choices_plus_backend_default(root_template, nested_templates):
    spec = root_template["Parameters"]["AcceleratorInstanceType"]
    children = [v for t in nested_templates.values() for v in t["Parameters"]["InstanceType"]["AllowedValues"]]
    assert spec["Default"] == ""
    assert spec["AllowedValues"] == ["", *children]


@pytest.mark.parametrize("name", ["ImageRegistryAccount", "MinInstanceCount", "MaxInstanceCount",
                                  "TargetInvocationsPerInstance"])
@pytest.mark.parametrize("backend", sorted(ACCELERATORS))
def test_root_parameter_constraints_and_defaults_match_the_nested_stack(root_template, nested_templates, name, backend):
    root, child = root_template["Parameters"][name], nested_templates[backend]["Parameters"][name]
    keys = ("Type", "Default", "AllowedPattern", "MinValue", "MaxValue", "AllowedValues")
    assert {k: root.get(k) for k in keys} == {k: child.get(k) for k in keys}
    assert root["Default"] != "" and root.get("Description")


@pytest.mark.parametrize(("backend", "given", "expected"), [
    ("gpu", "", "ml.g4dn.xlarge"),
    ("gpu", "ml.g5.xlarge", "ml.g5.xlarge"),
    ("gpu", "ml.g6.2xlarge", "ml.g6.2xlarge"),
    ("inferentia", "", "ml.inf2.xlarge"),
    ("inferentia", "ml.inf2.8xlarge", "ml.inf2.8xlarge"),
])
def test_instance_type_reaches_the_endpoint_config(root_stack, nested_templates, backend, given, expected):
    child = child_view(root_stack(Backend=backend, AcceleratorInstanceType=given), nested_templates, backend)
    (variant,) = child.resolve(child.resources["EndpointConfig"]["Properties"]["ProductionVariants"])
    assert variant["InstanceType"] == expected


@pytest.mark.parametrize("backend", sorted(ACCELERATORS))
def test_empty_instance_type_means_the_nested_stacks_own_default(root_stack, nested_templates, backend):
    child = child_view(root_stack(Backend=backend), nested_templates, backend)
    assert child.parameters["InstanceType"] == nested_templates[backend]["Parameters"]["InstanceType"]["Default"]


@pytest.mark.parametrize("backend", sorted(ACCELERATORS))
def test_registry_counts_and_target_reach_the_nested_stack(root_stack, nested_templates, backend):
    root = root_stack(Backend=backend, ImageRegistryAccount="111122223333", MinInstanceCount=2, MaxInstanceCount=6,
                      TargetInvocationsPerInstance=450)
    passed = root.resolve(root.resources[ACCELERATORS[backend]]["Properties"]["Parameters"])
    assert set(passed) == {"ModelS3Uri", *PASSED_THROUGH.values()}
    child = StackView(nested_templates[backend], passed)
    container = child.resolve(child.resources["Model"]["Properties"]["PrimaryContainer"])
    assert container["Image"].startswith("111122223333.dkr.ecr.us-east-1.amazonaws.com/")
    (variant,) = child.resolve(child.resources["EndpointConfig"]["Properties"]["ProductionVariants"])
    assert variant["InitialInstanceCount"] == 2
    target = child.resolve(child.resources["ScalableTarget"]["Properties"])
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 6)
    policy = child.resolve(child.resources["ScalingPolicy"]["Properties"])
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 450


@pytest.mark.parametrize(("backend", "instance_type", "templates_bucket", "violations"), [
    ("gpu", "", "tmpl", []),
    ("gpu", "ml.g5.2xlarge", "tmpl", []),
    ("gpu", "ml.inf2.xlarge", "tmpl", ["AcceleratorInstanceType"]),
    ("gpu", "", "", ["TemplatesS3Bucket"]),
    ("inferentia", "", "tmpl", []),
    ("inferentia", "ml.inf2.48xlarge", "tmpl", []),
    ("inferentia", "ml.g4dn.xlarge", "tmpl", ["AcceleratorInstanceType"]),
    ("inferentia", "ml.g6.xlarge", "", ["AcceleratorInstanceType", "TemplatesS3Bucket"]),
    ("lambda", "", "", []),
    ("lambda", "ml.g5.xlarge", "", []),  # ignored without an accelerator
])
def test_rules_reject_the_other_backends_instance_type_and_missing_templates(
        root_stack, backend, instance_type, templates_bucket, violations):
    stack = root_stack(Backend=backend, AcceleratorInstanceType=instance_type, TemplatesS3Bucket=templates_bucket)
    failed = rule_violations(stack)
    assert [next(word for word in ("AcceleratorInstanceType", "TemplatesS3Bucket") if word in f) for f in failed] \
        == violations


@pytest.mark.parametrize("backend", sorted(ACCELERATORS))
def test_rule_lists_exactly_the_nested_stacks_instance_types(root_template, nested_templates, backend):
    allowed = nested_templates[backend]["Parameters"]["InstanceType"]["AllowedValues"]
    stack = StackView(root_template, {"ModelS3Uri": "s3://m/p/", "CodeS3Bucket": "code", "CodeS3Key": "l.zip",
                                      "Backend": backend, "TemplatesS3Bucket": "tmpl"})
    other = [v for b, t in nested_templates.items() if b != backend for v in t["Parameters"]["InstanceType"]["AllowedValues"]]
    for value in ["", *allowed]:
        stack.parameters["AcceleratorInstanceType"] = value
        assert rule_violations(stack) == [], value
    for value in other:
        stack.parameters["AcceleratorInstanceType"] = value
        assert len(rule_violations(stack)) == 1, value
