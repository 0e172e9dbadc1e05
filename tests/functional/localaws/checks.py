"""Checks of AWS behaviour this project's template relies on, runnable against any endpoint.

Each check takes a boto3 session and the endpoint URL and returns ``(ok, detail)``; the fix tests run every
check against a stock ``moto_server`` process (expect ``ok`` False: the gap) and against ``localaws.server``
(expect True). They never raise for the behaviour under test: an API error is a failed check.
"""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from typing import Any, Callable

import botocore.exceptions

from tests.support.scratch import shared_dir

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
        "Runtime": "python3.13", "Handler": "app.handler", "Role": ROLE_ARN,
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
    client.create_function(FunctionName=name, Runtime="python3.13", Role=role_arn, Handler="app.handler",
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


ALARM_TEMPLATE = """
Resources:
  Topic:
    Type: AWS::SNS::Topic
  Rate:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Metrics:
        - {Id: rate, Expression: 100 * errors / requests, ReturnData: true}
        - Id: errors
          ReturnData: false
          MetricStat:
            Metric: {Namespace: AWS/ApiGateway, MetricName: 5xx, Dimensions: [{Name: ApiId, Value: api}]}
            Period: 300
            Stat: Sum
        - Id: requests
          ReturnData: false
          MetricStat:
            Metric: {Namespace: AWS/ApiGateway, MetricName: Count, Dimensions: [{Name: ApiId, Value: api}]}
            Period: 300
            Stat: Sum
      EvaluationPeriods: 1
      Threshold: "1"
      ComparisonOperator: GreaterThanThreshold
      AlarmActions: [!Ref Topic]
Outputs:
  Name: {Value: !Ref Rate}
"""


def cloudwatch_alarms(session: Any, endpoint: str) -> tuple[bool, str]:
    try:
        stack = _create(session, template=ALARM_TEMPLATE)
        name = _outputs(stack).get("Name")
        alarms = session.client("cloudwatch").describe_alarms(AlarmNames=[name] if name else [])["MetricAlarms"]
    except Exception as error:  # noqa: BLE001 - any API failure is a failed check
        return False, f"failed: {error}"
    if len(alarms) != 1:
        return False, f"alarm {name!r}: {len(alarms)} record(s)"
    alarm = alarms[0]
    topics = [t["TopicArn"] for t in session.client("sns").list_topics()["Topics"]]
    got = ([m["Id"] for m in alarm.get("Metrics", [])], alarm["Threshold"], alarm["AlarmActions"])
    return (got[:2] == (["rate", "errors", "requests"], 1.0) and len(got[2]) == 1 and got[2][0] in topics,
            f"{got}, topics {topics}")


CONDITIONAL_UPDATE_TEMPLATE = """
Parameters:
  Wanted: {Type: String, Default: "no"}
  Timeout: {Type: String, Default: "30"}
Conditions:
  IsWanted: !Equals [!Ref Wanted, "yes"]
Resources:
  Always:
    Type: AWS::SQS::Queue
    Properties: {VisibilityTimeout: !Ref Timeout}
  Sometimes:
    Type: AWS::SQS::Queue
    Condition: IsWanted
    Properties: {VisibilityTimeout: !Ref Timeout}
"""


def conditional_updates(session: Any, endpoint: str) -> tuple[bool, str]:
    """Update a parameter that an uncreated conditional resource references, then turn the condition on."""
    cfn = session.client("cloudformation")
    statuses = []
    try:
        stack = _create(session, template=CONDITIONAL_UPDATE_TEMPLATE)
        for parameters in ({"Wanted": "no", "Timeout": "60"}, {"Wanted": "yes", "Timeout": "60"}):
            cfn.update_stack(StackName=stack["StackName"], TemplateBody=CONDITIONAL_UPDATE_TEMPLATE,
                             Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()])
            deadline = time.monotonic() + 30
            while (status := cfn.describe_stacks(StackName=stack["StackName"])["Stacks"][0]["StackStatus"]) \
                    .endswith("_IN_PROGRESS") and time.monotonic() < deadline:
                time.sleep(0.2)
            statuses.append(status)
        listed = sorted(r["LogicalResourceId"] for r in cfn.describe_stack_resources(
            StackName=stack["StackName"])["StackResources"] if r.get("LogicalResourceId"))
    except Exception as error:  # noqa: BLE001 - any API failure is a failed check
        return False, f"failed after {statuses}: {error}"
    return (statuses == ["UPDATE_COMPLETE", "UPDATE_COMPLETE"] and listed == ["Always", "Sometimes"],
            f"statuses {statuses}, resources {listed}")


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
    "cloudwatch_alarms": cloudwatch_alarms,
    "conditional_resources": conditional_resources,
    "conditional_updates": conditional_updates,
    "lambda_invoke": lambda_invoke,
}


# --- Step Functions, S3 notifications, asynchronous invokes (the batch issue) -------------------------------

SFN_ROLE = "arn:aws:iam::123456789012:role/sfn"


def _enable_execution(endpoint: str) -> None:
    """What a user of a stock server does to make it execute state machines (moto's server-mode config)."""
    import urllib.request

    request = urllib.request.Request(f"{endpoint}/moto-api/config", method="POST",
                                     data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode())
    urllib.request.urlopen(request, timeout=10).read()


def _run_machine(session: Any, definition: dict, execution_input: Any, *, timeout_s: float = 90) -> dict:
    """Create a state machine, run it once, return the finished execution (raises on API errors)."""
    sfn = session.client("stepfunctions")
    arn = sfn.create_state_machine(name=_name("check"), definition=json.dumps(definition), roleArn=SFN_ROLE)[
        "stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(execution_input))["executionArn"]
    return _finished(sfn, execution, timeout_s=timeout_s)


def _finished(sfn: Any, execution: str, *, timeout_s: float) -> dict:
    """Poll until the execution ends; a SUCCEEDED one without its output yet counts as still ending (stock
    moto sets the status a moment before the output, a race no check here is about)."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = sfn.describe_execution(executionArn=execution)
        settled = described["status"] != "RUNNING" and (described["status"] != "SUCCEEDED" or "output" in described)
        if settled or time.monotonic() > deadline:
            return described
        time.sleep(0.1)


def _distributed_map(child: dict, **fields: Any) -> dict:
    return {"StartAt": "Map", "States": {"Map": {
        "Type": "Map", "End": True, "ItemsPath": "$.items", **fields,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                          "StartAt": "Child", "States": {"Child": child}}}}}


PASS = {"Type": "Pass", "End": True}
FAIL_SMALL = {"Type": "Choice", "Choices": [{"Variable": "$", "NumericLessThanEquals": 2, "Next": "Fail"}],
              "Default": "Done"}


def _fail_small_states() -> dict:
    return {"Child": FAIL_SMALL, "Fail": {"Type": "Fail", "Error": "Small", "Cause": "item <= 2"},
            "Done": {"Type": "Pass", "End": True}}


def _map_with_states(states: dict, **fields: Any) -> dict:
    definition = _distributed_map(PASS, **fields)
    definition["States"]["Map"]["ItemProcessor"]["States"] = states
    return definition


def _execution_outcome(described: dict) -> str:
    return f"{described['status']} {described.get('error', '')} {described.get('output', '')[:200]}"


def stepfunctions_cloudformation(session: Any, endpoint: str) -> tuple[bool, str]:
    _enable_execution(endpoint)
    template = {"Resources": {"Machine": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
        "StateMachineType": "STANDARD", "RoleArn": SFN_ROLE,
        "DefinitionString": json.dumps({"StartAt": "Hello", "States": {"Hello": {
            "Type": "Pass", "Result": {"greeting": "hi"}, "End": True}}})}}},
        "Outputs": {"Arn": {"Value": {"Ref": "Machine"}}}}
    try:
        stack = _create(session, template=template)
        arn = _outputs(stack)["Arn"]
        sfn = session.client("stepfunctions")
        execution = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
        described = _finished(sfn, execution, timeout_s=10)
    except Exception as error:  # noqa: BLE001 - any API failure is a failed check
        return False, f"failed: {error}"
    return described["status"] == "SUCCEEDED" and json.loads(described["output"]) == {"greeting": "hi"}, \
        _execution_outcome(described)


PAGINATION_OBJECTS = 1005


def stepfunctions_list_pagination(session: Any, endpoint: str) -> tuple[bool, str]:
    _enable_execution(endpoint)
    bucket = _bucket(session)
    s3 = session.client("s3")
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda index: s3.put_object(Bucket=bucket, Key=f"many/{index:05d}", Body=b""),
                      range(PAGINATION_OBJECTS)))
    definition = _distributed_map(PASS, MaxConcurrency=50, ItemReader={
        "Resource": "arn:aws:states:::s3:listObjectsV2", "Parameters": {"Bucket": bucket, "Prefix": "many/"}})
    del definition["States"]["Map"]["ItemsPath"]
    try:
        described = _run_machine(session, definition, {})
    except Exception as error:  # noqa: BLE001 - any API failure is a failed check
        return False, f"failed: {str(error)[:300]}"
    if described["status"] != "SUCCEEDED":
        return False, _execution_outcome(described)
    keys = [item["Key"] for item in json.loads(described["output"])]
    return len(keys) == PAGINATION_OBJECTS and len(set(keys)) == PAGINATION_OBJECTS, f"{len(keys)} items processed"


def stepfunctions_item_batcher(session: Any, endpoint: str) -> tuple[bool, str]:
    _enable_execution(endpoint)
    definition = _distributed_map(PASS, ItemBatcher={"MaxItemsPerBatch": 10, "BatchInput": {"tag.$": "$.tag"}})
    try:
        described = _run_machine(session, definition, {"items": list(range(25)), "tag": "t1"})
    except Exception as error:  # noqa: BLE001 - any API failure is a failed check
        return False, f"failed: {str(error)[:300]}"
    if described["status"] != "SUCCEEDED":
        return False, _execution_outcome(described)
    batches = json.loads(described["output"])
    expected = [{"Items": list(range(start, min(start + 10, 25))), "BatchInput": {"tag": "t1"}} for start in (0, 10, 20)]
    return batches == expected, f"batches {batches}"


def stepfunctions_express_children(session: Any, endpoint: str) -> tuple[bool, str]:
    _enable_execution(endpoint)
    definition = _distributed_map(PASS)
    definition["States"]["Map"]["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] = "EXPRESS"
    try:
        described = _run_machine(session, definition, {"items": [1, 2, 3]})
    except Exception as error:  # noqa: BLE001 - any API failure is a failed check
        return False, f"failed: {str(error)[:300]}"
    return described["status"] == "SUCCEEDED" and json.loads(described["output"]) == [1, 2, 3], \
        _execution_outcome(described)


def stepfunctions_result_writer(session: Any, endpoint: str) -> tuple[bool, str]:
    _enable_execution(endpoint)
    bucket = _bucket(session)
    definition = _map_with_states(_fail_small_states(), ToleratedFailurePercentage=90.0, ResultWriter={
        "Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": bucket, "Prefix": "runs"},
        "WriterConfig": {"OutputType": "JSON", "Transformation": "COMPACT"}})
    try:
        described = _run_machine(session, definition, {"items": [1, 3, 4]})
        if described["status"] != "SUCCEEDED":
            return False, _execution_outcome(described)
        key = json.loads(described["output"])["ResultWriterDetails"]["Key"]
        s3 = session.client("s3")
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        files = {status: [json.loads(s3.get_object(Bucket=bucket, Key=f["Key"])["Body"].read()) for f in entries]
                 for status, entries in manifest["ResultFiles"].items()}
    except Exception as error:  # noqa: BLE001 - any API failure is a failed check
        return False, f"failed: {str(error)[:300]}"
    succeeded = [record for part in files.get("SUCCEEDED", []) for record in part]
    failed = [record for part in files.get("FAILED", []) for record in part]
    ok = ([(r["Input"], r["Output"], r["Status"]) for r in succeeded] == [(3, 3, "SUCCEEDED"), (4, 4, "SUCCEEDED")]
          and [(r["Input"], r["Status"], r["Error"], r["Cause"]) for r in failed] == [(1, "FAILED", "Small", "item <= 2")])
    return ok, f"manifest files {manifest['ResultFiles']}, succeeded {succeeded}, failed {failed}"


def stepfunctions_tolerance(session: Any, endpoint: str) -> tuple[bool, str]:
    _enable_execution(endpoint)
    outcomes = []
    try:
        for percentage in (10, 30):  # 2 of 10 items fail: 20 %
            described = _run_machine(session, _map_with_states(_fail_small_states(), ToleratedFailurePercentage=percentage),
                                     {"items": list(range(1, 11))})
            outcomes.append((percentage, described["status"], described.get("error")))
    except Exception as error:  # noqa: BLE001 - any API failure is a failed check
        return False, f"failed: {str(error)[:300]}"
    return outcomes == [(10, "FAILED", "States.ExceedToleratedFailureThreshold"), (30, "SUCCEEDED", None)], \
        f"outcomes {outcomes}"


def _receive(session: Any, queue_url: str, *, timeout_s: float) -> list[dict]:
    sqs, messages = session.client("sqs"), []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reply = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages += [json.loads(m["Body"]) for m in reply.get("Messages", [])]
        if messages:
            break
    return messages


def s3_cloudformation_notifications(session: Any, endpoint: str) -> tuple[bool, str]:
    template = {"Resources": {
        "Queue": {"Type": "AWS::SQS::Queue"},
        "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"NotificationConfiguration": {"QueueConfigurations": [{
            "Event": "s3:ObjectCreated:*", "Queue": {"Fn::GetAtt": ["Queue", "Arn"]},
            "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": "in/"}]}}}]}}}},
        "Outputs": {"Bucket": {"Value": {"Ref": "Bucket"}}, "QueueUrl": {"Value": {"Ref": "Queue"}}}}
    try:
        outputs = _outputs(_create(session, template=template))
        s3 = session.client("s3")
        configured = s3.get_bucket_notification_configuration(Bucket=outputs["Bucket"]).get("QueueConfigurations", [])
        s3.put_object(Bucket=outputs["Bucket"], Key="elsewhere/a.jpg", Body=b"x")
        s3.put_object(Bucket=outputs["Bucket"], Key="in/a.jpg", Body=b"x")
        messages = _receive(session, outputs["QueueUrl"], timeout_s=3)
    except Exception as error:  # noqa: BLE001 - any API failure is a failed check
        return False, f"failed: {str(error)[:300]}"
    from urllib.parse import unquote_plus

    keys = [unquote_plus(record["s3"]["object"]["key"]) for message in messages for record in message.get("Records", [])]
    return len(configured) == 1 and keys == ["in/a.jpg"], f"configured {configured}, notified keys {keys}"


FAILING_HANDLER = """
import os
def handler(event, context):
    with open(os.environ["ATTEMPTS_FILE"], "a") as attempts:
        attempts.write("attempt\\n")
    raise RuntimeError("forced failure")
"""


def lambda_async_invoke(session: Any, endpoint: str) -> tuple[bool, str]:
    import os
    role_arn = _role(session)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", FAILING_HANDLER)
    attempts_file = os.path.join(shared_dir("async-attempts-"), "attempts")  # the function's /tmp is its own
    name, client, sqs = _name("failing"), session.client("lambda"), session.client("sqs")
    queue_url = sqs.create_queue(QueueName=_name("dlq"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    try:
        function_arn = client.create_function(
            FunctionName=name, Runtime="python3.13", Role=role_arn, Handler="app.handler",
            Code={"ZipFile": buffer.getvalue()}, Timeout=30, Environment={"Variables": {"ATTEMPTS_FILE": attempts_file}},
        )["FunctionArn"]
        client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1, DestinationConfig={
            "OnFailure": {"Destination": queue_arn}})
        started = time.monotonic()
        status = client.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"n": 1}')["StatusCode"]
        returned_s = time.monotonic() - started
        bucket = _bucket(session)
        session.client("s3").put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
            "LambdaFunctionConfigurations": [{"LambdaFunctionArn": function_arn, "Events": ["s3:ObjectCreated:*"]}]})
        session.client("s3").put_object(Bucket=bucket, Key="up.jpg", Body=b"x")
        records = []
        deadline = time.monotonic() + 12  # retries wait 1 s here (LOCALAWS_ASYNC_RETRY_DELAYS_S)
        while len(records) < 2 and time.monotonic() < deadline:
            records += _receive(session, queue_url, timeout_s=2)
    except Exception as error:  # noqa: BLE001 - any API failure is a failed check
        return False, f"failed: {str(error)[:300]}"
    attempts = open(attempts_file).read().count("attempt") if os.path.exists(attempts_file) else 0
    payloads = sorted(json.dumps(r.get("requestPayload"), sort_keys=True)[:40] for r in records)
    ok = (status == 202 and returned_s < 5 and len(records) == 2 and attempts == 4
          and all(r["requestContext"]["condition"] == "RetriesExhausted" and r["requestContext"]["approximateInvokeCount"] == 2
                  for r in records)
          and any(r["requestPayload"] == {"n": 1} for r in records)
          and any(r["requestPayload"].get("Records", [{}])[0].get("s3", {}).get("object", {}).get("key") == "up.jpg"
                  for r in records if isinstance(r.get("requestPayload"), dict)))
    return ok, f"status {status} in {returned_s:.1f} s, {attempts} attempts, destination records {payloads}"


CHECKS.update({
    "stepfunctions_cloudformation": stepfunctions_cloudformation,
    "stepfunctions_list_pagination": stepfunctions_list_pagination,
    "stepfunctions_item_batcher": stepfunctions_item_batcher,
    "stepfunctions_express_children": stepfunctions_express_children,
    "stepfunctions_result_writer": stepfunctions_result_writer,
    "stepfunctions_tolerance": stepfunctions_tolerance,
    "s3_cloudformation_notifications": s3_cloudformation_notifications,
    "lambda_async_invoke": lambda_async_invoke,
})
