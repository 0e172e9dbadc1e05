"""Batch and upload detection offline, real processes throughout: the stack deployed by the deployer on a fresh
local AWS, Step Functions' Distributed Map on moto (patched), the built Lambda zip in the local runtime.

CI-sized: ``python -m batch.demo`` over 1,100 objects (past one listObjectsV2 page) with cheap tiny images and a
few demo scenes checked against POST /detect; then a stack with the upload trigger (multi-record events, a
forced failure retried into the dead-letter queue) and a batch run scored by ``train.evaluate --detections``
exactly as the same images POSTed to the API. The 2,000-image run is the same command with --images 2000.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from batch.demo import run_demo
from localaws import lifecycle

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
TRIGGER_BUCKET = "trigger-inputs"


@pytest.fixture(scope="module")
def demo(tmp_path_factory, known_answer_bundle):
    return run_demo(bundle=known_answer_bundle.root, images=1100, scenes=4, corrupt=2, side=32,
                    state_dir=tmp_path_factory.mktemp("batch-demo"), say=lambda line: None)


def test_every_image_of_a_prefix_past_one_page_gets_a_result(demo):
    assert demo["first_run"]["exit"] == 0, demo["first_run"]
    assert demo["good_images"] == 1100 - 2 - 1
    assert demo["every_good_image_has_a_result"]
    assert demo["results_written"] == 1100 - 1  # the non-image has none
    assert "1100 objects listed: 1097 images with results, 2 failed images recorded (UnsupportedMediaType x2), 1 skipped" \
        in demo["first_run"]["summary"]


def test_scene_results_equal_post_detect_and_corrupt_files_are_failures(demo):
    assert demo["scenes_equal_to_post_detect"] == 4 and demo["scene_mismatches"] == []
    assert set(demo["corrupt_codes"].values()) == {"UnsupportedMediaType"}


def test_a_second_run_is_idempotent(demo):
    assert demo["second_run"]["exit"] == 0 and demo["second_run"]["identical_results"]


def test_the_coco_file_has_every_result(demo):
    coco = json.loads(Path(demo["coco"]).read_text())
    assert len(coco["images"]) == 1097 and coco["info"]["source"].startswith("s3://")
    assert {image["file_name"] for image in coco["images"]} >= {f"tiny/{i:05d}.jpg" for i in range(10)}


# ---------------------------------------------------------------- the upload trigger


def _env(state_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    return {**env, "LOCALAWS_HOME": str(state_dir), "LOCALAWS_ASYNC_RETRY_DELAYS_S": "0.5,1"}


@pytest.fixture(scope="module")
def trigger_stack(tmp_path_factory, known_answer_bundle):
    state_dir = tmp_path_factory.mktemp("trigger")
    env = _env(state_dir)
    result = subprocess.run([sys.executable, "-m", "deployer", "--local", "--stack-name", "trigger", "--bundle",
                             str(known_answer_bundle.root), "--parameter", f"InputBucketName={TRIGGER_BUCKET}",
                             "--no-lint", "--no-smoke"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    info = lifecycle.status(state_dir=state_dir)
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    client = lambda service: session.client(service, endpoint_url=info.endpoint)  # noqa: E731
    stack = client("cloudformation").describe_stacks(StackName="trigger")["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    api_url = re.search(r"ApiUrl: (\S+)", result.stdout).group(1)
    yield {"client": client, "outputs": outputs, "state_dir": state_dir, "env": env, "api_url": api_url}
    lifecycle.stop(state_dir=state_dir)


def _wait_for(s3, key: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return json.loads(s3.get_object(Bucket=TRIGGER_BUCKET, Key=key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_uploads_get_results_and_other_keys_do_not(trigger_stack, square_jpeg):
    s3 = trigger_stack["client"]("s3")
    s3.put_object(Bucket=TRIGGER_BUCKET, Key="images/upload 1.jpg", Body=square_jpeg)
    s3.put_object(Bucket=TRIGGER_BUCKET, Key="elsewhere/upload.jpg", Body=square_jpeg)
    s3.put_object(Bucket=TRIGGER_BUCKET, Key="images/notes.txt", Body=b"text")
    result = _wait_for(s3, "detections/upload 1.jpg.json")
    assert result["source"] == {"bucket": TRIGGER_BUCKET, "key": "images/upload 1.jpg"}
    assert [d["label"] for d in result["detections"]] == ["square"]
    time.sleep(1)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=TRIGGER_BUCKET, Prefix="detections/").get("Contents", []))
    assert keys == ["detections/upload 1.jpg.json"]


def _notification(keys: list[str]) -> dict:
    from urllib.parse import quote_plus

    template = json.loads((REPO / "tests" / "fixtures" / "events" / "s3_notification.json").read_text())["Records"][0]
    records = []
    for key in keys:
        record = json.loads(json.dumps(template))
        record["s3"]["bucket"] = {"name": TRIGGER_BUCKET, "arn": f"arn:aws:s3:::{TRIGGER_BUCKET}"}
        record["s3"]["object"]["key"] = quote_plus(key, safe="/")
        records.append(record)
    return {"Records": records}


def test_a_multi_record_event_writes_every_result(trigger_stack, square_jpeg):
    s3, lam = trigger_stack["client"]("s3"), trigger_stack["client"]("lambda")
    keys = [f"images/multi/{i}.jpg" for i in range(3)]
    for key in keys:  # under a prefix the notification also covers: the event below redelivers them
        s3.put_object(Bucket=TRIGGER_BUCKET, Key=key, Body=square_jpeg)
    reply = lam.invoke(FunctionName=trigger_stack["outputs"]["FunctionName"], InvocationType="Event",
                       Payload=json.dumps(_notification(keys)))
    assert reply["StatusCode"] == 202
    for key in keys:
        assert _wait_for(s3, f"detections/{key[len('images/'):]}.json")["detections"]


def test_batch_run_scores_exactly_as_the_api(trigger_stack, tmp_path):
    from train.demo_data import generate_dataset
    from train.evaluate import evaluate

    generate_dataset(tmp_path / "gt", num_images=6, seed=3)
    s3 = trigger_stack["client"]("s3")
    for path in sorted((tmp_path / "gt" / "images").glob("*.jpg")):
        s3.put_object(Bucket=TRIGGER_BUCKET, Key=f"images/eval/{path.name}", Body=path.read_bytes())
    coco = tmp_path / "run.coco.json"
    result = subprocess.run([sys.executable, "-m", "batch", f"s3://{TRIGGER_BUCKET}/images/eval/",
                             f"s3://{TRIGGER_BUCKET}/detections/eval/", "--local", "--stack-name", "trigger",
                             "--poll", "0.5", "--coco", str(coco)], cwd=REPO, env=trigger_stack["env"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 objects listed: 6 images with results" in result.stdout and "items done" in result.stdout
    from_batch = evaluate(detections_file=str(coco), data=str(tmp_path / "gt"), split="all", threshold=0.0,
                          progress=False)
    from_api = evaluate(endpoint=trigger_stack["api_url"], data=str(tmp_path / "gt"), split="all", threshold=0.0,
                        progress=False)
    assert from_batch["source"]["matched_images"] == 6
    assert from_batch["metrics"] == from_api["metrics"]


def test_a_wrong_output_location_is_refused(trigger_stack):
    result = subprocess.run([sys.executable, "-m", "batch", f"s3://{TRIGGER_BUCKET}/images/eval/",
                             f"s3://{TRIGGER_BUCKET}/elsewhere/", "--local", "--stack-name", "trigger"],
                            cwd=REPO, env=trigger_stack["env"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "go to s3://trigger-inputs/detections/eval/ (the stack's OutputPrefix)" in result.stderr


def test_a_failing_upload_is_retried_then_lands_in_the_dead_letter_queue(trigger_stack, square_jpeg):
    client, outputs = trigger_stack["client"], trigger_stack["outputs"]
    lam = client("lambda")
    config = lam.get_function_configuration(FunctionName=outputs["FunctionName"])["Environment"]["Variables"]
    lam.update_function_configuration(FunctionName=outputs["FunctionName"], Environment={"Variables": {
        **config, "MODEL_URI": "s3://no-such-bucket/model/"}})  # every invoke now fails at init
    client("s3").put_object(Bucket=TRIGGER_BUCKET, Key="images/doomed.jpg", Body=square_jpeg)
    sqs, records = client("sqs"), []
    deadline = time.monotonic() + 90
    while not records and time.monotonic() < deadline:
        reply = sqs.receive_message(QueueUrl=outputs["DeadLetterQueueUrl"], WaitTimeSeconds=1)
        records = [json.loads(m["Body"]) for m in reply.get("Messages", [])]
    assert records, "nothing reached the dead-letter queue"
    (record,) = records
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3  # the first try and Lambda's two retries
    from urllib.parse import unquote_plus

    assert unquote_plus(record["requestPayload"]["Records"][0]["s3"]["object"]["key"]) == "images/doomed.jpg"
