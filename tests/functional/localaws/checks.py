"""Checks of AWS behaviour this project's template relies on, runnable against any endpoint.

Each check takes a boto3 session and the endpoint URL and returns ``(ok, detail)``; the fix tests run every
check against a stock ``moto_server`` process (expect ``ok`` False: the gap) and against ``localaws.server``
(expect True). They never raise for the behaviour under test: an API error is a failed check.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from typing import Any, Callable

import botocore.exceptions

Check = Callable[[Any, str], "tuple[bool, str]"]
ROLE_ARN = "arn:aws:iam::123456789012:role/any"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _create(session: Any, *, template: dict | str, parameters: dict | None = None, name: str | None = None) -> dict:
    cfn = session.client("cloudformation")
    name = name or _name("check")
    cfn.create_stack(StackName=name, TemplateBody=template if isinstance(template, str) else json.dumps(template),
                     Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()])
    return cfn.describe_stacks(StackName=name)["Stacks"][0]


def _outputs(stack: dict) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}


def _bucket(session: Any) -> str:
    name = _name("checks")
    session.client("s3").create_bucket(Bucket=name)
    return name


HTTP_API_TEMPLATE = """
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: {Name: check, ProtocolType: HTTP}
  Integration:
    Type: AWS::ApiGatewayV2::Integration
    Properties: {ApiId: !Ref Api, IntegrationType: HTTP_PROXY, IntegrationUri: "https://example.com",
                 IntegrationMethod: POST, PayloadFormatVersion: "1.0"}
  Route:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Api, RouteKey: POST /detect, Target: !Sub "integrations/${Integration}"}
  Stage:
    Type: AWS::ApiGatewayV2::Stage
    Properties: {ApiId: !Ref Api, StageName: $default, AutoDeploy: true}
Outputs:
  Endpoint: {Value: !GetAtt Api.ApiEndpoint}
  ApiId: {Value: !Ref Api}
"""


def apigatewayv2_resources(session: Any, endpoint: str) -> tuple[bool, str]:
    try:
        stack = _create(session, template=HTTP_API_TEMPLATE)
    except Exception as error:  # noqa: BLE001 - any API failure is a failed check
        return False, f"create_stack failed: {error}"
    outputs = _outputs(stack)
    apis = {api["ApiId"]: api for api in session.client("apigatewayv2").get_apis()["Items"]}
    api_id = outputs.get("ApiId")
    if api_id not in apis:
        return False, f"no API behind the stack (outputs {outputs}, apis {list(apis)})"
    routes = [r["RouteKey"] for r in session.client("apigatewayv2").get_routes(ApiId=api_id)["Items"]]
    stages = [s["StageName"] for s in session.client("apigatewayv2").get_stages(ApiId=api_id)["Items"]]
    ok = routes == ["POST /detect"] and stages == ["$default"] and outputs.get("Endpoint") == apis[api_id]["ApiEndpoint"]
    return ok, f"routes {routes}, stages {stages}, outputs {outputs}"


CHILD_TEMPLATE = """
Parameters:
  Greeting: {Type: String}
Resources:
  Group:
    Type: AWS::Logs::LogGroup
    Properties: {LogGroupName: !Sub "/checks/${AWS::StackName}"}
Outputs:
  Echo: {Value: !Sub "${Greeting}-child"}
"""


def _parent_template(template_url: str) -> str:
    return f"""
Resources:
  Child:
    Type: AWS::CloudFormation::Stack
    Properties:
      TemplateURL: {template_url}
      Parameters: {{Greeting: hello}}
Outputs:
  FromChild: {{Value: !GetAtt Child.Outputs.Echo}}
  Sub: {{Value: !Sub "got ${{Child.Outputs.Echo}}"}}
"""


def nested_outputs(session: Any, endpoint: str) -> tuple[bool, str]:
    bucket = _bucket(session)
    session.client("s3").put_object(Bucket=bucket, Key="child.yaml", Body=CHILD_TEMPLATE.encode())
    try:
        stack = _create(session, template=_parent_template(f"https://{bucket}.s3.us-east-1.amazonaws.com/child.yaml"))
    except Exception as error:  # noqa: BLE001 - any API failure is a failed check
        return False, f"create_stack failed: {error}"
    outputs = _outputs(stack)
    return outputs == {"FromChild": "hello-child", "Sub": "got hello-child"}, f"outputs {outputs}"


def local_template_url(session: Any, endpoint: str) -> tuple[bool, str]:
    bucket = _bucket(session)
    session.client("s3").put_object(Bucket=bucket, Key="nested/child.yaml", Body=CHILD_TEMPLATE.encode())
    template = _parent_template(f"{endpoint}/{bucket}/nested/child.yaml").replace(
        "Outputs:\n  FromChild: {Value: !GetAtt Child.Outputs.Echo}\n  Sub: {Value: !Sub \"got ${Child.Outputs.Echo}\"}\n",
        "")
    try:
        stack = _create(session, template=template)
    except Exception as error:  # noqa: BLE001 - any API failure is a failed check
        return False, f"create_stack failed: {error}"
    resources = session.client("cloudformation").describe_stack_resources(StackName=stack["StackName"])
    return stack["StackStatus"] == "CREATE_COMPLETE" and len(resources["StackResources"]) == 1, stack["StackStatus"]


OUTPUT_TEMPLATE = """
Parameters:
  Suffix: {Type: String}
Resources:
  Group:
    Type: AWS::Logs::LogGroup
    Properties: {LogGroupName: !Sub "/checks/${Suffix}"}
Outputs:
  GroupName: {Value: !Ref Group}
"""


def change_set_outputs(session: Any, endpoint: str) -> tuple[bool, str]:
    cfn = session.client("cloudformation")
    name, suffix = _name("changeset"), uuid.uuid4().hex[:8]
    try:
        change_set = cfn.create_change_set(
            StackName=name, ChangeSetName="c1", ChangeSetType="CREATE", TemplateBody=OUTPUT_TEMPLATE,
            Parameters=[{"ParameterKey": "Suffix", "ParameterValue": suffix}])
        cfn.execute_change_set(ChangeSetName=change_set["Id"])
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    except Exception as error:  # noqa: BLE001 - any API failure is a failed check
        return False, f"change set failed: {error}"
    outputs = _outputs(stack)
    return outputs == {"GroupName": f"/checks/{suffix}"}, f"{stack['StackStatus']}, outputs {outputs}"


CONSTRAINED_TEMPLATE = """
Parameters:
  Backend: {Type: String, AllowedValues: [lambda, gpu]}
  Memory: {Type: Number, MinValue: 512, Default: 1024}
Resources:
  Group:
    Type: AWS::Logs::LogGroup
    Properties: {LogGroupName: !Sub "/checks/${AWS::StackName}"}
"""


def parameter_constraints(session: Any, endpoint: str) -> tuple[bool, str]:
    results = []
    for parameters, expected in (({"Backend": "tpu"}, "Parameter 'Backend' must be one of AllowedValues"),
                                 ({"Backend": "gpu", "Memory": "64"},
                                  "Parameter 'Memory' must be a number not less than 512")):
        try:
            stack = _create(session, template=CONSTRAINED_TEMPLATE, parameters=parameters)
            results.append((False, f"{parameters} accepted: {stack['StackStatus']}"))
        except botocore.exceptions.ClientError as error:
            message = error.response["Error"]["Message"]
            results.append((error.response["Error"]["Code"] == "ValidationError" and message == expected, message))
        except Exception as error:  # noqa: BLE001 - any other API failure is a failed check
            results.append((False, f"{parameters}: {error}"))
    return all(ok for ok, _ in results), "; ".join(detail for _, detail in results)


def _failed_events(session: Any, stack_name: str) -> list[dict]:
    events = session.client("cloudformation").describe_stack_events(StackName=stack_name)["StackEvents"]
    return [e for e in events if e["ResourceStatus"].endswith("_FAILED")]


def rollback(session: Any, endpoint: str) -> tuple[bool, str]:
    name = _name("rollback")
    bucket_name = _name("dup")
    # The output refers to the failed resource: reading the rolled-back stack must not create it after all.
    template = {"Resources": {
        "First": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": bucket_name}},
        "Second": {"Type": "AWS::S3::Bucket", "DependsOn": "First", "Properties": {"BucketName": bucket_name}},
    }, "Outputs": {"SecondName": {"Value": {"Ref": "Second"}}}}
    try:
        stack = _create(session, template=template, name=name)
    except Exception as error:  # noqa: BLE001 - any API failure is a failed check
        return False, f"create_stack call itself failed: {error}"
    failed = _failed_events(session, name)
    leftover = bucket_name in [b["Name"] for b in session.client("s3").list_buckets()["Buckets"]]
    resources = session.client("cloudformation").describe_stack_resources(StackName=name)["StackResources"]
    ok = (stack["StackStatus"] == "ROLLBACK_COMPLETE" and [e["LogicalResourceId"] for e in failed] == ["Second"]
          and bool(failed[0].get("ResourceStatusReason")) and not leftover and not stack.get("Outputs")
          and not resources)
    return ok, f"{stack['StackStatus']}, outputs {stack.get('Outputs')}, resources {len(resources)}, failed {[(e['LogicalResourceId'], e.get('ResourceStatusReason')) for e in failed]}, bucket left: {leftover}"


def _function_template(bucket: str, key: str) -> dict:
    return {"Resources": {"Fn": {"Type": "AWS::Lambda::Function", "Properties": {
        "Runtime": "python3.12", "Handler": "app.handler", "Role": ROLE_ARN,
        "Code": {"S3Bucket": bucket, "S3Key": key}}}}}


def lambda_code_required(session: Any, endpoint: str) -> tuple[bool, str]:
    bucket, name = _bucket(session), _name("nocode")
    try:
        stack = _create(session, template=_function_template(bucket, "missing/lambda.zip"), name=name)
    except Exception as error:  # noqa: BLE001 - any API failure is a failed check
        return False, f"create_stack call itself failed: {error}"
    failed = _failed_events(session, name)
    reason = failed[0].get("ResourceStatusReason", "") if failed else ""
    return stack["StackStatus"] == "ROLLBACK_COMPLETE" and "NoSuchKey" in reason, f"{stack['StackStatus']}: {reason}"


HANDLER_SOURCE = """
import os
def handler(event, context):
    return {"sum": event["a"] + event["b"], "greeting": os.environ["GREETING"],
            "function": context.function_name}
"""


def _role(session: Any) -> str:
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                      "Principal": {"Service": "lambda.amazonaws.com"}}]}
    return session.client("iam").create_role(RoleName=_name("fn"), AssumeRolePolicyDocument=json.dumps(trust))[
        "Role"]["Arn"]


def lambda_invoke(session: Any, endpoint: str) -> tuple[bool, str]:
    role_arn = _role(session)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", HANDLER_SOURCE)
    name = _name("adder")
    client = session.client("lambda")
    client.create_function(FunctionName=name, Runtime="python3.12", Role=role_arn, Handler="app.handler",
                           Code={"ZipFile": buffer.getvalue()}, Timeout=30,
                           Environment={"Variables": {"GREETING": "hi"}})
    try:
        reply = client.invoke(FunctionName=name, Payload=json.dumps({"a": 2, "b": 40}))
    except Exception as error:  # noqa: BLE001 - any API failure is a failed check
        return False, f"invoke failed: {error}"
    payload = reply["Payload"].read()
    expected = {"sum": 42, "greeting": "hi", "function": name}
    try:
        ok = json.loads(payload) == expected and "FunctionError" not in reply
    except ValueError:
        ok = False
    return ok, f"payload {payload[:300]!r}, error {reply.get('FunctionError')}"


ACCELERATOR_INSTANCE_TYPES = ("ml.g5.xlarge", "ml.g6.2xlarge", "ml.inf2.xlarge", "ml.inf2.48xlarge")


def _sagemaker_model(session: Any) -> str:
    name = _name("model")
    session.client("sagemaker").create_model(
        ModelName=name, ExecutionRoleArn=ROLE_ARN,
        PrimaryContainer={"Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6.0-gpu",
                          "ModelDataUrl": "s3://models/m/gpu/model.tar.gz"})
    return name


def sagemaker_instance_types(session: Any, endpoint: str) -> tuple[bool, str]:
    model, results = _sagemaker_model(session), []
    for instance_type in ACCELERATOR_INSTANCE_TYPES:
        try:
            session.client("sagemaker").create_endpoint_config(
                EndpointConfigName=_name("config"),
                ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": model, "InstanceType": instance_type,
                                     "InitialInstanceCount": 1}])
            results.append((True, f"{instance_type} accepted"))
        except botocore.exceptions.ClientError as error:
            results.append((False, f"{instance_type}: {error.response['Error']['Message'][:80]}"))
    return all(ok for ok, _ in results), "; ".join(detail for _, detail in results)


AUTOSCALING_TEMPLATE = """
Resources:
  Model:
    Type: AWS::SageMaker::Model
    Properties:
      ExecutionRoleArn: arn:aws:iam::123456789012:role/any
      PrimaryContainer: {Image: "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6.0-gpu",
                         ModelDataUrl: "s3://models/m/gpu/model.tar.gz"}
  Config:
    Type: AWS::SageMaker::EndpointConfig
    Properties:
      ProductionVariants:
        - {VariantName: AllTraffic, ModelName: !GetAtt Model.ModelName, InstanceType: ml.g4dn.xlarge,
           InitialInstanceCount: 1}
  Endpoint:
    Type: AWS::SageMaker::Endpoint
    Properties: {EndpointConfigName: !GetAtt Config.EndpointConfigName}
  Target:
    Type: AWS::ApplicationAutoScaling::ScalableTarget
    Properties:
      ServiceNamespace: sagemaker
      ScalableDimension: sagemaker:variant:DesiredInstanceCount
      ResourceId: !Sub "endpoint/${Endpoint.EndpointName}/variant/AllTraffic"
      MinCapacity: 1
      MaxCapacity: 3
  Policy:
    Type: AWS::ApplicationAutoScaling::ScalingPolicy
    Properties:
      PolicyName: per-instance
      PolicyType: TargetTrackingScaling
      ScalingTargetId: !Ref Target
      TargetTrackingScalingPolicyConfiguration:
        TargetValue: 600
        PredefinedMetricSpecification: {PredefinedMetricType: SageMakerVariantInvocationsPerInstance}
Outputs:
  EndpointName: {Value: !GetAtt Endpoint.EndpointName}
  PolicyArn: {Value: !Ref Policy}
"""


def applicationautoscaling_resources(session: Any, endpoint: str) -> tuple[bool, str]:
    name = _name("autoscaling")
    try:
        stack = _create(session, template=AUTOSCALING_TEMPLATE, name=name)
    except Exception as error:  # noqa: BLE001 - any API failure is a failed check
        return False, f"create_stack failed: {error}"
    outputs = _outputs(stack)
    resource_id = f"endpoint/{outputs.get('EndpointName')}/variant/AllTraffic"
    scaling = session.client("application-autoscaling")
    targets = scaling.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource_id])[
        "ScalableTargets"]
    policies = [p for p in scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
                if p["ResourceId"] == resource_id]
    registered = ([(t["MinCapacity"], t["MaxCapacity"]) for t in targets] == [(1, 3)]
                  and [(p["PolicyName"], p["PolicyARN"], p["TargetTrackingScalingPolicyConfiguration"]["TargetValue"])
                       for p in policies] == [("per-instance", outputs.get("PolicyArn"), 600.0)])
    session.client("cloudformation").delete_stack(StackName=name)
    left = scaling.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource_id])[
        "ScalableTargets"]
    return (stack["StackStatus"] == "CREATE_COMPLETE" and registered and not left,
            f"{stack['StackStatus']}, targets {targets}, policies {len(policies)}, left after delete {len(left)}")


CONDITIONAL_TEMPLATE = """
Parameters:
  Wanted: {Type: String, Default: "no"}
Conditions:
  IsWanted: !Equals [!Ref Wanted, "yes"]
Resources:
  Always:
    Type: AWS::Logs::LogGroup
    Properties: {LogGroupName: !Sub "/checks/${AWS::StackName}/always"}
  Sometimes:
    Type: AWS::Logs::LogGroup
    Condition: IsWanted
    Properties: {LogGroupName: !Sub "/checks/${AWS::StackName}/sometimes"}
"""


def conditional_resources(session: Any, endpoint: str) -> tuple[bool, str]:
    try:
        stack = _create(session, template=CONDITIONAL_TEMPLATE)
        resources = session.client("cloudformation").describe_stack_resources(StackName=stack["StackName"])[
            "StackResources"]
    except Exception as error:  # noqa: BLE001 - any API failure is a failed check
        return False, f"failed: {error}"
    listed = [r.get("LogicalResourceId") for r in resources]
    return listed == ["Always"], f"listed {listed}"


CHECKS: dict[str, Check] = {
    "apigatewayv2_resources": apigatewayv2_resources,
    "nested_outputs": nested_outputs,
    "local_template_url": local_template_url,
    "change_set_outputs": change_set_outputs,
    "parameter_constraints": parameter_constraints,
    "rollback": rollback,
    "lambda_code_required": lambda_code_required,
    "sagemaker_instance_types": sagemaker_instance_types,
    "applicationautoscaling_resources": applicationautoscaling_resources,
    "conditional_resources": conditional_resources,
    "lambda_invoke": lambda_invoke,
}
