""".taskcat.yml: one test per backend (lambda first), prebuilt zip, and parameters the template accepts."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.unit.infra.cfn_view import REPO_ROOT, StackView, load_template

CONFIG = yaml.safe_load((REPO_ROOT / ".taskcat.yml").read_text())
# What taskcat substitutes at run time (an auto bucket looks like tcat-<project>-<hash>).
SAMPLE_PSEUDO = {"$[taskcat_autobucket]": "tcat-serverless-detection-1a2b3c4d", "$[taskcat_project_name]": "serverless-detection"}


def substitute_pseudo_parameters(value: str) -> str:
    """Replace the taskcat pseudo-parameters we use with sample values; any other ``$[...]`` is an error.

    Example:
        >>> substitute_pseudo_parameters("s3://$[taskcat_autobucket]/x/")
        's3://tcat-serverless-detection-1a2b3c4d/x/'
    """
    for token, sample in SAMPLE_PSEUDO.items():
        value = value.replace(token, sample)
    leftover = re.findall(r"\$\[[^\]]*\]", value)
    assert not leftover, f"unexpected taskcat pseudo-parameters {leftover}"
    return value


def test_tests_are_one_per_backend_lambda_first():
    assert list(CONFIG["tests"]) == ["lambda", "gpu", "inferentia"]
    for name, test in CONFIG["tests"].items():
        assert test["template"] == "template.yaml"
        assert test["parameters"]["Backend"] == name


def test_project_uses_the_prebuilt_zip_and_regional_buckets():
    project = CONFIG["project"]
    assert re.fullmatch(r"[a-z0-9-]+", project["name"])
    assert project["package_lambda"] is False
    assert project["s3_regional_buckets"] is True  # Lambda code and nested templates must be in the stack's region
    assert project["regions"] and all(re.fullmatch(r"[a-z]{2}-[a-z]+-\d", r) for r in project["regions"])
    assert project["parameters"]["CodeS3Key"] == "$[taskcat_project_name]/dist/lambda-x86_64.zip"
    assert project["parameters"]["CodeS3Bucket"] == "$[taskcat_autobucket]"


@pytest.mark.parametrize("test_name", list(CONFIG["tests"]))
def test_parameters_satisfy_the_template(test_name):
    template = load_template(REPO_ROOT / "template.yaml")
    merged = {**CONFIG["project"]["parameters"], **CONFIG["tests"][test_name]["parameters"]}
    values = {name: substitute_pseudo_parameters(str(value)) for name, value in merged.items()}
    for name, value in values.items():
        spec = template["Parameters"][name]
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"], value), (name, value)
        if "AllowedValues" in spec:
            assert value in [str(v) for v in spec["AllowedValues"]], (name, value)
    stack = StackView(template, values)  # raises on a missing required or an undeclared parameter
    # The nested template is fetched from where taskcat uploads the project.
    for resource in stack.resources.values():
        if resource["Type"] == "AWS::CloudFormation::Stack":
            url = stack.resolve(resource["Properties"]["TemplateURL"])
            assert url.startswith("https://tcat-serverless-detection-1a2b3c4d.s3.us-east-1.amazonaws.com/serverless-detection/infra/")
            assert (REPO_ROOT / url.split("/serverless-detection/", 1)[1]).is_file()


@pytest.mark.parametrize(("value", "expected"), [("", ""), ("plain", "plain")])
def test_substitution_leaves_plain_values(value, expected):
    assert substitute_pseudo_parameters(value) == expected


def test_substitution_rejects_unknown_pseudo_parameters():
    with pytest.raises(AssertionError, match="genpass"):
        substitute_pseudo_parameters("$[taskcat_genpass_8A]")
