"""detection.fetch: the model is hashed once per environment (while downloading, or on the first local read),
then vouched for by a stat; damage since is caught; the prefetch thread hands back its bundle or its error."""

import os
import shutil

import pytest

from detection.bundle import VERIFIED_FILE
from detection.errors import BundleError
from detection.fetch import BundlePrefetch, confirm_intact, fetch_bundle


def _overwrite_keeping_stat(path, data):
    """Same size, same inode, same mtime: what a stat cannot tell from the verified file."""
    stat = os.stat(path)
    with open(path, "r+b") as handle:
        handle.write(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.fixture
def local_copy(known_answer_bundle, tmp_path):
    root = tmp_path / "bundle"
    shutil.copytree(known_answer_bundle.root, root)
    return root


@pytest.fixture
def s3_bundle(moto_endpoint, known_answer_bundle, request):
    import boto3

    s3 = boto3.client("s3")
    bucket = "fetch-" + request.node.name.replace("_", "-")[:40].lower().strip("-")
    s3.create_bucket(Bucket=bucket)
    for name in ("model.json", "class_map.json", "model.onnx"):
        s3.put_object(Bucket=bucket, Key="m/" + name, Body=(known_answer_bundle.root / name).read_bytes())
    return f"s3://{bucket}/m/"


def test_local_bundle_is_hashed_once_then_trusted_by_stat(local_copy, tmp_path):
    cache = tmp_path / "cache"
    first = fetch_bundle(str(local_copy), cache_dir=cache)
    model = first.model_path
    size = model.stat().st_size
    # a corruption a stat cannot see is not seen: proof the second read does not hash the file again
    _overwrite_keeping_stat(model, b"\0" * 16)
    assert model.stat().st_size == size
    assert fetch_bundle(str(local_copy), cache_dir=cache).manifest == first.manifest
    # any visible change (here: a new mtime) sends it back through the hash, which catches it
    os.utime(model, ns=(model.stat().st_atime_ns, model.stat().st_mtime_ns + 1_000_000))
    with pytest.raises(BundleError, match="sha256"):
        fetch_bundle(str(local_copy), cache_dir=cache)


def test_local_bundle_with_a_read_only_cache_is_hashed_every_time(local_copy, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory would go")
    fetch_bundle(str(local_copy), cache_dir=blocker)
    _overwrite_keeping_stat(local_copy / "model.onnx", b"\0" * 16)
    with pytest.raises(BundleError, match="sha256"):
        fetch_bundle(str(local_copy), cache_dir=blocker)


def test_s3_bundle_verified_while_downloading_and_marked(s3_bundle, known_answer_bundle, tmp_path):
    fetched = fetch_bundle(s3_bundle, cache_dir=tmp_path)
    assert (fetched.root / VERIFIED_FILE).is_file()
    assert fetched.model_path.read_bytes() == known_answer_bundle.model_path.read_bytes()
    assert confirm_intact(fetched, cache_dir=tmp_path)


def test_s3_cache_damaged_since_verification_is_downloaded_again(s3_bundle, known_answer_bundle, tmp_path):
    fetched = fetch_bundle(s3_bundle, cache_dir=tmp_path)
    fetched.model_path.write_bytes(b"damaged")
    assert not confirm_intact(fetched, cache_dir=tmp_path)
    again = fetch_bundle(s3_bundle, cache_dir=tmp_path)
    assert again.root == fetched.root
    assert again.model_path.read_bytes() == known_answer_bundle.model_path.read_bytes()
    assert confirm_intact(again, cache_dir=tmp_path)


def test_confirm_intact_rehashes_without_a_marker(local_copy, tmp_path):
    bundle = fetch_bundle(str(local_copy), cache_dir=tmp_path / "cache")
    assert confirm_intact(bundle, cache_dir=tmp_path / "elsewhere")  # no marker there: hashed, matches
    (local_copy / "model.onnx").write_bytes(b"x")
    assert not confirm_intact(bundle, cache_dir=tmp_path / "cache")


def test_prefetch_hands_back_the_bundle(s3_bundle, known_answer_bundle, tmp_path):
    prefetch = BundlePrefetch(s3_bundle, cache_dir=tmp_path)
    assert prefetch.result().manifest == known_answer_bundle.manifest
    assert prefetch.result() is prefetch.result()


def test_prefetch_raises_the_fetch_error_in_the_caller(moto_endpoint, tmp_path):
    import boto3

    boto3.client("s3").create_bucket(Bucket="fetch-empty")
    prefetch = BundlePrefetch("s3://fetch-empty/nothing/", cache_dir=tmp_path)
    with pytest.raises(BundleError, match="no model.json or latest.json"):
        prefetch.result()
