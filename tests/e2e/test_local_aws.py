"""Offline AWS end to end, real processes throughout: ./deploy.sh --local (moto server process, local Lambda
runtime, API Gateway data plane), boto3 Lambda invoke, HTTP calls, a failing deploy, a taskcat run, teardown.

One deployment is shared by the module (deploy.sh is the slow part); the last test tears it down.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest

from localaws import lifecycle
from localaws.fuzz import run_fuzz
from localaws.loadtest import run_load, run_soak
from tests.support.openapi import check_response

REPO = Path(__file__).resolve().parents[2]
STACK = "e2e-detect"
pytestmark = pytest.mark.slow


def _env(state_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env["LOCALAWS_HOME"] = str(state_dir)
    return env


def _deploy_sh(*args: str, state_dir: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / "deploy.sh"), *args], cwd=REPO, env=_env(state_dir), capture_output=True,
                          text=True, timeout=timeout)


def _post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    """POST and return (status, JSON body); a /detect response must match docs/openapi.yaml."""
    request = urllib.request.Request(url, data=body, method="POST", headers={"content-type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=120) as reply:
            status, reply_type, data = reply.status, reply.headers.get("content-type", ""), reply.read()
    except urllib.error.HTTPError as error:
        status, reply_type, data = error.code, error.headers.get("content-type", ""), error.read()
    if url.endswith("/detect"):
        check_response(status, reply_type, data)
    return status, json.loads(data)


def _same_detections(got: list[dict], want: list[dict]) -> None:
    assert [(d["label"], d["class_id"]) for d in got] == [(d["label"], d["class_id"]) for d in want]
    for g, w in zip(got, want):
        assert g["score"] == pytest.approx(w["score"], abs=1e-4)
        assert g["box"] == pytest.approx(w["box"], abs=1e-2)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, known_answer_bundle, square_jpeg):
    state_dir = tmp_path_factory.mktemp("localaws")
    image = tmp_path_factory.mktemp("image") / "square.jpg"
    image.write_bytes(square_jpeg)
    result = _deploy_sh("--local", "--stack-name", STACK, "--bundle", str(known_answer_bundle.root),
                        "--image", str(image), state_dir=state_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    info = lifecycle.status(state_dir=state_dir)
    assert info is not None
    api_url = re.search(r"ApiUrl: (\S+)", result.stdout).group(1)
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name="us-east-1")
    cfn = session.client("cloudformation", endpoint_url=info.endpoint)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]}
    yield {"stdout": result.stdout, "info": info, "api_url": api_url, "outputs": outputs, "session": session,
           "state_dir": state_dir, "bundle": known_answer_bundle}
    if lifecycle.status(state_dir=state_dir) is not None:  # the teardown test did not run
        lifecycle.stop(state_dir=state_dir)


@pytest.fixture(scope="module")
def expected(known_answer_bundle, square_jpeg):
    """What the Lambda core gives for the image when run directly on the bundle."""
    from detection.pipeline import Detector

    return Detector.from_uri(str(known_answer_bundle.root)).detect_bytes(square_jpeg)["detections"]


def _client(deployment, service):
    return deployment["session"].client(service, endpoint_url=deployment["info"].endpoint)


def test_deploy_prints_local_api_url_and_detections(deployment, expected):
    assert deployment["api_url"].startswith(deployment["info"].api_endpoint + "/")
    assert f"{len(expected)} detection(s)" in deployment["stdout"]
    assert deployment["outputs"]["ApiUrl"].endswith(".execute-api.us-east-1.amazonaws.com")
    assert expected, "the known-answer image must give at least one detection"


def test_lambda_invoke_base64_matches_core(deployment, square_jpeg, expected):
    reply = _client(deployment, "lambda").invoke(
        FunctionName=deployment["outputs"]["FunctionName"],
        Payload=json.dumps({"image": base64.b64encode(square_jpeg).decode()}))
    assert "FunctionError" not in reply
    body = json.loads(reply["Payload"].read())
    _same_detections(body["detections"], expected)


@pytest.mark.parametrize("kind", ["raw_jpeg", "json"])
def test_http_post_detect_matches_core(deployment, square_jpeg, expected, kind):
    if kind == "raw_jpeg":
        status, body = _post(deployment["api_url"] + "/detect", square_jpeg, "image/jpeg")
    else:
        payload = json.dumps({"image": base64.b64encode(square_jpeg).decode()}).encode()
        status, body = _post(deployment["api_url"] + "/detect", payload, "application/json")
    assert status == 200, body
    _same_detections(body["detections"], expected)


@pytest.mark.parametrize("path", ["/nope", "/detect/extra", ""])
def test_missing_route_is_404(deployment, path, square_jpeg):
    status, body = _post(deployment["api_url"] + path, square_jpeg, "image/jpeg")
    assert (status, body) == (404, {"message": "Not Found"})


def test_without_lambda_permission_api_answers_500(deployment, square_jpeg):
    client = _client(deployment, "lambda")
    name = deployment["outputs"]["FunctionName"]
    statement = json.loads(client.get_policy(FunctionName=name)["Policy"])["Statement"][0]
    client.remove_permission(FunctionName=name, StatementId=statement["Sid"])
    try:
        status, body = _post(deployment["api_url"] + "/detect", square_jpeg, "image/jpeg")
        assert (status, body) == (500, {"message": "Internal Server Error"})
    finally:
        client.add_permission(FunctionName=name, StatementId="restore", Action="lambda:InvokeFunction",
                              Principal="apigateway.amazonaws.com",
                              SourceArn=statement["Condition"]["ArnLike"]["AWS:SourceArn"])
    status, _ = _post(deployment["api_url"] + "/detect", square_jpeg, "image/jpeg")
    assert status == 200


@pytest.mark.parametrize("parameter, message", [
    ("CodeS3Key=missing/lambda.zip",
     r"ROLLBACK_COMPLETE.*DetectFunction \(AWS::Lambda::Function\):.*NoSuchKey"),
    ("Backend=tpu", r"Parameter 'Backend' must be one of AllowedValues"),
])
def test_failing_deploy_exits_non_zero_with_reason(deployment, parameter, message):
    result = _deploy_sh("--local", "--stack-name", "e2e-bad", "--bundle", str(deployment["bundle"].root),
                        "--parameter", parameter, "--no-lint", "--no-smoke", state_dir=deployment["state_dir"])
    assert result.returncode == 1, result.stdout
    assert re.search(message, result.stderr, re.S), result.stderr
    assert result.stderr.count("deploy.sh: error:") == 1


def test_taskcat_creates_and_deletes_the_stack(deployment, tmp_path):
    taskcat_python = REPO / ".venv-taskcat" / "bin" / "python"
    if not taskcat_python.exists():
        pytest.skip("no .venv-taskcat: run ./setup.sh")
    project = tmp_path / "project"
    project.mkdir()
    for name in ("template.yaml", ".taskcat.yml"):
        shutil.copy(REPO / name, project / name)
    shutil.copytree(REPO / "infra", project / "infra")
    (project / "dist").mkdir()
    shutil.copy(REPO / "dist" / "lambda-x86_64.zip", project / "dist" / "lambda-x86_64.zip")
    shutil.copytree(deployment["bundle"].root, project / "dist" / "model")
    env = {**_env(deployment["state_dir"]), **deployment["info"].client_env()}
    result = subprocess.run([str(taskcat_python), str(Path(__file__).with_name("taskcat_driver.py")), str(project),
                             "lambda", "us-east-1"], cwd=project, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["stacks"], "taskcat created no stack"
    assert {s["status_on_create"] for s in report["stacks"]} == {"CREATE_COMPLETE"}
    assert {s["status_after_delete"] for s in report["stacks"]} == {"DELETE_COMPLETE"}


@pytest.mark.parametrize("body, content_type, status", [
    (b"GIF89a not really", "image/gif", 415),
    (b'{"image": "aGk=", "treshold": 0.5}', "application/json", 400),
    (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
    (b'{"image_uri": "s3://bad bucket!/x"}', "application/json", 400),
    (b'{"image_uri": "s3://no-such-bucket-e2e/x.jpg"}', "application/json", 404),
])
def test_error_responses_match_the_openapi_description(deployment, body, content_type, status):
    got, reply = _post(deployment["api_url"] + "/detect", body, content_type)  # _post checks the description
    assert got == status and reply["error"]["status"] == status, reply


def test_load_and_soak_through_the_local_api(deployment, square_jpeg):
    """32 clients on keep-alive connections, mixed good and bad bodies, then a sequential soak: every reply is
    the expected one (no reset, no 5xx); memory of the local AWS and its function processes is reported."""
    url, pids = deployment["api_url"] + "/detect", [deployment["info"].pid]
    load = run_load(url, square_jpeg, clients=32, requests=4, pids=pids)
    soak = run_soak(url, square_jpeg, requests=150, pids=pids)
    print("load:", json.dumps(load.summary()), "\nsoak:", json.dumps(soak.summary()))
    assert load.requests == 128 and load.errors == [], load.summary()
    assert soak.requests == 150 and soak.errors == [], soak.summary()
    assert load.statuses[200] > 0 and load.statuses[400] > 0 and load.statuses[415] > 0


def test_fuzzing_from_the_openapi_description_finds_no_5xx(deployment):
    """The CI slice of ``python -m localaws.fuzz`` (the closing note has the 10,000-case run)."""
    report = run_fuzz(deployment["api_url"], cases=250, seed=1, workers=4)
    print("fuzz:", json.dumps(report.summary()))
    assert report.cases == 250 and report.failures == 0, report.summary()
    assert report.statuses[400] > 0


def test_teardown_leaves_no_process(deployment):
    pid = deployment["info"].pid
    assert lifecycle.group_pids(pid), "the local AWS should still be running before teardown"
    result = _deploy_sh("--local", "--delete", "--stack-name", STACK, state_dir=deployment["state_dir"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DELETE_COMPLETE" in result.stdout
    assert lifecycle.group_pids(pid) == []
    assert lifecycle.status(state_dir=deployment["state_dir"]) is None
