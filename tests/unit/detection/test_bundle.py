import copy
import json

import pytest

from detection.bundle import read_bundle
from detection.fetch import fetch_bundle
from detection.manifest import example_manifest, parse_class_map, parse_manifest
from detection.store import split_s3_uri
from detection.errors import BundleError


def _with(path, value):
    data = copy.deepcopy(example_manifest())
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return data


_DELETE = object()


def test_example_manifest_parses_with_defaults():
    manifest = parse_manifest(example_manifest())
    assert manifest.preprocessing.resize == "letterbox"
    assert manifest.preprocessing.mean == (0.485, 0.456, 0.406)
    assert manifest.output.format == "boxes_scores_labels"
    assert manifest.score_threshold == 0.5


def test_manifest_round_trips_through_to_dict():
    manifest = parse_manifest(example_manifest())
    assert parse_manifest(json.loads(json.dumps(manifest.to_dict()))) == manifest


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("format_version", 2, "format_version"),
        ("name", _DELETE, "name: is required"),
        ("input", _DELETE, "input: is required"),
        ("input.height", 0, "input.height: must be a positive integer"),
        ("input.width", "640", "input.width"),
        ("input.layout", "NHWC", "input.layout: must be one of NCHW"),
        ("preprocessing.resize", "crop", "preprocessing.resize: must be one of letterbox, stretch"),
        ("preprocessing.pad_position", "top_left", "preprocessing.pad_position"),
        ("preprocessing.antialias", "yes", "preprocessing.antialias"),
        ("preprocessing.std", None, "give both mean and std"),
        ("preprocessing.mean", [0.5, 0.5], "preprocessing.mean"),
        ("preprocessing.std", [0.2, 0.0, 0.2], "preprocessing.std[1]: must be > 0"),
        ("preprocessing.scale", -1, "preprocessing.scale"),
        ("preprocessing.colour", "RGB", "unknown key(s) colour"),
        ("output.format", "yolo", "output.format: must be one of boxes_scores_labels, detr"),
        ("output.scores", _DELETE, "output.scores: is required"),
        ("model_sha256", "abc", "model_sha256"),
        ("score_threshold", 1.5, "score_threshold"),
        ("max_detections", 0, "max_detections"),
        ("labels", {"offset": "1"}, "labels.offset"),
        ("extra", 1, "unknown key(s) extra"),
    ],
)
def test_bad_manifest_names_the_key(path, value, message):
    with pytest.raises(BundleError, match="invalid manifest") as info:
        parse_manifest(_with(path, value))
    assert message in str(info.value)


@pytest.mark.parametrize("data", [None, [], "model", 3])
def test_manifest_must_be_an_object(data):
    with pytest.raises(BundleError, match="JSON object"):
        parse_manifest(data)


def test_detr_manifest_needs_logits():
    data = _with("output", {"format": "detr", "boxes": "pred_boxes"})
    with pytest.raises(BundleError, match="output.logits: is required"):
        parse_manifest(data)


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"1": "person", "2": "bicycle"}, {1: "person", 2: "bicycle"}),
        ({"background": 0, "milk_bottle": 1, "carton": 2}, {0: "background", 1: "milk_bottle", 2: "carton"}),
        (["cat", "dog"], {0: "cat", 1: "dog"}),
        ({"id2label": {"0": "cat"}}, {0: "cat"}),
        ({"class_map": {"cat": 3}}, {3: "cat"}),
    ],
)
def test_class_map_shapes(data, expected):
    assert parse_class_map(data) == expected


@pytest.mark.parametrize(
    "data, message",
    [
        ({}, "non-empty"),
        ([], "non-empty"),
        ({"cat": 1, "dog": 1}, "id 1 is used by"),
        ({"x": "cat"}, "not an integer class id"),
        ({"cat": 1, "2": "dog"}, "all names"),
        ([1, 2], "class names"),
    ],
)
def test_bad_class_maps(data, message):
    with pytest.raises(BundleError, match=message):
        parse_class_map(data)


def test_read_bundle_detects_a_swapped_model(known_answer_bundles, tmp_path):
    bundle = known_answer_bundles()
    for name in ("model.json", "class_map.json"):
        (tmp_path / name).write_bytes((bundle.root / name).read_bytes())
    (tmp_path / "model.onnx").write_bytes(b"not the exported model")
    with pytest.raises(BundleError, match="corrupt or mixed"):
        read_bundle(tmp_path)


def test_read_bundle_missing_files(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        read_bundle(tmp_path / "nowhere")
    with pytest.raises(BundleError, match="no model.json"):
        read_bundle(tmp_path)


@pytest.mark.parametrize("uri, expected", [("s3://b/p/", ("b", "p/")), ("s3://b", ("b", "")), ("s3://b/k.json", ("b", "k.json"))])
def test_split_s3_uri(uri, expected):
    assert split_s3_uri(uri) == expected


@pytest.mark.parametrize("uri", ["http://b/p", "s3://", "b/p"])
def test_split_s3_uri_rejects(uri):
    with pytest.raises(ValueError):
        split_s3_uri(uri)


def _upload(s3, bundle, bucket, prefix):
    for name in ("model.json", "class_map.json", "model.onnx"):
        s3.put_object(Bucket=bucket, Key=prefix + name, Body=(bundle.root / name).read_bytes())


def test_fetch_bundle_from_real_s3_follows_latest_and_reuses_cache(moto_endpoint, known_answer_bundle, tmp_path):
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="models")
    _upload(s3, known_answer_bundle, "models", "square/abc123/")
    s3.put_object(Bucket="models", Key="square/latest.json", Body=json.dumps({"uri": "s3://models/square/abc123/"}))

    fetched = fetch_bundle("s3://models/square/", cache_dir=tmp_path)
    assert fetched.manifest == known_answer_bundle.manifest
    from detection.fetch import cache_key

    files = [(known_answer_bundle.root / name).read_bytes() for name in ("model.json", "class_map.json")]
    assert fetched.root == tmp_path / cache_key(*files, None)
    assert (fetched.root / "model.onnx").read_bytes() == (known_answer_bundle.root / "model.onnx").read_bytes()

    # Warm: the model object is gone from S3, yet the cached copy is used without downloading it.
    s3.delete_object(Bucket="models", Key="square/abc123/model.onnx")
    assert fetch_bundle("s3://models/square/abc123/", cache_dir=tmp_path).root == fetched.root


def test_fetch_bundle_rejects_a_corrupt_upload(moto_endpoint, known_answer_bundle, tmp_path):
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="corrupt")
    _upload(s3, known_answer_bundle, "corrupt", "m/")
    s3.put_object(Bucket="corrupt", Key="m/model.onnx", Body=b"truncated")
    with pytest.raises(BundleError, match="sha256"):
        fetch_bundle("s3://corrupt/m/", cache_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == []  # nothing cached from the failed attempt


def test_fetch_bundle_missing_prefix(moto_endpoint, tmp_path):
    import boto3

    boto3.client("s3").create_bucket(Bucket="empty")
    with pytest.raises(BundleError, match="no model.json or latest.json"):
        fetch_bundle("s3://empty/nothing/", cache_dir=tmp_path)


def test_fetch_bundle_brings_a_matching_pre_optimized_model(moto_endpoint, known_answer_bundle, tmp_path):
    import shutil

    import boto3

    from detection.session import optimize_for_serving, pre_optimized

    local = tmp_path / "bundle"
    shutil.copytree(known_answer_bundle.root, local)
    optimize_for_serving(local)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="optimized")
    for path in local.iterdir():
        s3.put_object(Bucket="optimized", Key="m/" + path.name, Body=path.read_bytes())
    fetched = fetch_bundle("s3://optimized/m/", cache_dir=tmp_path / "cache")
    assert pre_optimized(fetched.model_path, sha256=fetched.manifest.model_sha256) is not None

    # a sidecar stamped on another CPU architecture: the big file is not downloaded at all
    sidecar = json.loads((local / "model.optimized.json").read_text())
    s3.put_object(Bucket="optimized", Key="m/model.optimized.json", Body=json.dumps({**sidecar, "machine": "riscv"}))
    foreign = fetch_bundle("s3://optimized/m/", cache_dir=tmp_path / "cache2")
    assert not (foreign.root / "model.optimized.onnx").exists()

    # the sidecar and graph without their weights file: neither optimized file is kept, model.onnx serves
    s3.put_object(Bucket="optimized", Key="m/model.optimized.json", Body=json.dumps(sidecar))
    s3.delete_object(Bucket="optimized", Key="m/model.optimized.weights")
    partial = fetch_bundle("s3://optimized/m/", cache_dir=tmp_path / "cache3")
    assert not (partial.root / "model.optimized.onnx").exists()
    assert not (partial.root / "model.optimized.weights").exists()
    assert pre_optimized(partial.model_path, sha256=partial.manifest.model_sha256) is None


def test_cache_is_keyed_by_every_bundle_file(moto_endpoint, known_answer_bundle, tmp_path):
    """A changed class map (same model) is fetched again, not served from the cache."""
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="rekeyed")
    _upload(s3, known_answer_bundle, "rekeyed", "m/")
    first = fetch_bundle("s3://rekeyed/m/", cache_dir=tmp_path)
    s3.put_object(Bucket="rekeyed", Key="m/class_map.json", Body=json.dumps({"1": "box", "2": "ring"}))
    second = fetch_bundle("s3://rekeyed/m/", cache_dir=tmp_path)
    assert first.class_map[1] == "square" and second.class_map == {1: "box", 2: "ring"}
    assert second.root != first.root


@pytest.mark.parametrize("key", ["model_file", "class_map_file"])
@pytest.mark.parametrize("name", ["../escape.onnx", "sub/model.onnx", "/etc/passwd", "..", "a\\b", ""])
def test_bundle_file_names_cannot_leave_the_bundle(key, name):
    with pytest.raises(BundleError, match=f"{key}: must be a plain file name"):
        parse_manifest({**example_manifest(), key: name})


@pytest.mark.parametrize("pointer", [b'{"uri": 5}', b'{"uri": null}', b'{"uri": ["s3://a/b/"]}', b'[1]', b'"s3://x/"'])
def test_latest_pointer_of_the_wrong_type_is_a_bundle_error(moto_endpoint, tmp_path, pointer):
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="pointers")
    s3.put_object(Bucket="pointers", Key="m/latest.json", Body=pointer)
    with pytest.raises(BundleError, match="latest.json is not"):
        fetch_bundle("s3://pointers/m/", cache_dir=tmp_path)
