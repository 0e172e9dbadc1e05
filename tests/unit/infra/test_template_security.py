"""template.yaml's security options, asserted on the evaluated template: JWT authorizer beside IAM, read access
to the callers' image prefixes (least privilege), the reserved-concurrency cost guard."""

from __future__ import annotations

import pytest

from tests.unit.infra.cfn_view import ref_token
from tests.unit.infra.test_infra_template import permissions, statements_for_role

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example"


def test_auth_modes(root_template):
    assert root_template["Parameters"]["AuthMode"]["AllowedValues"] == ["NONE", "IAM", "JWT"]


@pytest.mark.parametrize("mode, authorization, authorizer", [
    ("NONE", "NONE", None), ("IAM", "AWS_IAM", None), ("JWT", "JWT", ref_token("JwtAuthorizer"))])
def test_route_authorization_follows_auth_mode(root_stack, mode, authorization, authorizer):
    stack = root_stack(AuthMode=mode, JwtIssuer=ISSUER, JwtAudience="client-1,client-2")
    route = stack.resolve(stack.resources["DetectRoute"]["Properties"])
    assert route["AuthorizationType"] == authorization and route.get("AuthorizerId") == authorizer
    assert ("JwtAuthorizer" in stack.resources) is (mode == "JWT")


def test_jwt_authorizer_checks_issuer_and_audience(root_stack):
    stack = root_stack(AuthMode="JWT", JwtIssuer=ISSUER, JwtAudience="client-1,client-2")
    props = stack.resolve(stack.resources["JwtAuthorizer"]["Properties"])
    assert props["AuthorizerType"] == "JWT" and props["IdentitySource"] == ["$request.header.Authorization"]
    assert props["JwtConfiguration"] == {"Issuer": ISSUER, "Audience": ["client-1", "client-2"]}
    assert props["ApiId"] == ref_token("HttpApi")


def test_jwt_mode_without_issuer_or_audience_is_refused_by_a_rule(root_template):
    rule = root_template["Rules"]["JwtAuthSettings"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "AuthMode"}, "JWT"]}
    refs = [a["Assert"]["Fn::Not"][0]["Fn::Equals"][0] for a in rule["Assertions"]]
    assert refs == [{"Ref": "JwtIssuer"}, {"Fn::Join": ["", {"Ref": "JwtAudience"}]}]


def test_jwt_issuer_must_be_https(root_template):
    import re

    pattern = root_template["Parameters"]["JwtIssuer"]["AllowedPattern"]
    assert re.fullmatch(pattern, "") and re.fullmatch(pattern, ISSUER)
    assert not re.fullmatch(pattern, "http://insecure.example.com") and not re.fullmatch(pattern, "https://a b")


def test_by_default_the_function_reads_only_the_model_prefix(root_stack):
    stack = root_stack()
    assert "ImageReadPolicy" not in stack.resources
    reads = {resource for action, resource in permissions(statements_for_role(stack, "FunctionRole"))
             if action == "s3:GetObject"}
    assert reads == {"arn:aws:s3:::my-models/dfine-s/*"}


def test_image_read_prefixes_grant_get_object_on_exactly_those_prefixes(root_stack):
    stack = root_stack(ImageReadPrefixes="my-photos/uploads/,shared-bucket/detect/")
    pairs = permissions(statements_for_role(stack, "FunctionRole"))
    assert {r for a, r in pairs if a == "s3:GetObject"} == {
        "arn:aws:s3:::my-models/dfine-s/*", "arn:*:s3:::my-photos/uploads/*", "arn:*:s3:::shared-bucket/detect/*"}
    assert {a for a, _ in pairs} <= {"s3:GetObject", "logs:CreateLogStream", "logs:PutLogEvents"}


@pytest.mark.parametrize("reserved, expected", [(0, None), (25, 25)])
def test_reserved_concurrency_is_an_optional_cost_guard(root_stack, reserved, expected):
    stack = root_stack(ReservedConcurrency=reserved)
    props = stack.resolve(stack.resources["DetectFunction"]["Properties"])
    assert props.get("ReservedConcurrentExecutions") == expected
