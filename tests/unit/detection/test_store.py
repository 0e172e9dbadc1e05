"""detection.store against a real moto S3 server: bytes, streamed download + sha256, errors sorted."""

import hashlib

import pytest

from detection import store
from detection.errors import BadRequest, NotFound, PayloadTooLarge


@pytest.fixture(scope="module")
def bucket(moto_endpoint):
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="store-tests")
    s3.put_object(Bucket="store-tests", Key="small.bin", Body=b"abc")
    s3.put_object(Bucket="store-tests", Key="big.bin", Body=bytes(range(256)) * 12_000)  # 3 MB: several chunks
    return "store-tests"


def test_read_returns_the_bytes(bucket):
    assert store.read(bucket, "small.bin") == b"abc"
    assert store.read(bucket, "small.bin", max_bytes=3) == b"abc"


def test_read_refuses_an_object_over_the_limit_before_reading_it(bucket):
    with pytest.raises(PayloadTooLarge, match="s3://store-tests/small.bin is 3 bytes; the limit is 2"):
        store.read(bucket, "small.bin", max_bytes=2)


@pytest.mark.parametrize("bucket_name, key, error, message", [
    ("store-tests", "missing.bin", NotFound, "s3://store-tests/missing.bin does not exist"),
    ("no-such-bucket-here", "a.bin", NotFound, "s3://no-such-bucket-here/a.bin does not exist"),
    ("not a bucket!", "a.bin", BadRequest, "is not a valid S3 location"),
])
def test_errors_are_sorted_into_caller_facing_kinds(bucket, bucket_name, key, error, message):
    with pytest.raises(error, match=message):
        store.read(bucket_name, key)
    with pytest.raises(error, match=message):
        store.download(bucket_name, key, "/dev/null")


def test_download_streams_to_disk_and_hashes_on_the_way(bucket, tmp_path):
    target = tmp_path / "big.bin"
    digest = store.download(bucket, "big.bin", target)
    data = target.read_bytes()
    assert len(data) == 3_072_000 and data[:256] == bytes(range(256))
    assert digest == hashlib.sha256(data).hexdigest()


def test_reset_client_makes_a_new_client(bucket):
    first = store.client()
    assert store.client() is first
    store.reset_client()
    assert store.client() is not first
    assert store.read(bucket, "small.bin") == b"abc"
