"""deployer's pure pieces: parameter parsing, target choice, no-change detection, local ApiUrl mapping."""

from __future__ import annotations

import pytest

from deployer import cli
from deployer.stack import DeployError, is_no_change


@pytest.mark.parametrize("pairs, expected", [
    ([], {}),
    (["MemorySize=3008"], {"MemorySize": "3008"}),
    (["A=1", "B=x=y", "C="], {"A": "1", "B": "x=y", "C": ""}),
])
def test_parse_parameters(pairs, expected):
    assert cli.parse_parameters(pairs) == expected


@pytest.mark.parametrize("bad", ["MemorySize", "=3", ""])
def test_parse_parameters_rejects_missing_key_or_equals(bad):
    with pytest.raises(DeployError, match="KEY=VALUE"):
        cli.parse_parameters([bad])


@pytest.mark.parametrize("reason, expected", [
    ("The submitted information didn't contain changes. Submit different information to create a change set.", True),
    ("No updates are to be performed.", True),
    ("Parameter 'Backend' must be one of AllowedValues", False),
    ("", False),
    (None, False),
])
def test_is_no_change(reason, expected):
    assert is_no_change(reason) is expected


def test_local_conflicts_with_region():
    with pytest.raises(DeployError, match="--local cannot be combined"):
        cli.choose_target(cli.parse_args(["--local", "--region", "eu-west-1"]))


def test_no_credentials_and_no_target_means_local(monkeypatch, tmp_path):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert cli.choose_target(cli.parse_args([])) == "local"


def test_explicit_region_without_credentials_is_a_clear_error(monkeypatch, tmp_path):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(DeployError, match="no AWS credentials"):
        cli.choose_target(cli.parse_args(["--region", "eu-west-1"]))


def test_help_documents_every_flag_and_env_var(capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(["--help"])
    text = capsys.readouterr().out
    for word in ("--local", "--region", "--profile", "--delete", "--bundle", "--bucket", "--parameter",
                 "--image", "--no-smoke", "--no-lint", "--stack-name", "--arch", "--backend", "--timeout",
                 "AWS_PROFILE", "DEPLOY_STACK_NAME", "DEPLOY_BUCKET", "MODEL_BUNDLE", "LOCALAWS_HOME"):
        assert word in text
