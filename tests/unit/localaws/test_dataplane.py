"""The API Gateway data plane's pure mapping: routes, text vs binary bodies, responses, permissions."""

from __future__ import annotations

import base64
import json

import pytest

from localaws import dataplane


@pytest.mark.parametrize("keys, method, path, expected", [
    ([], "POST", "/detect", None),
    (["POST /detect"], "POST", "/detect", ("POST /detect", {})),
    (["POST /detect"], "GET", "/detect", None),
    (["POST /detect"], "POST", "/detect/x", None),
    (["ANY /detect", "POST /detect"], "POST", "/detect", ("POST /detect", {})),
    (["GET /items/{id}", "GET /items/{proxy+}"], "GET", "/items/7", ("GET /items/{id}", {"id": "7"})),
    (["GET /items/{proxy+}"], "GET", "/items/a/b", ("GET /items/{proxy+}", {"proxy": "a/b"})),
    (["POST /detect", "$default"], "GET", "/other", ("$default", {})),
])
def test_match_route(keys, method, path, expected):
    assert dataplane.match_route(keys, method=method, path=path) == expected


@pytest.mark.parametrize("content_type, text", [
    ("application/json", True), ("application/json; charset=utf-8", True), ("text/plain", True),
    ("application/vnd.api+json", True), ("image/jpeg", False), ("application/octet-stream", False),
    ("", False), (None, False),
])
def test_is_text(content_type, text):
    assert dataplane.is_text(content_type) is text


def _event(body: bytes, content_type: str) -> dict:
    return dataplane.build_event(api_id="abc123", account_id="1", region="us-east-1", stage="$default",
                                 route_key="POST /detect", method="POST", path="/detect", query="a=1&a=2",
                                 headers={"content-type": content_type}, body=body, source_ip="127.0.0.1",
                                 path_parameters={})


def test_binary_body_is_base64_and_json_body_is_text():
    jpeg = b"\xff\xd8\xff\xe0binary"
    event = _event(jpeg, "image/jpeg")
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == jpeg
    event = _event(b'{"image": "x"}', "application/json")
    assert (event["isBase64Encoded"], event["body"]) == (False, '{"image": "x"}')
    assert event["version"] == "2.0" and event["queryStringParameters"] == {"a": "1,2"}


def test_empty_body_has_no_body_key():
    assert "body" not in _event(b"", "image/jpeg")


@pytest.mark.parametrize("reply, expected", [
    ({"statusCode": 201, "headers": {"X-A": "1"}, "body": "hi"}, (201, "1", b"hi")),
    ({"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True},
     (200, None, b"\x00\x01")),
    ({"detections": []}, (200, None, b'{"detections": []}')),
])
def test_map_response(reply, expected):
    status, headers, _, body = dataplane.map_response(json.dumps(reply).encode())
    assert (status, headers.get("x-a"), body) == expected


def test_unparseable_reply_is_500():
    assert dataplane.map_response(b"not json")[0] == 500


STATEMENT = {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Principal": {"Service": "apigateway.amazonaws.com"},
             "Condition": {"ArnLike": {"AWS:SourceArn": "arn:aws:execute-api:us-east-1:1:abc/*/POST/detect"}}}


@pytest.mark.parametrize("statements, arn, allowed", [
    ([], "arn:aws:execute-api:us-east-1:1:abc/$default/POST/detect", False),
    ([STATEMENT], "arn:aws:execute-api:us-east-1:1:abc/$default/POST/detect", True),
    ([STATEMENT], "arn:aws:execute-api:us-east-1:1:other/$default/POST/detect", False),
    ([{**STATEMENT, "Principal": {"Service": "s3.amazonaws.com"}}],
     "arn:aws:execute-api:us-east-1:1:abc/$default/POST/detect", False),
])
def test_policy_allows(statements, arn, allowed):
    assert dataplane.policy_allows(statements, function_arn="f", arn=arn, account_id="1") is allowed
