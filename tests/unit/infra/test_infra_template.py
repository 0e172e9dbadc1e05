"""Contract of template.yaml and the nested backend templates, asserted on the evaluated templates."""

from __future__ import annotations

import re

import pytest

from tests.unit.infra.cfn_view import (
    NESTED_TEMPLATES,
    REPO_ROOT,
    StackView,
    getatt_token,
    load_template,
    ref_token,
)

BACKENDS = ["lambda", "gpu", "inferentia"]
NESTED_STACK_OF = {"lambda": set(), "gpu": {"GpuStack"}, "inferentia": {"InferentiaStack"}}
MODEL_URI = "s3://my-models/dfine-s/"
MODEL_PREFIX_ARN = "arn:aws:s3:::my-models/dfine-s/*"


def statements_for_role(stack: StackView, role: str) -> list[dict]:
    """Every IAM statement that ends up attached to ``role``: inline policies plus AWS::IAM::Policy resources."""
    found = []
    for policy in stack.resolve(stack.resources[role]["Properties"].get("Policies", [])):
        found += policy["PolicyDocument"]["Statement"]
    for resource in stack.resources.values():
        if resource["Type"] == "AWS::IAM::Policy":
            props = stack.resolve(resource["Properties"])
            if ref_token(role) in props["Roles"]:
                found += props["PolicyDocument"]["Statement"]
    return found


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def permissions(statements: list[dict]) -> set[tuple[str, str]]:
    """Flatten statements into (action, resource) pairs; every statement must be an Allow."""
    assert all(s["Effect"] == "Allow" for s in statements)
    return {(action, resource) for s in statements for action in as_list(s["Action"]) for resource in as_list(s["Resource"])}


# --- parameters ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parameter", "allowed"),
    [
        ("Backend", ["lambda", "gpu", "inferentia"]),
        ("Architecture", ["x86_64", "arm64"]),
        ("AuthMode", ["NONE", "IAM", "JWT"]),
    ],
)
def test_enumerated_parameters_allow_exactly_their_values(root_template, parameter, allowed):
    assert root_template["Parameters"][parameter]["AllowedValues"] == allowed


def test_log_retention_allows_only_cloudwatch_values(root_template):
    allowed = root_template["Parameters"]["LogRetentionDays"]["AllowedValues"]
    assert allowed[:6] == [1, 3, 5, 7, 14, 30] and 3653 in allowed
    assert root_template["Parameters"]["LogRetentionDays"]["Default"] in allowed


@pytest.mark.parametrize(
    ("parameter", "minimum", "maximum"),
    [("MemorySize", 512, 10240), ("Timeout", 3, 900), ("ThrottlingBurstLimit", 1, 5000), ("ThrottlingRateLimit", 1, 10000)],
)
def test_numeric_parameters_are_bounded(root_template, parameter, minimum, maximum):
    spec = root_template["Parameters"][parameter]
    assert (spec["Type"], spec["MinValue"], spec["MaxValue"]) == ("Number", minimum, maximum)
    assert minimum <= spec["Default"] <= maximum


@pytest.mark.parametrize(
    ("parameter", "value", "accepted"),
    [
        ("ModelS3Uri", "s3://my-models/dfine-s/", True),
        ("ModelS3Uri", "s3://my.models-1/a/b/c/", True),
        ("ModelS3Uri", "", False),
        ("ModelS3Uri", "s3://my-models", False),
        ("ModelS3Uri", "s3://my-models/", False),  # the whole bucket is not a model prefix
        ("ModelS3Uri", "s3://my-models/dfine-s", False),  # no trailing slash: would also match dfine-s2/
        ("ModelS3Uri", "s3://my-models/dfine*/", False),  # wildcards would widen the IAM grant
        ("ModelS3Uri", "s3://My-Models/dfine-s/", False),
        ("ModelS3Uri", "https://my-models.s3.amazonaws.com/dfine-s/", False),
        ("CodeS3Bucket", "my-code", True),
        ("CodeS3Bucket", "", False),
        ("CodeS3Bucket", "s3://my-code", False),
        ("CodeS3Key", "serverless-detection/dist/lambda-x86_64.zip", True),
        ("CodeS3Key", "lambda.zip", True),
        ("CodeS3Key", "", False),
        ("CodeS3Key", "dist/lambda-x86_64.tar.gz", False),
        ("ScoreThreshold", "0.5", True),
        ("ScoreThreshold", "0", True),
        ("ScoreThreshold", "1", True),
        ("ScoreThreshold", "1.0", True),
        ("ScoreThreshold", "", False),
        ("ScoreThreshold", "1.5", False),
        ("ScoreThreshold", "-0.1", False),
        ("ScoreThreshold", "high", False),
        ("TemplatesS3Bucket", "", True),
        ("TemplatesS3Bucket", "tcat-serverless-detection-abc", True),
        ("TemplatesS3Bucket", "Bad_Bucket", False),
        ("TemplatesS3KeyPrefix", "", True),
        ("TemplatesS3KeyPrefix", "serverless-detection/", True),
        ("TemplatesS3KeyPrefix", "serverless-detection", False),
    ],
)
def test_string_parameter_patterns(root_template, parameter, value, accepted):
    # CloudFormation matches AllowedPattern against the whole value (Java regex; these are also valid Python).
    pattern = root_template["Parameters"][parameter]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, value)) is accepted


def test_defaults_satisfy_their_own_patterns(root_template, nested_templates):
    for template in [root_template, *nested_templates.values()]:
        for name, spec in template["Parameters"].items():
            if "AllowedPattern" in spec and "Default" in spec:
                assert re.fullmatch(spec["AllowedPattern"], str(spec["Default"])), name
            if "AllowedValues" in spec and "Default" in spec:
                assert spec["Default"] in spec["AllowedValues"], name


# --- backend switch -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_creates_exactly_its_nested_stack(root_stack, backend):
    stack = root_stack(Backend=backend, TemplatesS3Bucket="tmpl", TemplatesS3KeyPrefix="serverless-detection/")
    nested = {name for name, r in stack.resources.items() if r["Type"] == "AWS::CloudFormation::Stack"}
    assert nested == NESTED_STACK_OF[backend]
    for name in nested:
        url = stack.resolve(stack.resources[name]["Properties"]["TemplateURL"])
        assert url == f"https://tmpl.s3.us-east-1.amazonaws.com/serverless-detection/infra/{backend}.yaml"
        assert (REPO_ROOT / "infra" / f"{backend}.yaml").is_file()


@pytest.mark.parametrize("backend", BACKENDS)
def test_function_points_at_its_backend(root_stack, backend):
    stack = root_stack(Backend=backend)
    env = stack.resolve(stack.resources["DetectFunction"]["Properties"]["Environment"]["Variables"])
    assert env["MODEL_URI"] == MODEL_URI
    assert env["SCORE_THRESHOLD"] == "0.5"
    assert env["INFERENCE_BATCH"] == "auto"
    assert env["BACKEND"] == backend
    expected = "" if backend == "lambda" else getatt_token(next(iter(NESTED_STACK_OF[backend])), "Outputs.EndpointName")
    assert env["ENDPOINT_NAME"] == expected


@pytest.mark.parametrize("backend", ["gpu", "inferentia"])
def test_nested_stack_parameters_and_outputs_match_the_child_template(root_stack, nested_templates, backend):
    stack = root_stack(Backend=backend)
    (name,) = NESTED_STACK_OF[backend]
    child = nested_templates[backend]
    passed = stack.resolve(stack.resources[name]["Properties"]["Parameters"])
    required = {p for p, spec in child["Parameters"].items() if "Default" not in spec}
    assert required <= set(passed) <= set(child["Parameters"])
    assert passed["ModelS3Uri"] == MODEL_URI
    # The child evaluates with exactly what the parent passes.
    StackView(child, passed)
    active_outputs = [o for o in stack.template["Outputs"].values() if stack.condition(o.get("Condition", "UsesEndpoint"))]
    resolved = repr(stack.resolve([*stack.resources.values(), *active_outputs]))
    used = set(re.findall(rf"getatt\({name}\.Outputs\.(\w+)\)", resolved))
    assert used and used <= set(child["Outputs"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_endpoint_output_only_with_an_accelerator(root_stack, backend):
    stack = root_stack(Backend=backend)
    output = stack.template["Outputs"]["EndpointName"]
    assert stack.condition(output["Condition"]) is (backend != "lambda")
    if backend != "lambda":
        assert stack.resolve(output["Value"]) == getatt_token(next(iter(NESTED_STACK_OF[backend])), "Outputs.EndpointName")


# --- least privilege ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_function_role_grants_only_model_reads_own_logs_and_own_endpoint(root_stack, backend):
    stack = root_stack(Backend=backend)
    log_group = stack.resolve({"Ref": "FunctionLogGroup"})
    expected = {
        ("s3:GetObject", MODEL_PREFIX_ARN),
        ("logs:CreateLogStream", f"arn:aws:logs:us-east-1:123456789012:log-group:{log_group}:*"),
        ("logs:PutLogEvents", f"arn:aws:logs:us-east-1:123456789012:log-group:{log_group}:*"),
    }
    if backend != "lambda":
        nested = next(iter(NESTED_STACK_OF[backend]))
        expected.add(("sagemaker:InvokeEndpoint", getatt_token(nested, "Outputs.EndpointArn")))
    assert permissions(statements_for_role(stack, "FunctionRole")) == expected


def test_function_logs_go_to_the_group_the_role_may_write(root_stack):
    stack = root_stack()
    props = stack.resolve(stack.resources["DetectFunction"]["Properties"])
    assert props["LoggingConfig"]["LogGroup"] == ref_token("FunctionLogGroup")
    assert props["Role"] == getatt_token("FunctionRole", "Arn")
    assert stack.resolve(stack.resources["FunctionLogGroup"]["Properties"]["RetentionInDays"]) == 30


@pytest.mark.parametrize(
    ("model_uri", "arn"),
    [
        ("s3://my-models/dfine-s/", "arn:aws:s3:::my-models/dfine-s/*"),
        ("s3://a.b-c/x/y/z/", "arn:aws:s3:::a.b-c/x/y/z/*"),
    ],
)
def test_model_prefix_is_split_out_of_the_uri(root_stack, model_uri, arn):
    stack = root_stack(ModelS3Uri=model_uri)
    assert ("s3:GetObject", arn) in permissions(statements_for_role(stack, "FunctionRole"))


@pytest.mark.parametrize("backend", ["gpu", "inferentia"])
def test_endpoint_role_reads_only_the_model_prefix(nested_templates, backend):
    stack = StackView(nested_templates[backend], {"ModelS3Uri": MODEL_URI})
    granted = permissions(statements_for_role(stack, "EndpointRole"))
    s3 = {p for p in granted if p[0].startswith("s3:")}
    assert s3 == {("s3:GetObject", MODEL_PREFIX_ARN)}
    ecr_pull = {r for a, r in granted if a in ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")}
    repository = nested_templates[backend]["Parameters"]["ImageRepository"]["Default"]
    assert ecr_pull == {f"arn:aws:ecr:us-east-1:763104351884:repository/{repository}"}
    # GetAuthorizationToken has no resource-level permissions; it is the only "*" grant.
    assert {a for a, r in granted if r == "*"} == {"ecr:GetAuthorizationToken"}
    logs = {r for a, r in granted if a.startswith("logs:")}
    assert logs == {"arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/*"}


@pytest.mark.parametrize("backend", ["gpu", "inferentia"])
def test_endpoint_serves_the_artifact_under_the_prefix(nested_templates, backend):
    stack = StackView(nested_templates[backend], {"ModelS3Uri": MODEL_URI})
    model = stack.resolve(stack.resources["Model"]["Properties"])
    assert model["ExecutionRoleArn"] == getatt_token("EndpointRole", "Arn")
    assert model["EnableNetworkIsolation"] is True
    assert model["PrimaryContainer"]["ModelDataUrl"] == f"{MODEL_URI}{backend}/model.tar.gz"
    assert model["PrimaryContainer"]["Image"].startswith("763104351884.dkr.ecr.us-east-1.amazonaws.com/")
    outputs = stack.resolve(stack.template["Outputs"])
    assert outputs["EndpointArn"]["Value"] == ref_token("Endpoint")  # Ref of an endpoint is its ARN
    assert outputs["EndpointName"]["Value"] == getatt_token("Endpoint", "EndpointName")


def test_default_instance_types(nested_templates):
    assert nested_templates["gpu"]["Parameters"]["InstanceType"]["Default"] == "ml.g4dn.xlarge"
    assert nested_templates["inferentia"]["Parameters"]["InstanceType"]["Default"] == "ml.inf2.xlarge"


# --- the API --------------------------------------------------------------------------------------------------


def test_function_runtime_and_sizing(root_stack):
    stack = root_stack(Architecture="arm64", MemorySize=3008, Timeout=20)
    props = stack.resolve(stack.resources["DetectFunction"]["Properties"])
    assert props["Runtime"] == "python3.13"
    assert props["Handler"] == "handler.handler"
    assert props["Architectures"] == ["arm64"]
    assert (props["MemorySize"], props["Timeout"]) == (3008, 20)
    assert props["Code"] == {"S3Bucket": "my-code", "S3Key": "serverless-detection/dist/lambda-x86_64.zip"}


def test_single_route_post_detect_proxies_to_the_function(root_stack):
    stack = root_stack()
    routes = [r for r in stack.resources.values() if r["Type"] == "AWS::ApiGatewayV2::Route"]
    assert [stack.resolve(r["Properties"]["RouteKey"]) for r in routes] == ["POST /detect"]
    route = stack.resolve(routes[0]["Properties"])
    assert route["ApiId"] == ref_token("HttpApi")
    assert route["Target"] == f"integrations/{ref_token('DetectIntegration')}"
    integration = stack.resolve(stack.resources["DetectIntegration"]["Properties"])
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["PayloadFormatVersion"] == "2.0"
    assert integration["IntegrationUri"] == getatt_token("DetectFunction", "Arn")
    assert stack.resolve(stack.resources["HttpApi"]["Properties"]["ProtocolType"]) == "HTTP"


@pytest.mark.parametrize(("auth_mode", "authorization"), [("NONE", "NONE"), ("IAM", "AWS_IAM")])
def test_auth_mode_sets_route_authorization(root_stack, auth_mode, authorization):
    stack = root_stack(AuthMode=auth_mode)
    assert stack.resolve(stack.resources["DetectRoute"]["Properties"]["AuthorizationType"]) == authorization


def test_invoke_permission_is_scoped_to_the_route(root_stack):
    stack = root_stack()
    permissions_ = [r for r in stack.resources.values() if r["Type"] == "AWS::Lambda::Permission"]
    assert len(permissions_) == 1
    props = stack.resolve(permissions_[0]["Properties"])
    method, path = stack.resolve(stack.resources["DetectRoute"]["Properties"]["RouteKey"]).split(" ")
    api = ref_token("HttpApi")
    assert props["SourceArn"] == f"arn:aws:execute-api:us-east-1:123456789012:{api}/*/{method}{path}"
    assert props["FunctionName"] == ref_token("DetectFunction")
    assert props["Principal"] == "apigateway.amazonaws.com"
    assert props["Action"] == "lambda:InvokeFunction"
    assert props["SourceAccount"] == "123456789012"


def test_stage_throttles_and_logs_access(root_stack):
    stack = root_stack(ThrottlingBurstLimit=7, ThrottlingRateLimit=3)
    stages = [r for r in stack.resources.values() if r["Type"] == "AWS::ApiGatewayV2::Stage"]
    assert len(stages) == 1
    props = stack.resolve(stages[0]["Properties"])
    assert props["StageName"] == "$default" and props["AutoDeploy"] is True
    assert props["DefaultRouteSettings"]["ThrottlingBurstLimit"] == 7
    assert props["DefaultRouteSettings"]["ThrottlingRateLimit"] == 3
    assert props["AccessLogSettings"]["DestinationArn"] == getatt_token("ApiAccessLogGroup", "Arn")
    assert stack.resolve(stack.resources["ApiAccessLogGroup"]["Properties"]["RetentionInDays"]) == 30


@pytest.mark.parametrize(
    ("origins", "expected"),
    [("*", ["*"]), ("https://a.example,https://b.example", ["https://a.example", "https://b.example"])],
)
def test_cors_origins_come_from_the_parameter(root_stack, origins, expected):
    stack = root_stack(CorsAllowOrigins=origins)
    cors = stack.resolve(stack.resources["HttpApi"]["Properties"]["CorsConfiguration"])
    assert cors["AllowOrigins"] == expected
    assert "POST" in cors["AllowMethods"]


def test_outputs(root_stack):
    stack = root_stack()
    outputs = {name: stack.resolve(o["Value"]) for name, o in stack.template["Outputs"].items() if "Condition" not in o}
    api = ref_token("HttpApi")
    assert outputs == {
        "ApiUrl": f"https://{api}.execute-api.us-east-1.amazonaws.com",
        "DetectUrl": f"https://{api}.execute-api.us-east-1.amazonaws.com/detect",
        "FunctionName": ref_token("DetectFunction"),
        "FunctionArn": getatt_token("DetectFunction", "Arn"),
        "InvokedArn": getatt_token("DetectFunction", "Arn"),  # the alias with SnapStart=true
    }


# --- the evaluator itself -----------------------------------------------------------------------------------


def test_evaluator_refuses_references_to_inactive_resources(root_stack):
    stack = root_stack(Backend="lambda")
    with pytest.raises(LookupError, match="GpuStack"):
        stack.resolve({"Fn::GetAtt": ["GpuStack", "Outputs.EndpointName"]})


@pytest.mark.parametrize(("given", "error"), [({}, "ModelS3Uri"), ({"Nope": "x", "ModelS3Uri": MODEL_URI}, "Nope")])
def test_evaluator_checks_parameters(given, error):
    with pytest.raises(KeyError, match=error):
        StackView(load_template(NESTED_TEMPLATES["gpu"]), given)


# --- portability to the local AWS emulation ------------------------------------------------------------------


@pytest.mark.parametrize("path", [REPO_ROOT / "template.yaml", *NESTED_TEMPLATES.values()], ids=lambda p: p.name)
def test_no_short_forms_the_local_emulation_misreads(path):
    # moto's YAML loader turns "!Condition X" into {"Fn::Condition": X} and splits "!GetAtt A.Outputs.B" on
    # every dot, so those two short forms would deploy differently locally than on AWS.
    text = path.read_text()
    assert "!Condition" not in text
    assert not re.search(r"!GetAtt\s+\w+\.Outputs\.", text)
