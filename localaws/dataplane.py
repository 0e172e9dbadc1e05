"""API Gateway HTTP API data plane on 127.0.0.1, for the APIs in the local moto (same process).

Requests reach an API by path (``http://127.0.0.1:PORT/<apiId>/<stage?>/detect``) or by Host header
(``<apiId>.execute-api.<region>.amazonaws.com``). Like AWS it then: picks the stage (``$default`` takes the
path as is), matches the route (``POST /detect``, ``ANY /x``, ``{param}``, ``{proxy+}``, ``$default``) or
answers 404 ``{"message":"Not Found"}``; checks the function's resource policy lets
``apigateway.amazonaws.com`` invoke it for this execute-api ARN, else 500 ``{"message":"Internal Server
Error"}``; sends a payload 2.0 event (binary bodies base64-encoded) and maps the reply (statusCode, headers,
cookies, isBase64Encoded; a reply without statusCode is a 200 JSON body; a function error is a 500).

Example:
    >>> match_route(["POST /detect", "$default"], method="POST", path="/detect")
    ('POST /detect', {})
    >>> match_route(["GET /items/{id}"], method="GET", path="/items/7")
    ('GET /items/{id}', {'id': '7'})
"""

from __future__ import annotations

import base64
import fnmatch
import json
import logging
import re
import time
import uuid
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import lambda_bridge
from .http_front import FrontHandler, FrontServer, reply
from .lambda_runtime import Throttled

log = logging.getLogger("localaws.dataplane")

HOST_PATTERN = re.compile(r"^(?P<api>[a-z0-9]{6,12})\.execute-api\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(:\d+)?$")
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript",
              "application/x-www-form-urlencoded", "+json", "+xml")
NOT_FOUND = (404, {"message": "Not Found"})
INTERNAL_ERROR = (500, {"message": "Internal Server Error"})
SERVICE_UNAVAILABLE = (503, {"message": "Service Unavailable"})


# --- pure helpers ------------------------------------------------------------------------------------------

def _route_regex(path_template: str) -> re.Pattern[str]:
    parts = []
    for segment in path_template.strip("/").split("/"):
        if segment.startswith("{") and segment.endswith("+}"):
            parts.append(f"(?P<{segment[1:-2]}>.+)")
        elif segment.startswith("{") and segment.endswith("}"):
            parts.append(f"(?P<{segment[1:-1]}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("^/" + "/".join(parts) + "$")


def match_route(route_keys: list[str], *, method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The route key AWS would pick (exact path before parameters, methods before ANY, $default last)."""
    candidates = []
    for key in route_keys:
        if key == "$default":
            continue
        route_method, _, template = key.partition(" ")
        if route_method not in (method, "ANY"):
            continue
        found = _route_regex(template).match(path)
        if found:
            greedy = "+}" in template
            candidates.append(((greedy, template.count("{"), route_method == "ANY"), key, found.groupdict()))
    if candidates:
        _, key, params = min(candidates, key=lambda item: item[0])
        return key, params
    if "$default" in route_keys:
        return "$default", {}
    return None


def is_text(content_type: str | None) -> bool:
    """Whether API Gateway passes a body of this type as text (else base64)."""
    content_type = (content_type or "").split(";")[0].strip().lower()
    return any(content_type.startswith(t) if t.endswith("/") or not t.startswith("+") else content_type.endswith(t)
               for t in TEXT_TYPES)


def source_arn(*, region: str, account_id: str, api_id: str, stage: str, method: str, path: str) -> str:
    return f"arn:aws:execute-api:{region}:{account_id}:{api_id}/{stage}/{method}{path}"


def policy_allows(statements: list[dict], *, function_arn: str, arn: str, account_id: str) -> bool:
    """Whether a Lambda resource policy lets API Gateway invoke the function for execute-api ARN ``arn``.

    Example:
        >>> s = {"Effect": "Allow", "Action": "lambda:InvokeFunction",
        ...      "Principal": {"Service": "apigateway.amazonaws.com"},
        ...      "Condition": {"ArnLike": {"AWS:SourceArn": "arn:aws:execute-api:r:1:a/*/POST/detect"}}}
        >>> policy_allows([s], function_arn="f", arn="arn:aws:execute-api:r:1:a/$default/POST/detect", account_id="1")
        True
        >>> policy_allows([], function_arn="f", arn="x", account_id="1")
        False
    """
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action")
        actions = [actions] if isinstance(actions, str) else (actions or [])
        if not any(action in ("lambda:InvokeFunction", "lambda:*", "*") for action in actions):
            continue
        principal = statement.get("Principal")
        service = principal.get("Service") if isinstance(principal, dict) else principal
        services = [service] if isinstance(service, str) else (service or [])
        if "apigateway.amazonaws.com" not in services and "*" not in services:
            continue
        conditions = statement.get("Condition") or {}
        arn_like = {**conditions.get("ArnLike", {}), **conditions.get("ArnEquals", {})}
        wanted_arn = arn_like.get("AWS:SourceArn") or arn_like.get("aws:SourceArn")
        if wanted_arn and not fnmatch.fnmatchcase(arn, wanted_arn):
            continue
        wanted_account = {**conditions.get("StringEquals", {})}.get("AWS:SourceAccount")
        if wanted_account and str(wanted_account) != account_id:
            continue
        return True
    return False


def function_name_from_uri(uri: str) -> str:
    """IntegrationUri -> function name or ARN (plain ARN, or the apigateway ``.../functions/<arn>/invocations``)."""
    if "/functions/" in uri:
        uri = uri.split("/functions/", 1)[1].rsplit("/invocations", 1)[0]
    return uri


def build_event(*, api_id: str, account_id: str, region: str, stage: str, route_key: str, method: str,
                path: str, query: str, headers: dict[str, str], body: bytes, source_ip: str,
                path_parameters: dict[str, str], stage_variables: dict[str, str] | None = None) -> dict:
    """An API Gateway payload format 2.0 event."""
    now = datetime.now(timezone.utc)
    text = is_text(headers.get("content-type"))
    if text:
        try:
            body_text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = False
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path if stage == "$default" else f"/{stage}{path}",
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": account_id, "apiId": api_id,
            "domainName": f"{api_id}.execute-api.{region}.amazonaws.com", "domainPrefix": api_id,
            "http": {"method": method, "path": path if stage == "$default" else f"/{stage}{path}",
                     "protocol": "HTTP/1.1", "sourceIp": source_ip, "userAgent": headers.get("user-agent", "")},
            "requestId": uuid.uuid4().hex[:16], "routeKey": route_key, "stage": stage,
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"), "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if query:
        params: dict[str, list[str]] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            params.setdefault(key, []).append(value)
        event["queryStringParameters"] = {key: ",".join(values) for key, values in params.items()}
    if "cookie" in headers:
        event["cookies"] = [cookie.strip() for cookie in headers["cookie"].split(";")]
    if path_parameters:
        event["pathParameters"] = path_parameters
    if stage_variables:
        event["stageVariables"] = stage_variables
    if body:
        if text:
            event["body"] = body_text
        else:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


def map_response(payload: bytes) -> tuple[int, dict[str, str], list[str], bytes]:
    """Lambda reply (payload 2.0 format) -> (status, headers, set-cookies, body)."""
    try:
        reply = json.loads(payload)
    except ValueError:
        return 500, {"content-type": "application/json"}, [], json.dumps(INTERNAL_ERROR[1]).encode()
    if isinstance(reply, dict) and "statusCode" in reply:
        headers = {str(k).lower(): str(v) for k, v in (reply.get("headers") or {}).items()}
        for key, values in (reply.get("multiValueHeaders") or {}).items():
            headers[str(key).lower()] = ",".join(str(v) for v in values)
        body = reply.get("body") or ""
        raw = base64.b64decode(body) if reply.get("isBase64Encoded") else str(body).encode("utf-8")
        headers.setdefault("content-type", "text/plain; charset=utf-8" if raw else "application/json")
        return int(reply["statusCode"]), headers, [str(c) for c in reply.get("cookies") or []], raw
    return 200, {"content-type": "application/json"}, [], json.dumps(reply).encode("utf-8")


# --- moto lookups (same process) ---------------------------------------------------------------------------

def find_api(api_id: str) -> tuple[Any, str, str] | None:
    """(api, account_id, region) of an HTTP API in any account/region of the local moto."""
    from moto.apigatewayv2.models import apigatewayv2_backends

    for account_id, regions in list(apigatewayv2_backends.items()):
        for region, backend in list(regions.items()):
            api = backend.apis.get(api_id)
            if api is not None:
                return api, account_id, region
    return None


def lambda_function(name_or_arn: str, *, account_id: str, region: str) -> Any:
    from moto.awslambda.models import lambda_backends

    if name_or_arn.startswith("arn:"):
        parts = name_or_arn.split(":")
        account_id, region = parts[4], parts[3]
    return lambda_backends[account_id][region].get_function(name_or_arn)


# --- the HTTP front ---------------------------------------------------------------------------------------

def handle(*, method: str, target: str, headers: dict[str, str], body: bytes, source_ip: str
           ) -> tuple[int, dict[str, str], list[str], bytes]:
    """One request -> (status, headers, cookies, body)."""
    split = urlsplit(target)
    path, query = split.path or "/", split.query
    host_match = HOST_PATTERN.match(headers.get("host", ""))
    if host_match:
        api_id = host_match.group("api")
    else:
        api_id, _, rest = path.lstrip("/").partition("/")
        path = "/" + rest
    found = find_api(api_id)
    if found is None:
        return _json(*NOT_FOUND)
    api, account_id, region = found
    if "$default" in api.stages:
        stage = "$default"
    else:
        stage, _, rest = path.lstrip("/").partition("/")
        path = "/" + rest
        if stage not in api.stages:
            return _json(*NOT_FOUND)
    if method == "OPTIONS" and api.cors_configuration and "access-control-request-method" in headers:
        return _preflight(api.cors_configuration, headers)
    routes = {route.route_key: route for route in api.routes.values()}
    matched = match_route(list(routes), method=method, path=path)
    if matched is None:
        return _json(*NOT_FOUND)
    route_key, path_parameters = matched
    route = routes[route_key]
    target_ref = route.target or ""
    integration = api.integrations.get(target_ref.split("/", 1)[1]) if target_ref.startswith("integrations/") \
        else None
    if integration is None or integration.integration_type != "AWS_PROXY":
        log.warning("route %s has no Lambda proxy integration", route_key)
        return _json(*INTERNAL_ERROR)
    try:
        fn = lambda_function(function_name_from_uri(integration.integration_uri), account_id=account_id,
                             region=region)
    except Exception:  # noqa: BLE001 - moto raises its own not-found types
        log.warning("route %s: function %s not found", route_key, integration.integration_uri)
        return _json(*INTERNAL_ERROR)
    arn = source_arn(region=region, account_id=account_id, api_id=api.api_id, stage=stage, method=method, path=path)
    if not policy_allows(fn.policy.statements, function_arn=fn.function_arn, arn=arn, account_id=account_id):
        log.warning("%s: function %s has no permission for apigateway.amazonaws.com", arn, fn.function_name)
        return _json(*INTERNAL_ERROR)
    event = build_event(api_id=api.api_id, account_id=account_id, region=region, stage=stage, route_key=route_key,
                        method=method, path=path, query=query, headers=headers, body=body, source_ip=source_ip,
                        path_parameters=path_parameters,
                        stage_variables=getattr(api.stages[stage], "stage_variables", None))
    started = time.monotonic()
    try:
        result = lambda_bridge.invoke(fn, json.dumps(event).encode("utf-8"))
    except Throttled:
        log.warning("%s %s: throttled (every environment busy, queue full)", method, target)
        return reply(429)
    except Exception:  # noqa: BLE001 - the runtime failed to start or run: API Gateway says 500 too
        log.exception("invoking %s failed", fn.function_name)
        return _json(*INTERNAL_ERROR)
    log.info("%s %s -> %s (%.0f ms)", method, target, route_key, (time.monotonic() - started) * 1000)
    if result.function_error:
        log.warning("function %s returned %s: %s", fn.function_name, result.function_error,
                    lambda_bridge.payload_bytes(result.payload)[:500])
        return _json(*INTERNAL_ERROR)
    status, reply_headers, cookies, reply_body = map_response(lambda_bridge.payload_bytes(result.payload))
    reply_headers.update(_cors_headers(api.cors_configuration, headers))
    return status, reply_headers, cookies, reply_body


def _json(status: int, body: dict) -> tuple[int, dict[str, str], list[str], bytes]:
    return status, {"content-type": "application/json"}, [], json.dumps(body).encode("utf-8")


def _cors_headers(cors: dict | None, headers: dict[str, str]) -> dict[str, str]:
    origin = headers.get("origin")
    if not cors or not origin:
        return {}
    allowed = cors.get("allowOrigins") or []
    if "*" in allowed or origin in allowed:
        return {"access-control-allow-origin": "*" if "*" in allowed else origin}
    return {}


def _preflight(cors: dict, headers: dict[str, str]) -> tuple[int, dict[str, str], list[str], bytes]:
    reply = _cors_headers(cors, headers)
    if reply:
        reply["access-control-allow-methods"] = ",".join(cors.get("allowMethods") or ["*"])
        reply["access-control-allow-headers"] = ",".join(cors.get("allowHeaders") or [])
        if cors.get("maxAge") is not None:
            reply["access-control-max-age"] = str(cors["maxAge"])
    return 204, reply, [], b""


class _Handler(FrontHandler):
    answer = staticmethod(handle)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's signature
        log.info("%s %s", self.address_string(), format % args)

    def end_headers(self) -> None:
        self.send_header("apigw-requestid", uuid.uuid4().hex[:16])
        super().end_headers()


def make_server(*, host: str, port: int) -> FrontServer:
    return FrontServer((host, port), _Handler)
