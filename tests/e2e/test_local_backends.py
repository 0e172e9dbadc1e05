"""Backend=gpu and Backend=inferentia deployed on the local AWS through ./deploy.sh --local: RECORDS ONLY.

The local AWS (moto, patched by localaws) creates the root stack, the nested SageMaker stack and its
Model / EndpointConfig / Endpoint / autoscaling *records*; no endpoint runs and nothing is invoked. What this
proves: the templates wire together (parameters in, outputs out, the Lambda pointed at the nested endpoint),
and the deployer builds and uploads the SageMaker model.tar.gz where the nested stack's Model reads it.
The endpoint entry point itself is tested with real onnxruntime in tests/functional/sagemaker_entry/.

One local AWS serves both deployments (a few seconds each: the Lambda zip is reused from dist/).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import boto3
import pytest

from localaws import lifecycle

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
BACKENDS = {  # backend -> (deploy.sh flags, nested stack logical id, expected instance type)
    "gpu": (["--accelerator-instance-type", "ml.g5.xlarge"], "GpuStack", "ml.g5.xlarge"),
    "inferentia": ([], "InferentiaStack", "ml.inf2.xlarge"),  # empty = the backend's default
}


@pytest.fixture(scope="module")
def local_aws(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("localaws-backends")
    info = lifecycle.start(state_dir=state_dir)
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name="us-east-1")
    yield {"info": info, "state_dir": state_dir, "client": lambda name: session.client(name, endpoint_url=info.endpoint)}
    lifecycle.stop(info=info)
    assert lifecycle.group_pids(info.pid) == [], "the local AWS left processes behind"


@pytest.fixture(scope="module")
def deployments(local_aws, known_answer_bundle):
    """Factory: ``deployments("gpu")`` deploys once per backend (records only) and returns what it made."""
    made: dict[str, dict] = {}

    def deploy(backend: str) -> dict:
        if backend in made:
            return made[backend]
        flags, nested_id, _ = BACKENDS[backend]
        stack_name = f"e2e-{backend}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["LOCALAWS_HOME"] = str(local_aws["state_dir"])
        result = subprocess.run(
            [str(REPO / "deploy.sh"), "--local", "--backend", backend, *flags, "--stack-name", stack_name,
             "--bundle", str(known_answer_bundle.root), "--no-lint"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        cfn = local_aws["client"]("cloudformation")
        root = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
        resources = {r["LogicalResourceId"]: r for r in cfn.describe_stack_resources(StackName=stack_name)["StackResources"]}
        nested_name = resources[nested_id]["PhysicalResourceId"]
        nested = cfn.describe_stacks(StackName=nested_name)["Stacks"][0]
        nested_resources = {r["LogicalResourceId"]: r
                            for r in cfn.describe_stack_resources(StackName=nested_name)["StackResources"]}
        made[backend] = {
            "stdout": result.stdout, "stack_name": stack_name, "root": root, "resources": resources,
            "outputs": {o["OutputKey"]: o["OutputValue"] for o in root.get("Outputs") or []},
            "parameters": {p["ParameterKey"]: p["ParameterValue"] for p in root["Parameters"]},
            "nested": nested, "nested_resources": nested_resources,
            "nested_outputs": {o["OutputKey"]: o["OutputValue"] for o in nested.get("Outputs") or []},
        }
        return made[backend]

    return deploy


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_records_only_deploy_completes_and_says_so(deployments, backend):
    made = deployments(backend)
    assert made["root"]["StackStatus"] == "CREATE_COMPLETE"
    assert made["nested"]["StackStatus"] == "CREATE_COMPLETE"
    assert "smoke test skipped" in made["stdout"] and "records only" in made["stdout"]
    assert made["parameters"]["Backend"] == backend
    assert made["parameters"]["TemplatesS3Bucket"] and made["parameters"]["TemplatesS3KeyPrefix"].endswith("/")
    # only this backend's nested stack (and invoke policy) exists
    other = {"gpu": "InferentiaStack", "inferentia": "GpuStack"}[backend]
    assert BACKENDS[backend][1] in made["resources"] and other not in made["resources"]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_nested_stack_records_sagemaker_endpoint_and_autoscaling(deployments, local_aws, backend):
    made = deployments(backend)
    types = {logical: r["ResourceType"] for logical, r in made["nested_resources"].items()}
    assert {types.get(k) for k in ("Model", "EndpointConfig", "Endpoint", "ScalableTarget", "ScalingPolicy")} == {
        "AWS::SageMaker::Model", "AWS::SageMaker::EndpointConfig", "AWS::SageMaker::Endpoint",
        "AWS::ApplicationAutoScaling::ScalableTarget", "AWS::ApplicationAutoScaling::ScalingPolicy"}
    sagemaker = local_aws["client"]("sagemaker")
    endpoint_name = made["nested_outputs"]["EndpointName"]
    endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    assert endpoint["EndpointArn"] == made["nested_outputs"]["EndpointArn"]
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    (variant,) = config["ProductionVariants"]
    assert variant["InstanceType"] == BACKENDS[backend][2]
    model = sagemaker.describe_model(ModelName=variant["ModelName"])
    container = model["PrimaryContainer"]
    assert container["ModelDataUrl"] == f"{made['parameters']['ModelS3Uri']}{backend}/model.tar.gz"
    assert container["Image"].startswith("763104351884.dkr.ecr.us-east-1.amazonaws.com/")
    assert container["Environment"]["DETECTION_BACKEND"] == backend
    scaling = local_aws["client"]("application-autoscaling")
    resource_id = f"endpoint/{endpoint_name}/variant/{variant['VariantName']}"
    (target,) = scaling.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource_id])[
        "ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 2)
    policies = [p for p in scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
                if p["ResourceId"] == resource_id]
    assert [p["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] for p in policies] == [1200.0]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_function_points_at_the_nested_endpoint_and_root_outputs_it(deployments, local_aws, backend):
    made = deployments(backend)
    endpoint_name = made["nested_outputs"]["EndpointName"]
    assert made["outputs"]["EndpointName"] == endpoint_name
    assert {"ApiUrl", "FunctionName", "FunctionArn"} <= set(made["outputs"])
    assert f"EndpointName: {endpoint_name}" in made["stdout"]
    config = local_aws["client"]("lambda").get_function_configuration(FunctionName=made["outputs"]["FunctionName"])
    env = config["Environment"]["Variables"]
    assert env["ENDPOINT_NAME"] == endpoint_name
    assert env["BACKEND"] == backend
    assert env["MODEL_URI"] == made["parameters"]["ModelS3Uri"]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_model_archive_was_uploaded_where_the_model_reads_it(deployments, local_aws, known_answer_bundle, backend):
    made = deployments(backend)
    bucket, _, prefix = made["parameters"]["ModelS3Uri"][len("s3://"):].partition("/")
    body = local_aws["client"]("s3").get_object(Bucket=bucket, Key=f"{prefix}{backend}/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        names = set(archive.getnames())
        build = json.loads(archive.extractfile("code/build.json").read())
        model = archive.extractfile(known_answer_bundle.manifest.model_file).read()
    assert {"code/inference.py", "code/requirements.txt", "model.json"} <= names
    assert any(name.startswith("code/detection/") for name in names)
    assert build["target"] == backend and build["wheels_vendored"] is False  # --local: records only, no wheels
    assert model == known_answer_bundle.model_path.read_bytes()


def test_deleting_the_root_stack_removes_the_nested_records(deployments, local_aws):
    made = deployments("gpu")
    cfn, sagemaker = local_aws["client"]("cloudformation"), local_aws["client"]("sagemaker")
    cfn.delete_stack(StackName=made["stack_name"])
    statuses = {s["StackName"]: s["StackStatus"] for s in cfn.list_stacks()["StackSummaries"]}
    assert statuses[made["stack_name"]] == statuses[made["nested"]["StackName"]] == "DELETE_COMPLETE"
    assert made["nested_outputs"]["EndpointName"] not in [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]]
    targets = local_aws["client"]("application-autoscaling").describe_scalable_targets(ServiceNamespace="sagemaker")
    assert all(made["nested_outputs"]["EndpointName"] not in t["ResourceId"] for t in targets["ScalableTargets"])
