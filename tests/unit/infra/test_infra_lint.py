"""cfn-lint, `taskcat lint` and checkov run as real subprocesses on every template file.

Each tool also gets one deliberately broken template in the same run, so a linter that silently checks
nothing (wrong path, no rules loaded) fails these tests instead of passing them. checkov is the slow one:
it runs once per session on all files together.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.unit.infra.cfn_view import ALL_TEMPLATES, REPO_ROOT, load_template

TASKCAT = REPO_ROOT / ".venv-taskcat" / "bin" / "taskcat"
CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"

# Valid YAML, broken CloudFormation and insecure: a too-long timeout, a retired runtime, and "*" on "*".
BROKEN_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - {Effect: Allow, Principal: {Service: lambda.amazonaws.com}, Action: sts:AssumeRole}
      Policies:
        - PolicyName: everything
          PolicyDocument:
            Version: "2012-10-17"
            Statement:
              - {Effect: Allow, Action: "*", Resource: "*"}
  Function:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: python2.7
      Handler: handler.handler
      Timeout: 901
      Role: !GetAtt Role.Arn
      Code: {ZipFile: "def handler(event, context): return event"}
"""

# A valid parent whose nested stack is the broken template: taskcat lint must follow it.
PARENT_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  TemplatesS3Bucket: {Type: String, Default: bucket}
Resources:
  Child:
    Type: AWS::CloudFormation::Stack
    Properties:
      TemplateURL: !Sub "https://${TemplatesS3Bucket}.s3.${AWS::Region}.${AWS::URLSuffix}/project/infra/child.yaml"
"""


def require_tool(path: Path) -> Path:
    if not path.is_file():
        pytest.fail(f"{path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path} is missing: run ./setup.sh")
    return path


def isolated_env(home: Path) -> dict[str, str]:
    """No AWS credentials or user config, no phoning home: linters must work offline and the same everywhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BC_", "CKV_", "CHECKOV_"))}
    env.update(
        HOME=str(home),
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(home / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "no-aws-credentials"),
        BC_SKIP_MAPPING="TRUE",  # checkov: do not fetch guideline mappings from the Prisma Cloud API
    )
    return env


def run(command: list, *, cwd: Path, home: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, env=isolated_env(home), capture_output=True, text=True, timeout=timeout
    )


def taskcat_regions() -> list[str]:
    return yaml.safe_load((REPO_ROOT / ".taskcat.yml").read_text())["project"]["regions"]


@pytest.fixture(scope="module")
def broken_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("broken") / "broken.yaml"
    path.write_text(BROKEN_TEMPLATE)
    return path


# --- cfn-lint -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cfn_lint_findings(broken_template, tmp_path_factory) -> dict[Path, list[dict]]:
    """One cfn-lint run over every template (in every taskcat region) plus the broken one, by file."""
    result = run(
        [require_tool(CFN_LINT), "--format", "json", "--regions", *taskcat_regions(), "--", *ALL_TEMPLATES, broken_template],
        cwd=REPO_ROOT,
        home=tmp_path_factory.mktemp("home"),
    )
    assert result.stdout.strip(), f"cfn-lint printed nothing (rc={result.returncode}): {result.stderr[-2000:]}"
    findings: dict[Path, list[dict]] = {}
    for match in json.loads(result.stdout):
        findings.setdefault(Path(match["Filename"]).resolve(), []).append(match)
    return findings


@pytest.mark.parametrize("template", ALL_TEMPLATES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_cfn_lint_is_clean(cfn_lint_findings, template):
    found = [f"{m['Rule']['Id']} line {m['Location']['Start']['LineNumber']}: {m['Message']}" for m in cfn_lint_findings.get(template, [])]
    assert found == []


def test_cfn_lint_catches_the_broken_template(cfn_lint_findings, broken_template):
    rules = {m["Rule"]["Id"] for m in cfn_lint_findings.get(broken_template.resolve(), [])}
    assert any(rule.startswith("E") for rule in rules), rules


# --- taskcat lint -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_taskcat_lint_passes_on_the_project(tmp_path):
    result = run([require_tool(TASKCAT), "lint"], cwd=REPO_ROOT, home=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    for template in ALL_TEMPLATES:  # the nested templates are reached through template.yaml's TemplateURLs
        assert f"Linting passed for file: {template}" in output, output[-3000:]


@pytest.mark.slow
def test_taskcat_lint_fails_on_a_broken_nested_template(tmp_path, broken_template):
    project = tmp_path / "project"
    (project / "infra").mkdir(parents=True)
    (project / "parent.yaml").write_text(PARENT_TEMPLATE)
    (project / "infra" / "child.yaml").write_text(broken_template.read_text())
    (project / ".taskcat.yml").write_text(
        yaml.safe_dump({"project": {"name": "lint-probe", "regions": ["us-east-1"]}, "tests": {"probe": {"template": "parent.yaml"}}})
    )
    result = run([require_tool(TASKCAT), "lint"], cwd=project, home=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "child.yaml" in output and "Linting detected issues" in output, output[-3000:]


# --- checkov ------------------------------------------------------------------------------------------------


def declared_skips(template_path: Path) -> set[tuple[str, str]]:
    """(resource, check id) pairs skipped in the template's Metadata.checkov.skip; each must give a reason."""
    skips = set()
    for name, resource in load_template(template_path)["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert str(skip.get("comment", "")).strip(), f"{template_path.name}:{name} skips {skip['id']} without a reason"
            skips.add((f"{resource['Type']}.{name}", skip["id"]))
    return skips


@pytest.fixture(scope="session")
def checkov_results(tmp_path_factory) -> dict[Path, dict[str, list[dict]]]:
    """One checkov run (offline) over every template and a broken one: {file: {passed/failed/skipped: [...]}}."""
    broken = tmp_path_factory.mktemp("checkov-broken") / "broken.yaml"
    broken.write_text(BROKEN_TEMPLATE)
    files = [*ALL_TEMPLATES, broken]
    command = [require_tool(CHECKOV), "--framework", "cloudformation", "--skip-download", "--output", "json"]
    for path in files:
        command += ["--file", path]
    result = run(command, cwd=REPO_ROOT, home=tmp_path_factory.mktemp("home"), timeout=600)
    assert result.stdout.strip(), f"checkov printed nothing (rc={result.returncode}): {result.stderr[-2000:]}"
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    by_file: dict[Path, dict[str, list[dict]]] = {path.resolve(): {"passed": [], "failed": [], "skipped": []} for path in files}
    for report in reports:
        for outcome in ("passed", "failed", "skipped"):
            for check in report["results"][f"{outcome}_checks"]:
                by_file[Path(check["file_abs_path"]).resolve()][outcome].append(check)
    return by_file


@pytest.mark.slow
@pytest.mark.parametrize("template", ALL_TEMPLATES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_checkov_has_no_failed_checks(checkov_results, template):
    results = checkov_results[template]
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in results["failed"]]
    assert failed == []
    assert results["passed"], "checkov evaluated no check on this file"


@pytest.mark.slow
@pytest.mark.parametrize("template", ALL_TEMPLATES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_checkov_skips_are_exactly_the_reasoned_ones_in_the_template(checkov_results, template):
    # Every skip checkov applied is declared (with a reason) in the template, and every declared skip was
    # needed: a skip for a check that no longer fires is stale and must go.
    applied = {(c["resource"], c["check_id"]) for c in checkov_results[template]["skipped"]}
    assert applied == declared_skips(template)


@pytest.mark.slow
def test_checkov_catches_the_broken_template(checkov_results):
    (broken,) = [path for path in checkov_results if path not in {t.resolve() for t in ALL_TEMPLATES}]
    failed = {c["check_id"] for c in checkov_results[broken]["failed"]}
    assert "CKV_AWS_63" in failed, failed  # '*' as a statement's actions
