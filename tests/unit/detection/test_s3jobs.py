"""The S3 layout (key mapping, skips, recursion refusal) and event recognition, pure functions."""

import pytest

from detection.errors import ConfigError
from detection.events import event_kind
from detection.s3jobs import Layout, notification_objects
from detection.settings import Settings
from tests.conftest import load_event

LAYOUT = Layout(input_prefix="images/", output_prefix="detections/")


@pytest.mark.parametrize("key, expected", [
    ("images/cat.jpg", "detections/cat.jpg.json"),
    ("images/2026/12/dog.PNG", "detections/2026/12/dog.PNG.json"),
    ("images/a b+c.jpeg", "detections/a b+c.jpeg.json"),
])
def test_result_key(key, expected):
    assert LAYOUT.result_key(key) == expected


@pytest.mark.parametrize("key, reason", [
    ("images/cat.jpg", None),
    ("images/x.webp", None),
    ("images/", "a folder marker"),
    ("images/sub/", "a folder marker"),
    ("images/notes.txt", "not an image"),
    ("images/archive.jpg.zip", "not an image"),
    ("other/cat.jpg", "outside the input prefix"),
    ("detections/cat.jpg.json", "recursion refused"),
])
def test_skip_reason(key, reason):
    got = LAYOUT.skip_reason(key)
    assert (got is None) if reason is None else (reason in got)


@pytest.mark.parametrize("input_prefix, output_prefix", [
    ("", "detections/"), ("images/", "images/detections/"), ("images/", "images/"), ("images/", ""),
    ("data/images/", "data/"),
])
def test_output_under_input_is_refused(input_prefix, output_prefix):
    with pytest.raises(ConfigError):
        Layout(input_prefix=input_prefix, output_prefix=output_prefix)


def test_sibling_prefixes_are_fine():
    assert Layout(input_prefix="images/", output_prefix="images-detections/").result_key("images/a.jpg") == \
        "images-detections/a.jpg.json"


@pytest.mark.parametrize("env, expected", [
    ({}, None),
    ({"OUTPUT_PREFIX": " "}, None),
    ({"INPUT_BUCKET": "b", "INPUT_PREFIX": "in/", "OUTPUT_PREFIX": "out/"}, Layout("in/", "out/", "b")),
])
def test_layout_from_settings(env, expected):
    assert Settings.from_env(env).s3_layout == expected


@pytest.mark.parametrize("event, kind", [
    ({"Records": [{"s3": {}}]}, "s3_notification"),
    ({"Records": []}, "direct"),
    ({"Records": [{"Sns": {}}]}, "direct"),
    ({"Items": [], "BatchInput": {}}, "batch"),
    ({"Items": []}, "direct"),
    ({"image": "aGk="}, "direct"),
    ([1, 2], "direct"),
])
def test_job_events_are_recognised(event, kind):
    assert event_kind(event) == kind


def test_notification_objects_decode_keys_and_skip_removals():
    skipped = []
    objects = notification_objects(load_event("s3_notification_multi.json"), skipped.append)
    assert objects == [("detection-inputs", "photos/square.jpg"), ("detection-inputs", "photos/more squares/square 2.jpg"),
                       ("detection-inputs", "photos/notes.txt"), ("detection-inputs", "detections/square.jpg.json")]
    assert [line["key"] for line in skipped] == ["photos/old.jpg"]
