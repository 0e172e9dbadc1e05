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


@pytest.mark.parametrize("backend, instance_type, expected", [
    ("gpu", "", {}),
    ("inferentia", "", {}),
    ("lambda", "", {}),
    ("gpu", "ml.g4dn.2xlarge", {"AcceleratorInstanceType": "ml.g4dn.2xlarge"}),
    ("gpu", "ml.g5.xlarge", {"AcceleratorInstanceType": "ml.g5.xlarge"}),
    ("gpu", "ml.g6.xlarge", {"AcceleratorInstanceType": "ml.g6.xlarge"}),
    ("inferentia", "ml.inf2.8xlarge", {"AcceleratorInstanceType": "ml.inf2.8xlarge"}),
])
def test_accelerator_parameters(backend, instance_type, expected):
    assert cli.accelerator_parameters(backend=backend, instance_type=instance_type) == expected


@pytest.mark.parametrize("backend, instance_type, message", [
    ("gpu", "ml.inf2.xlarge", "does not fit --backend gpu"),
    ("inferentia", "ml.g5.xlarge", "does not fit --backend inferentia"),
    ("inferentia", "inf2.xlarge", "ml.inf2.\\*"),
    ("lambda", "ml.g5.xlarge", "needs --backend gpu or --backend inferentia"),
])
def test_accelerator_parameters_reject_the_wrong_family(backend, instance_type, message):
    with pytest.raises(DeployError, match=message):
        cli.accelerator_parameters(backend=backend, instance_type=instance_type)


def test_accelerator_flags_in_help_match_the_template(capsys):
    from tests.unit.infra.cfn_view import load_template

    with pytest.raises(SystemExit):
        cli.parse_args(["--help"])
    text = capsys.readouterr().out
    for word in ("--accelerator-instance-type", "--sagemaker-wheels", "gpu", "inferentia", "records only"):
        assert word in text
    # every instance type the template offers passes the deployer's own family check for its backend
    template = load_template(cli.TEMPLATE)
    offered = [v for v in template["Parameters"]["AcceleratorInstanceType"]["AllowedValues"] if v]
    for value in offered:
        backend = "inferentia" if value.startswith("ml.inf2.") else "gpu"
        assert cli.accelerator_parameters(backend=backend, instance_type=value) == {"AcceleratorInstanceType": value}


@pytest.mark.parametrize("value, local, expected", [
    (None, True, None),
    (None, False, "download"),
    ("none", False, None),
    ("download", True, "download"),
])
def test_wheels_choice(value, local, expected):
    assert cli.wheels_choice(value, local=local) == expected


def test_wheels_choice_folder_must_exist(tmp_path):
    assert cli.wheels_choice(str(tmp_path), local=True) == tmp_path
    with pytest.raises(DeployError, match="not a folder"):
        cli.wheels_choice(str(tmp_path / "missing"), local=True)
