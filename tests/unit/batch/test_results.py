"""python -m batch's pure parts: reading a run's records, the COCO merge, progress, location checks."""

import argparse
import json
from pathlib import Path

import pytest

from batch.cli import BatchError, check_locations, parse_args, parse_s3_prefix, progress_line
from batch.results import RunCounts, coco_detections
from train.datasets import ImageRecord
from train.evaluate import read_coco_detections

OUTPUTS = {"InputBucketName": "photos", "InputPrefix": "images/", "OutputPrefix": "detections/",
           "BatchStateMachineArn": "arn:aws:states:us-east-1:1:stateMachine:x-batch"}
RESULT = {"image": {"width": 40, "height": 30}, "model": {"name": "m", "sha256": "ab"},
          "detections": [{"label": "cat", "class_id": 3, "score": 0.8, "box": [10, 5, 30, 25]},
                         {"label": "dog", "class_id": 1, "score": 0.4, "box": [0, 0, 4, 4]}]}


def test_counts_from_succeeded_and_failed_children():
    succeeded = [{"Input": {"Items": [{"Key": "images/a.jpg"}, {"Key": "images/b.jpg"}, {"Key": "images/c.txt"}]},
                  "Output": {"succeeded": 1, "failed": 1, "skipped": 1,
                             "failures": [{"key": "images/b.jpg", "code": "UnsupportedMediaType"}],
                             "skips": [{"key": "images/c.txt", "reason": "not an image"}]}}]
    failed = [{"Input": {"Items": [{"Key": "images/d.jpg"}, {"Key": "images/e.jpg"}]}, "Error": "JobFailed",
               "Cause": "boom"}]
    counts = RunCounts.from_records(succeeded=succeeded, failed=failed)
    assert (counts.listed, counts.images_succeeded, counts.skipped, counts.images_in_failed_batches) == (5, 1, 1, 2)
    assert counts.done_keys == ["images/a.jpg"] and counts.failure_codes() == {"UnsupportedMediaType": 1}
    assert "1 failed batches (2 images: JobFailed x1; rerun with --resume)" in counts.describe()


def test_empty_run():
    assert RunCounts.from_records(succeeded=[], failed=[]).describe().startswith("0 objects listed")


def test_coco_file_round_trips_through_train_evaluate(tmp_path):
    coco = coco_detections([("sub/b.jpg", RESULT), ("a.jpg", {**RESULT, "detections": []})], source="s3://photos/images/")
    assert [image["file_name"] for image in coco["images"]] == ["a.jpg", "sub/b.jpg"]
    assert coco["categories"] == [{"id": 1, "name": "dog"}, {"id": 3, "name": "cat"}]
    assert coco["annotations"][0]["bbox"] == [10, 5, 20, 20] and coco["annotations"][0]["image_id"] == 2
    path = tmp_path / "run.json"
    path.write_text(json.dumps(coco))
    records = [ImageRecord(image_id=7, path=Path("/gt/images/b.jpg"), width=40, height=30),
               ImageRecord(image_id=8, path=Path("/gt/images/missing.jpg"), width=40, height=30)]
    detections, info = read_coco_detections(path, records, threshold=0.5, max_detections=10)
    assert detections == {7: [{"label": "cat", "score": 0.8, "box": [10.0, 5.0, 30.0, 25.0]}], 8: []}
    assert info["matched_images"] == 1 and info["model"]["name"] == "m"


def test_duplicate_file_names_are_refused(tmp_path):
    coco = coco_detections([("x/a.jpg", RESULT), ("y/a.jpg", RESULT)], source="s3://p/")
    (tmp_path / "dup.json").write_text(json.dumps(coco))
    with pytest.raises(ValueError, match="two images are named a.jpg"):
        read_coco_detections(tmp_path / "dup.json", [], threshold=0.0, max_detections=1)


@pytest.mark.parametrize("counts, total, line", [
    ({}, 10, "  0/10 items done, 0 in failed batches, 0.0 images/s, ETA ?"),
    ({"succeeded": 5, "total": 20}, 10, "  5/20 items done, 0 in failed batches, 0.5 images/s, ETA 30 s"),
])
def test_progress_line(counts, total, line):
    assert progress_line(counts, total=total, elapsed_s=10) == line


@pytest.mark.parametrize("uri, bucket, prefix", [("s3://b/", "b", ""), ("s3://b/p/q/", "b", "p/q/"), ("s3://b", "b", "")])
def test_parse_s3_prefix(uri, bucket, prefix):
    assert parse_s3_prefix(uri) == (bucket, prefix)


@pytest.mark.parametrize("uri", ["b/p/", "s3:///p/", "https://b/p"])
def test_parse_s3_prefix_refuses(uri):
    with pytest.raises(BatchError):
        parse_s3_prefix(uri)


def _args(source, out=None):
    return argparse.Namespace(source=source, out=out)


def test_locations_inside_the_stack_layout():
    bucket, prefix, layout = check_locations(_args("s3://photos/images/2026/", "s3://photos/detections/2026"), OUTPUTS)
    assert (bucket, prefix, layout.result_key("images/2026/a.jpg")) == ("photos", "images/2026/", "detections/2026/a.jpg.json")


@pytest.mark.parametrize("source, out, message", [
    ("s3://other/images/", None, "outside it"),
    ("s3://photos/elsewhere/", None, "outside it"),
    ("s3://photos/images/x/", "s3://photos/out/x/", "go to s3://photos/detections/x/"),
])
def test_locations_outside_are_refused(source, out, message):
    with pytest.raises(BatchError, match=message):
        check_locations(_args(source, out), OUTPUTS)


def test_source_or_redrive_is_required():
    with pytest.raises(SystemExit):
        parse_args([])
    assert parse_args(["--redrive", "arn:x"]).redrive == "arn:x"
