"""S3 jobs (upload notifications, Distributed Map batches) through the handler in-process: real bundle, real
onnxruntime, a real moto S3 server process. The same events through the local AWS: tests/e2e/test_batch.py."""

from __future__ import annotations

import json

import boto3
import pytest

from detection import s3jobs
from detection.errors import BadRequest, ConfigError, EndpointError
from detection.events import Options
from tests.conftest import load_event
from tests.functional.detection.test_handler import Context, load_handler
from tests.support.known_answer import build_known_answer_bundle, square_image

BUCKET = "detection-inputs"
LAYOUT_ENV = {"INPUT_BUCKET": BUCKET, "INPUT_PREFIX": "photos/", "OUTPUT_PREFIX": "detections/"}


@pytest.fixture()
def s3(moto_endpoint, square_jpeg):
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    for key in [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]:
        client.delete_object(Bucket=BUCKET, Key=key)
    client.put_object(Bucket=BUCKET, Key="photos/square.jpg", Body=square_jpeg)
    client.put_object(Bucket=BUCKET, Key="photos/more squares/square 2.jpg", Body=square_jpeg)
    client.put_object(Bucket=BUCKET, Key="photos/broken.jpg", Body=b"\xff\xd8\xff\xe0 not really a jpeg")
    client.put_object(Bucket=BUCKET, Key="photos/readme.txt", Body=b"not an image")
    return client


@pytest.fixture()
def handler(known_answer_bundle):
    return load_handler(known_answer_bundle.root, **LAYOUT_ENV)


def result(client, key):
    return json.loads(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def without_timings(body):
    return {k: v for k, v in body.items() if k not in ("timings_ms", "source")}


def direct_body(handler, square_jpeg):
    import base64

    return handler.handle({"image": base64.b64encode(square_jpeg).decode()}, Context())


def test_upload_notification_writes_the_result_at_the_mapped_key(handler, s3, square_jpeg):
    summary = handler.handle(load_event("s3_notification.json"), Context())
    assert summary["records"] == 1 and summary["buckets"][0]["succeeded"] == 1
    written = result(s3, "detections/square.jpg.json")
    assert written["source"] == {"bucket": BUCKET, "key": "photos/square.jpg"}
    assert without_timings(written) == without_timings(direct_body(handler, square_jpeg))
    assert set(written["timings_ms"]) == {"decode", "preprocess", "inference", "postprocess", "total"}


def test_every_record_is_processed_and_the_rest_skipped_with_a_log_line(handler, s3, capsys):
    summary = handler.handle(load_event("s3_notification_multi.json"), Context())
    (bucket,) = summary["buckets"]
    assert (summary["records"], bucket["items"], bucket["succeeded"], bucket["skipped"]) == (5, 4, 2, 2)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="detections/")["Contents"]}
    assert keys == {"detections/square.jpg.json", "detections/more squares/square 2.jpg.json"}
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    skipped = {line["key"]: line["reason"] for line in lines if line["message"] == "skipped"}
    assert set(skipped) == {"photos/old.jpg", "photos/notes.txt", "detections/square.jpg.json"}
    assert "not an upload" in skipped["photos/old.jpg"] and "not an image" in skipped["photos/notes.txt"]
    assert "recursion refused" in skipped["detections/square.jpg.json"]
    assert all(line["request_id"] == "req-1234" for line in lines)


def test_batch_records_a_corrupt_image_and_returns_a_compact_summary(handler, s3, square_jpeg):
    summary = handler.handle(load_event("distributed_map_batch.json"), Context())
    assert (summary["items"], summary["succeeded"], summary["failed"], summary["skipped"]) == (3, 1, 1, 1)
    assert summary["failures"] == [{"key": "photos/broken.jpg", "code": "UnsupportedMediaType", "status": 415,
                                    "message": summary["failures"][0]["message"]}]
    assert len(json.dumps(summary)) < 1024
    assert result(s3, "detections/broken.jpg.json")["error"]["code"] == "UnsupportedMediaType"
    good = result(s3, "detections/square.jpg.json")
    assert without_timings(good) == without_timings(direct_body(handler, square_jpeg))


def test_batch_and_upload_give_the_same_result_and_a_rerun_rewrites_it(handler, s3):
    handler.handle(load_event("s3_notification.json"), Context())
    from_upload = result(s3, "detections/square.jpg.json")
    handler.handle(load_event("distributed_map_batch.json"), Context())
    handler.handle(load_event("distributed_map_batch.json"), Context())
    from_batch = result(s3, "detections/square.jpg.json")
    assert without_timings(from_batch) == without_timings(from_upload)
    assert from_batch["source"] == from_upload["source"]
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="detections/")["Contents"])
    assert keys == ["detections/broken.jpg.json", "detections/square.jpg.json"]


def test_a_resumed_batch_skips_images_with_results(handler, s3):
    event = load_event("distributed_map_batch.json")
    handler.handle(event, Context())
    s3.delete_object(Bucket=BUCKET, Key="detections/broken.jpg.json")
    event["BatchInput"]["SkipExisting"] = True
    summary = handler.handle(event, Context())
    assert (summary["succeeded"], summary["failed"], summary["skipped"]) == (0, 1, 2)
    assert {s["key"]: s["reason"] for s in summary["skips"]}["photos/square.jpg"] == "its result exists (resumed run)"


def test_batch_options_reach_the_detector(handler, s3):
    event = load_event("distributed_map_batch.json")
    event["BatchInput"]["Options"] = {"classes": ["circle"]}
    handler.handle(event, Context())
    assert result(s3, "detections/square.jpg.json")["detections"] == []
    event["BatchInput"]["Options"] = {"classes": ["no-such-class"]}
    with pytest.raises(BadRequest, match="unknown class name"):  # the whole batch is wrong: the child fails
        handler.handle(event, Context())


@pytest.mark.parametrize("event, message", [
    ({"Items": [{"Key": "photos/a.jpg"}], "BatchInput": {}}, "BatchInput must be"),
    ({"Items": [{"Size": 3}], "BatchInput": {"Bucket": BUCKET}}, r"Items\[0\] has no Key"),
    ({"Items": [], "BatchInput": {"Bucket": BUCKET, "Options": {"threshold": 7}}}, "threshold must be a number between 0 and 1"),
    ({"Items": [{"Key": "photos/a.jpg"}], "BatchInput": {"Bucket": "someone-elses"}}, "reads s3://detection-inputs/photos/ only"),
])
def test_a_bad_batch_event_raises_with_what_to_send(handler, s3, event, message):
    with pytest.raises(Exception, match=message):
        handler.handle(event, Context())


def test_failures_worth_retrying_raise_after_the_other_objects(s3, capsys):
    """A 5xx from the model (e.g. an endpoint error) must reach Lambda's retries, not be recorded as done."""
    layout = s3jobs.Layout(input_prefix="photos/", output_prefix="retry-out/", bucket=BUCKET)
    calls = []

    def detect(images, options):
        calls.append(len(images))
        return [EndpointError("the endpoint is sick") if len(calls) == 1 else {"detections": []} for _ in images]

    with pytest.raises(s3jobs.JobFailed, match=r"1 of 2 object\(s\).*photos/square.jpg: EndpointError"):
        s3jobs.process_objects(BUCKET, ["photos/square.jpg", "photos/more squares/square 2.jpg"], layout=layout,
                               options=Options(), s3=s3, detect=detect, max_bytes=1 << 20, log=print)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="retry-out/")["Contents"]]
    assert keys == ["retry-out/more squares/square 2.jpg.json"] and calls == [1, 1]


def test_a_deleted_object_is_skipped(s3):
    layout = s3jobs.Layout(input_prefix="photos/", output_prefix="gone-out/")
    summary = s3jobs.process_objects(BUCKET, ["photos/gone.jpg"], layout=layout, options=Options(), s3=s3,
                                     detect=lambda images, options: [], max_bytes=1 << 20, log=lambda line: None)
    assert summary.to_dict()["skips"] == [{"key": "photos/gone.jpg", "reason": "s3://detection-inputs/photos/gone.jpg does not exist"}]


def test_without_a_layout_an_s3_job_is_refused(known_answer_bundle, s3):
    bare = load_handler(known_answer_bundle.root)
    with pytest.raises(ConfigError, match="OUTPUT_PREFIX is unset"):
        bare.handle(load_event("s3_notification.json"), Context())


def test_output_under_input_is_an_invalid_environment(known_answer_bundle):
    with pytest.raises(ConfigError, match="OUTPUT_PREFIX 'photos/out/' is under INPUT_PREFIX 'photos/'"):
        load_handler(known_answer_bundle.root, INPUT_PREFIX="photos/", OUTPUT_PREFIX="photos/out/")


def _five_objects(s3) -> dict:
    s3.put_object(Bucket=BUCKET, Key="photos/a.png", Body=square_image(width=90, height=60, box=(5, 5, 40, 30), fmt="PNG"))
    s3.put_object(Bucket=BUCKET, Key="photos/b.png", Body=square_image(width=60, height=90, box=(20, 30, 50, 80), fmt="PNG"))
    keys = ["photos/square.jpg", "photos/broken.jpg", "photos/a.png", "photos/b.png", "photos/more squares/square 2.jpg"]
    return {"Items": [{"Key": key} for key in keys], "BatchInput": {"Bucket": BUCKET}}


def _results(s3, event) -> dict:
    return {item["Key"]: without_timings(result(s3, "detections/" + item["Key"].split("/", 1)[1] + ".json"))
            for item in event["Items"]}


@pytest.mark.parametrize("graph", ["axis", "mixing"])
def test_inference_batch_reaches_the_model(tmp_path, s3, graph):
    """INFERENCE_BATCH=3 on a graph with a batch axis: the broken image stays its own failure and the others are
    detected. The known-answer graph answers as one by one; the mixing one (images of a run see each other) shows
    that the handler really put several images in one run."""
    bundle = build_known_answer_bundle(tmp_path / "bundle", output_format="detr", batch=graph, resize="stretch")
    event = _five_objects(s3)
    written = {}
    for batch in ("1", "3"):
        summary = load_handler(bundle.root, INFERENCE_BATCH=batch, **LAYOUT_ENV).handle(event, Context())
        assert (summary["items"], summary["succeeded"], summary["failed"]) == (5, 4, 1), summary
        written[batch] = _results(s3, event)
    assert written["3"]["photos/broken.jpg"] == written["1"]["photos/broken.jpg"]
    if graph == "axis":
        assert written["3"] == written["1"]
        assert len({json.dumps(b["detections"]) for k, b in written["3"].items() if "broken" not in k}) == 3
    else:
        assert written["3"] != written["1"]


@pytest.mark.parametrize("batch, memory, threads, expected", [
    ("axis", "3538", "2", 4), ("axis", "2048", "2", 1), ("axis", "10240", "1", 1),
    ("none", "3538", "2", 1),  # no batch axis: one by one whatever the vCPUs
])
def test_auto_inference_batch_follows_the_model_and_the_functions_vcpus(tmp_path, batch, memory, threads, expected):
    bundle = build_known_answer_bundle(tmp_path / "bundle", output_format="detr", batch=batch, resize="stretch")
    service = load_handler(bundle.root, AWS_LAMBDA_FUNCTION_MEMORY_SIZE=memory, ORT_THREADS=threads, **LAYOUT_ENV)
    assert service.images_per_run() == expected
