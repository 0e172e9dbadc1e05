"""Fixtures for the CloudFormation template tests (evaluator in cfn_view.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.infra.cfn_view import NESTED_TEMPLATES, ROOT_TEMPLATE, StackView, load_template

ROOT_REQUIRED = {
    "ModelS3Uri": "s3://my-models/dfine-s/",
    "CodeS3Bucket": "my-code",
    "CodeS3Key": "serverless-detection/dist/lambda-x86_64.zip",
}


@pytest.fixture(scope="session")
def root_template() -> dict:
    return load_template(ROOT_TEMPLATE)


@pytest.fixture(scope="session")
def nested_templates() -> dict[str, dict]:
    return {name: load_template(path) for name, path in NESTED_TEMPLATES.items()}


@pytest.fixture
def root_stack(root_template):
    """Factory: ``root_stack(Backend="gpu")`` -> StackView of template.yaml with the required params filled."""

    def make(**overrides: Any) -> StackView:
        return StackView(root_template, {**ROOT_REQUIRED, **overrides})

    return make
