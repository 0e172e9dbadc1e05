"""The GPU and Inferentia nested stacks (infra/gpu.yaml, infra/inferentia.yaml): endpoint, autoscaling,
the endpoint role's and the function's SageMaker permissions, asserted on the evaluated templates."""

from __future__ import annotations

import pytest

from tests.unit.infra.cfn_view import StackView, getatt_token, ref_token
from tests.unit.infra.test_infra_template import permissions, statements_for_role

ACCELERATORS = ["gpu", "inferentia"]
NESTED_STACK = {"gpu": "GpuStack", "inferentia": "InferentiaStack"}
MODEL_URI = "s3://my-models/dfine-s/"


def nested(nested_templates, backend, **parameters):
    return StackView(nested_templates[backend], {"ModelS3Uri": MODEL_URI, **parameters})


@pytest.mark.parametrize("backend", ACCELERATORS)
@pytest.mark.parametrize(("low", "high", "target"), [(1, 2, 1200), (2, 8, 300)])
def test_autoscaling_tracks_invocations_per_instance_on_the_endpoints_variant(nested_templates, backend, low, high, target):
    stack = nested(nested_templates, backend, MinInstanceCount=low, MaxInstanceCount=high,
                   TargetInvocationsPerInstance=target)
    (variant,) = stack.resolve(stack.resources["EndpointConfig"]["Properties"]["ProductionVariants"])
    assert variant["InitialInstanceCount"] == low
    scalable = stack.resolve(stack.resources["ScalableTarget"]["Properties"])
    assert scalable == {
        "ServiceNamespace": "sagemaker",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "ResourceId": f"endpoint/{getatt_token('Endpoint', 'EndpointName')}/variant/{variant['VariantName']}",
        "MinCapacity": low,
        "MaxCapacity": high,
    }
    policy = stack.resolve(stack.resources["ScalingPolicy"]["Properties"])
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["ScalingTargetId"] == ref_token("ScalableTarget")
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == target
    assert tracking["PredefinedMetricSpecification"] == {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}


@pytest.mark.parametrize(
    ("backend", "default", "must_allow"),
    [("gpu", "ml.g4dn.xlarge", {"ml.g5.xlarge", "ml.g6.xlarge"}), ("inferentia", "ml.inf2.xlarge", {"ml.inf2.8xlarge"})],
)
def test_instance_types(nested_templates, backend, default, must_allow):
    spec = nested_templates[backend]["Parameters"]["InstanceType"]
    assert spec["Default"] == default and must_allow <= set(spec["AllowedValues"])
    prefix = "ml.g" if backend == "gpu" else "ml.inf2."
    assert all(value.startswith(prefix) for value in spec["AllowedValues"])  # only accelerator instances
    stack = nested(nested_templates, backend, InstanceType=sorted(must_allow)[0])
    (variant,) = stack.resolve(stack.resources["EndpointConfig"]["Properties"]["ProductionVariants"])
    assert variant["InstanceType"] == sorted(must_allow)[0]


@pytest.mark.parametrize(("backend", "min_startup_s"), [("gpu", 600), ("inferentia", 1800)])
def test_container_runs_our_entry_point_with_time_to_start(nested_templates, backend, min_startup_s):
    stack = nested(nested_templates, backend)
    container = stack.resolve(stack.resources["Model"]["Properties"]["PrimaryContainer"])
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    assert container["Environment"]["DETECTION_BACKEND"] == backend
    params = nested_templates[backend]["Parameters"]
    assert container["Image"] == (f"763104351884.dkr.ecr.us-east-1.amazonaws.com/"
                                  f"{params['ImageRepository']['Default']}:{params['ImageTag']['Default']}")
    (variant,) = stack.resolve(stack.resources["EndpointConfig"]["Properties"]["ProductionVariants"])
    # Installing the vendored wheels (and, on Inferentia, compiling at first start) happens before /ping answers.
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] >= min_startup_s


@pytest.mark.parametrize("backend", ACCELERATORS)
@pytest.mark.parametrize(("model_uri", "prefix_arn"), [("s3://m/a/", "arn:aws:s3:::m/a/*"),
                                                       ("s3://my.models/x/y/", "arn:aws:s3:::my.models/x/y/*")])
def test_endpoint_role_reads_only_its_model_prefix_and_pulls_only_its_image(nested_templates, backend, model_uri,
                                                                             prefix_arn):
    stack = StackView(nested_templates[backend], {"ModelS3Uri": model_uri, "ImageRepository": "my-repo",
                                                  "ImageRegistryAccount": "111122223333"})
    granted = permissions(statements_for_role(stack, "EndpointRole"))
    assert {p for p in granted if p[0].startswith("s3:")} == {("s3:GetObject", prefix_arn)}
    assert {r for a, r in granted if a in ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                                           "ecr:BatchCheckLayerAvailability")} == {
        "arn:aws:ecr:us-east-1:111122223333:repository/my-repo"}
    assert not any("*" in action for action, _ in granted)
    assert {service.split(":")[0] for service, _ in granted} == {"s3", "ecr", "logs"}
    trust = stack.resolve(stack.resources["EndpointRole"]["Properties"]["AssumeRolePolicyDocument"])["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "sagemaker.amazonaws.com"}]


@pytest.mark.parametrize("backend", ["lambda", *ACCELERATORS])
def test_the_function_may_invoke_only_its_own_endpoint(root_stack, backend):
    stack = root_stack(Backend=backend)
    granted = permissions(statements_for_role(stack, "FunctionRole"))
    sagemaker = {p for p in granted if p[0].startswith("sagemaker:")}
    env = stack.resolve(stack.resources["DetectFunction"]["Properties"]["Environment"]["Variables"])
    if backend == "lambda":
        assert sagemaker == set() and env["ENDPOINT_NAME"] == ""
        return
    stack_name = NESTED_STACK[backend]
    # The ARN and the name the handler uses come from the same nested stack's endpoint.
    assert sagemaker == {("sagemaker:InvokeEndpoint", getatt_token(stack_name, "Outputs.EndpointArn"))}
    assert env["ENDPOINT_NAME"] == getatt_token(stack_name, "Outputs.EndpointName")
    assert env["MODEL_URI"] == "s3://my-models/dfine-s/"  # the Lambda reads the manifest from the same bundle
