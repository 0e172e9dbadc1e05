"""Response bodies -> what Lambda returns: the body itself for direct invokes, statusCode/headers/body for HTTP."""

from __future__ import annotations

import json

JSON_HEADERS = {"content-type": "application/json"}


def http_response(status: int, body: dict, *, headers: dict | None = None) -> dict:
    return {
        "statusCode": status,
        "headers": {**JSON_HEADERS, **(headers or {})},
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def respond(*, http: bool, status: int, body: dict) -> dict:
    """Direct invokes get the body (errors carry their status inside); HTTP events get a proxy response."""
    return http_response(status, body) if http else body
