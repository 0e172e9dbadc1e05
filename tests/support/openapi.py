"""docs/openapi.yaml as a checker of real responses: every response an e2e test gets must match it."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import jsonschema
import yaml

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


@functools.lru_cache(maxsize=1)
def spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text())


def schema_for(status: int, content_type: str, *, path: str = "/detect", method: str = "post") -> dict:
    """The JSON Schema (2020-12, refs resolvable) the spec gives a response; AssertionError if it has none."""
    responses = spec()["paths"][path][method]["responses"]
    response = responses.get(str(status)) or responses.get("default")
    assert response is not None, f"docs/openapi.yaml has no {status} response for {method.upper()} {path}"
    media = content_type.split(";")[0].strip().lower()
    content = response.get("content", {})
    assert media in content, f"docs/openapi.yaml: {status} has no {media!r} body (has {sorted(content)})"
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "components": spec()["components"],
            **content[media]["schema"]}


def check_response(status: int, content_type: str, body: bytes | str | dict, **where) -> None:
    """Assert one real response matches the spec (status listed, media type listed, body valid)."""
    document = body if isinstance(body, dict) else json.loads(body)
    schema = schema_for(status, content_type, **where)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(document), key=lambda e: list(e.path))
    assert not errors, f"{status} body does not match docs/openapi.yaml: {errors[0].message} at {list(errors[0].path)}"
