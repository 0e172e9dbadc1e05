"""Model updates under load, offline: the deployer (``./deploy.sh`` = ``python -m deployer``) deploys bundle A on
the local AWS, then while a bounded client loop keeps POSTing to the local API it switches to bundle B
(``--bundle B``) and back (``--rollback``). No request may fail; answers move from A's sha256 to B's and back.

CI-sized by default; ``SWITCH_LOAD_WORKERS`` / ``SWITCH_LOAD_MAX`` make it larger (see README, Operating it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localaws import lifecycle
from tests.support.known_answer import build_known_answer_bundle
from tests.support.load import LoadLoop

REPO = Path(__file__).resolve().parents[2]
STACK = "switch-detect"
WORKERS = int(os.environ.get("SWITCH_LOAD_WORKERS", "4"))
MAX_REQUESTS = int(os.environ.get("SWITCH_LOAD_MAX", "20000"))  # a bound, not a target: the deploy sets the length
PAUSE_S = float(os.environ.get("SWITCH_LOAD_PAUSE_S", "0.01"))
# The local API enforces the stage throttling (429 is a correct answer, not a failed switch): lift it here.
NO_THROTTLE = ["--parameter", "ThrottlingBurstLimit=5000", "--parameter", "ThrottlingRateLimit=10000"]
pytestmark = pytest.mark.slow


def deployer(*args: str, state_dir: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env["LOCALAWS_HOME"] = str(state_dir)
    result = subprocess.run([sys.executable, "-m", "deployer", "--local", "--stack-name", STACK, *args], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, square_jpeg):
    state_dir = tmp_path_factory.mktemp("localaws")
    bundles = {name: build_known_answer_bundle(tmp_path_factory.mktemp(name), output_format=fmt)
               for name, fmt in (("a", "boxes_scores_labels"), ("b", "detr"))}
    image = tmp_path_factory.mktemp("image") / "square.jpg"
    image.write_bytes(square_jpeg)
    first = deployer("--bundle", str(bundles["a"].root), "--image", str(image), "--no-lint", *NO_THROTTLE,
                     state_dir=state_dir)
    url = re.search(r"ApiUrl: (\S+)", first.stdout).group(1) + "/detect"
    yield {"state_dir": state_dir, "bundles": bundles, "image": image, "url": url,
           "sha": {name: b.manifest.model_sha256 for name, b in bundles.items()}}
    try:
        deployer("--delete", state_dir=state_dir)
    finally:
        if lifecycle.status(state_dir=state_dir) is not None:
            lifecycle.stop(state_dir=state_dir)


def test_deployed_stack_has_its_alarms_and_dashboard(deployment):
    import boto3

    info = lifecycle.status(state_dir=deployment["state_dir"])
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name="us-east-1")
    cfn = session.client("cloudformation", endpoint_url=info.endpoint)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]}
    resources = {r["LogicalResourceId"]: r.get("PhysicalResourceId")
                 for r in cfn.describe_stack_resources(StackName=STACK)["StackResources"]}
    alarms = session.client("cloudwatch", endpoint_url=info.endpoint).describe_alarms(
        AlarmNames=[resources[name] for name in ("FunctionErrorsAlarm", "ThrottlesAlarm", "ServerErrorRateAlarm",
                                                 "DurationAlarm")])["MetricAlarms"]
    assert len(alarms) == 4
    assert {tuple(a["AlarmActions"]) for a in alarms} == {(outputs["AlarmTopicArn"],)}
    assert "dashboards:name=" in outputs["DashboardUrl"]


def switch_under_load(deployment, square_jpeg, *args: str) -> tuple[LoadLoop, float, subprocess.CompletedProcess]:
    """Run the deployer with ``args`` while the loop sends requests; returns the loop, when the deployer returned
    and its output."""
    with LoadLoop(deployment["url"], square_jpeg, workers=WORKERS, max_requests=MAX_REQUESTS, pause_s=PAUSE_S) as loop:
        loop.wait_for(2 * WORKERS)
        result = deployer(*args, "--image", str(deployment["image"]), state_dir=deployment["state_dir"])
        returned = time.monotonic()
        settled = len(loop.answers)
        loop.wait_for(settled + 4 * WORKERS)
    print(f"{' '.join(args)}: {loop.summary()}")
    assert len(loop.answers) < MAX_REQUESTS, "the loop hit its bound before the switch ended: raise SWITCH_LOAD_MAX"
    return loop, returned, result


def moved(loop: LoadLoop, *, old: str, new: str, returned: float) -> None:
    assert loop.failures() == [], loop.failures()[:5]
    assert {a.sha256 for a in loop.answers} <= {old, new}
    ordered = sorted(loop.answers, key=lambda a: a.sent)
    assert ordered[0].sha256 == old  # traffic was on the old model before the switch
    after = [a for a in ordered if a.sent > returned]
    assert after and {a.sha256 for a in after} == {new}, "requests sent after the deployer returned must get the new model"
    first_new = next(i for i, a in enumerate(ordered) if a.sha256 == new)
    # once requests start on the new model, a later-sent old answer can only be one already in flight then
    stragglers = [a for a in ordered[first_new:] if a.sha256 == old]
    assert len(stragglers) <= WORKERS, stragglers


def test_switch_to_a_new_bundle_under_load_fails_no_request(deployment, square_jpeg):
    sha = deployment["sha"]
    assert sha["a"] != sha["b"]
    loop, returned, result = switch_under_load(deployment, square_jpeg, "--bundle", str(deployment["bundles"]["b"].root),
                                               "--no-lint", *NO_THROTTLE)
    assert "switching the served model" in result.stdout
    assert f"served by model sha256 {sha['b'][:12]}" in result.stdout
    moved(loop, old=sha["a"], new=sha["b"], returned=returned)


def test_rollback_under_load_fails_no_request(deployment, square_jpeg):
    sha = deployment["sha"]
    loop, returned, result = switch_under_load(deployment, square_jpeg, "--rollback")
    assert f"served by model sha256 {sha['a'][:12]}" in result.stdout
    moved(loop, old=sha["b"], new=sha["a"], returned=returned)


def test_rollback_twice_is_forward_again_and_nothing_to_roll_back_is_a_clear_error(deployment, tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env["LOCALAWS_HOME"] = str(deployment["state_dir"])
    missing = subprocess.run([sys.executable, "-m", "deployer", "--local", "--stack-name", "never-deployed",
                              "--rollback"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "nothing to roll back" in missing.stderr, missing.stderr[-2000:]
