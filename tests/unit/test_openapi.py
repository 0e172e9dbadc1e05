"""docs/openapi.yaml is a valid OpenAPI 3.1 document and agrees with the code it describes."""

import jsonschema
import pytest
from openapi_spec_validator import validate

from detection import errors
from detection.events import MAX_CLASS_NAMES, MAX_DETECTIONS_LIMIT, OPTION_KEYS
from tests.support.openapi import check_response, schema_for, spec


def test_the_spec_is_valid_openapi_3_1():
    assert spec()["openapi"].startswith("3.1")
    validate(spec())


def test_error_codes_are_exactly_the_codes_the_function_uses():
    def codes(cls):
        return {cls.code} | {code for sub in cls.__subclasses__() for code in codes(sub)}

    from detection import store  # StorageError lives beside the S3 reads

    assert store.StorageError.code in codes(errors.DetectionError)
    documented = set(spec()["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"])
    assert documented == codes(errors.DetectionError)


def test_options_and_limits_match_the_code():
    schemas = spec()["components"]["schemas"]
    assert tuple(schemas["Options"]["properties"]) == OPTION_KEYS
    query = [p["name"] for p in spec()["paths"]["/detect"]["post"]["parameters"] if p["in"] == "query"]
    assert tuple(query) == OPTION_KEYS
    assert schemas["Options"]["properties"]["classes"]["oneOf"][0]["maxItems"] == MAX_CLASS_NAMES
    assert schemas["Options"]["properties"]["max_detections"]["oneOf"][0]["maximum"] == MAX_DETECTIONS_LIMIT


def test_the_checker_catches_a_wrong_body():
    check_response(400, "application/json", {"error": {"code": "BadRequest", "message": "x", "status": 400}})
    check_response(429, "application/json", {"message": "Too Many Requests"})
    with pytest.raises(AssertionError, match="does not match"):
        check_response(200, "application/json", {"detections": []})
    with pytest.raises(AssertionError, match="no 418 response"):
        schema_for(418, "application/json")


@pytest.mark.parametrize("body, valid", [
    ({"image": "aGk=", "threshold": 0.3}, True),
    ({"s3": {"bucket": "b", "key": "k"}, "classes": ["cat"]}, True),
    ({"image": "aGk=", "treshold": 0.3}, False),
    ({"image": "aGk=", "image_uri": "s3://b/k"}, False),
])
def test_request_schema_refuses_what_the_function_refuses(body, valid):
    schema = {"components": spec()["components"], "$ref": "#/components/schemas/DetectRequest"}
    assert jsonschema.Draft202012Validator(schema).is_valid(body) is valid
