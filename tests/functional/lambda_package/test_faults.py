"""Fault injection with real components, at cold start and at request time: the built Lambda zip in a local
execution environment, a real moto S3 process behind a switchable TCP proxy, real files on a real (tiny)
filesystem. Each fault gives the error Lambda would show (an init error, or a 5xx with the request id), and
the next invoke recovers once the cause is gone: nothing is cached from a failed attempt."""

from __future__ import annotations

import base64
import io
import json
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from detection.bundle import write_bundle
from detection.manifest import CLASS_MAP_FILE, MANIFEST_FILE, MODEL_FILE
from localaws.lambda_runtime import LocalFunction
from tests.conftest import load_event
from tests.support.fault_proxy import FaultProxy
from tests.support.scratch import shared_dir

BUCKET = "fault-models"


@pytest.fixture()
def proxy(moto_endpoint):
    proxy = FaultProxy(urlsplit(moto_endpoint).port)
    yield proxy
    proxy.close()


def upload(bundle_root: Path, prefix: str, **overrides: bytes) -> None:
    s3 = boto3.client("s3")
    try:
        s3.create_bucket(Bucket=BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    for name in (MANIFEST_FILE, CLASS_MAP_FILE, MODEL_FILE):
        s3.put_object(Bucket=BUCKET, Key=prefix + name, Body=overrides.get(name, (bundle_root / name).read_bytes()))


def function(aws_package, tmp_path, *, model_uri: str, endpoint: str, cache_dir: Path, timeout_s: int = 20):
    env = {"MODEL_URI": model_uri, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_MAX_ATTEMPTS": "1", "MODEL_CACHE_DIR": str(cache_dir)}
    return LocalFunction(aws_package.zip_path, env=env, function_name="detect", timeout_s=timeout_s,
                         log_path=tmp_path / "fn.log")


def detect(fn, image: bytes | None = None):
    event = load_event("direct.json") if image is None else {"image": base64.b64encode(image).decode()}
    return fn.invoke(json.dumps(event))


def assert_init_error(result, says: str):
    error = result.json()
    assert result.function_error == "Unhandled" and set(error) >= {"errorMessage", "errorType"}, error
    assert says in error["errorMessage"], error
    assert "INIT_REPORT Status: error" in result.log_tail


def assert_serves(result):
    assert result.function_error is None, result.payload[:500]
    assert [d["label"] for d in result.json()["detections"]] == ["square"]


def cached_entries(cache_dir: Path) -> list[str]:
    return sorted(p.name for p in cache_dir.iterdir()) if cache_dir.exists() else []


def test_s3_unreachable_at_cold_start_then_recovers(aws_package, known_answer_bundle, proxy, tmp_path):
    upload(known_answer_bundle.root, "reach/")
    cache = tmp_path / "cache"
    proxy.mode = "refuse"
    with function(aws_package, tmp_path, model_uri=f"s3://{BUCKET}/reach/", endpoint=proxy.url,
                  cache_dir=cache) as fn:
        assert_init_error(detect(fn), f"s3://{BUCKET}/reach/model.json")
        assert cached_entries(cache) == []
        proxy.mode = "pass"
        recovered = detect(fn)
        assert recovered.cold_start and fn.cold_starts == 2
        assert_serves(recovered)


def test_s3_slow_past_the_timeout_then_recovers(aws_package, known_answer_bundle, proxy, tmp_path):
    upload(known_answer_bundle.root, "slow/")
    proxy.delay_s = 4.0
    with function(aws_package, tmp_path, model_uri=f"s3://{BUCKET}/slow/", endpoint=proxy.url,
                  cache_dir=tmp_path / "cache", timeout_s=2) as fn:
        first = detect(fn)
        assert first.function_error == "Unhandled" and "timed out" in first.json()["errorMessage"].lower(), first.payload
        proxy.delay_s = 0.0
        assert_serves(detect(fn))


@pytest.mark.parametrize("fault, says", [
    ("truncated", "sha256"),
    ("corrupted", "sha256"),
    ("newer-schema", "this Lambda reads version 1, the bundle has 2"),
])
def test_a_bad_bundle_is_an_init_error_and_a_fixed_one_is_served(aws_package, known_answer_bundle, moto_endpoint,
                                                                   tmp_path, fault, says):
    prefix = f"{fault}/"
    model = (known_answer_bundle.root / MODEL_FILE).read_bytes()
    manifest = json.loads((known_answer_bundle.root / MANIFEST_FILE).read_text())
    broken = {"truncated": {MODEL_FILE: model[: len(model) // 2]},
              "corrupted": {MODEL_FILE: model[:100] + bytes([model[100] ^ 0xFF]) + model[101:]},
              "newer-schema": {MANIFEST_FILE: json.dumps({**manifest, "format_version": 2}).encode()}}[fault]
    upload(known_answer_bundle.root, prefix, **broken)
    cache = tmp_path / "cache"
    with function(aws_package, tmp_path, model_uri=f"s3://{BUCKET}/{prefix}", endpoint=moto_endpoint,
                  cache_dir=cache) as fn:
        assert_init_error(detect(fn), says)
        assert [name for name in cached_entries(cache) if name != "verified"] == []  # nothing from the failure
        upload(known_answer_bundle.root, prefix)  # the fixed bundle
        assert_serves(detect(fn))


@pytest.fixture()
def tiny_tmp():
    """A real 256 KiB tmpfs (root only: skipped elsewhere, with the reason). Outside /tmp: each execution
    environment gets a /tmp of its own (localaws's sandbox), which would hide one mounted there."""
    mount = shared_dir("tiny-tmp-")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)
    mount.rmdir()


def test_tmp_full_is_an_init_error_naming_the_fix_and_space_recovers(aws_package, tmp_path, tiny_tmp,
                                                                      moto_endpoint):
    big = tmp_path / "big"  # a known-answer bundle whose model is padded past the tmpfs's size
    from tests.support.known_answer import build_known_answer_bundle

    bundle = build_known_answer_bundle(big)
    model = onnx.load(bundle.root / MODEL_FILE)
    model.graph.initializer.append(numpy_helper.from_array(np.zeros(200_000, np.float32), "padding"))
    onnx.save(model, bundle.root / MODEL_FILE)
    manifest = json.loads((bundle.root / MANIFEST_FILE).read_text())
    bundle = write_bundle(big, manifest=manifest, class_map=bundle.class_map)
    upload(bundle.root, "full/")
    cache = tiny_tmp / "model-bundles"
    with function(aws_package, tmp_path, model_uri=f"s3://{BUCKET}/full/", endpoint=moto_endpoint,
                  cache_dir=cache) as fn:
        assert_init_error(detect(fn), "no space left in")
        assert [name for name in cached_entries(cache) if name != "verified"] == []
        subprocess.run(["mount", "-o", "remount,size=8m", str(tiny_tmp)], check=True)
        assert_serves(detect(fn))


def _failing_when_bright(bundle_root: Path, out: Path):
    """The known-answer graph plus a Reshape whose shape depends on the pixels: a bright image makes it
    [7, -1] over a tensor whose size 7 does not divide, so ONNX Runtime fails inside session.run."""
    model = onnx.load(bundle_root / MODEL_FILE)
    graph = model.graph
    for node in graph.node:
        node.output[:] = ["boxes_raw" if name == "boxes" else name for name in node.output]
    const = lambda name, value: helper.make_node("Constant", [], [name], value=numpy_helper.from_array(
        np.asarray(value), name))
    graph.node.extend([
        helper.make_node("ReduceMax", ["images"], ["peak"], keepdims=0),
        const("limit", np.float32(1.5)), const("six", np.int64(6)), const("one_i", np.int64(1)),
        const("minus_one", np.array([-1], np.int64)), const("zero_f", np.float32(0.0)),
        helper.make_node("Greater", ["peak", "limit"], ["bright"]),
        helper.make_node("Cast", ["bright"], ["bright_i"], to=TensorProto.INT64),
        helper.make_node("Mul", ["bright_i", "six"], ["extra"]),
        helper.make_node("Add", ["extra", "one_i"], ["rows_s"]),
        const("axes0", np.array([0], np.int64)),
        helper.make_node("Unsqueeze", ["rows_s", "axes0"], ["bright_rows"]),
        helper.make_node("Concat", ["bright_rows", "minus_one"], ["shape"], axis=0),
        helper.make_node("Reshape", ["images", "shape"], ["reshaped"]),
        helper.make_node("ReduceSum", ["reshaped"], ["total"], keepdims=0),
        helper.make_node("Mul", ["total", "zero_f"], ["nothing"]),
        helper.make_node("Add", ["boxes_raw", "nothing"], ["boxes"]),
    ])
    onnx.checker.check_model(model)
    model_path = out / "src.onnx"
    out.mkdir(parents=True)
    onnx.save(model, model_path)
    manifest = json.loads((bundle_root / MANIFEST_FILE).read_text())
    manifest.pop("model_sha256")
    class_map = {int(k): v for k, v in json.loads((bundle_root / CLASS_MAP_FILE).read_text()).items()}
    bundle = write_bundle(out, manifest=manifest, class_map=class_map, model_path=model_path)
    model_path.unlink()
    return bundle


def test_a_graph_failing_inside_session_run_is_a_500_with_the_request_id(aws_package, known_answer_bundle,
                                                                          tmp_path):
    bundle = _failing_when_bright(known_answer_bundle.root, tmp_path / "byo")
    with function(aws_package, tmp_path, model_uri=str(bundle.root), endpoint="http://127.0.0.1:9",
                  cache_dir=tmp_path / "cache") as fn:
        failed = fn.invoke(json.dumps(load_event("direct.json")), request_id="req-run-fails")
        body = failed.json()
        assert failed.function_error is None  # handled: the caller gets our 500, the container lives on
        assert body["error"]["code"] == "InternalError" and "req-run-fails" in body["error"]["message"]
        assert '"level":"ERROR"' in failed.log_tail and "Reshape" in failed.log_tail
        buffer = io.BytesIO()
        Image.new("RGB", (160, 120)).save(buffer, "PNG")  # nothing bright: the Reshape fits
        served = detect(fn, buffer.getvalue())
        assert served.function_error is None and "detections" in served.json() and not served.cold_start
        assert fn.cold_starts == 1


def test_a_full_private_tmp_is_an_init_error_naming_the_fix(aws_package, tmp_path, moto_endpoint):
    """Without root too: the environment's own /tmp (a tmpfs of EphemeralStorage MB, localaws's sandbox) cannot
    hold the model; init fails with what to change, every retry fails the same clean way (no partial copy left),
    and an environment with room (EphemeralStorage raised) serves it."""
    from tests.support.known_answer import build_known_answer_bundle

    big = tmp_path / "big"
    bundle = build_known_answer_bundle(big)
    model = onnx.load(bundle.root / MODEL_FILE)
    model.graph.initializer.append(numpy_helper.from_array(np.ones(5_000_000, np.float32), "padding"))  # 20 MB
    onnx.save(model, bundle.root / MODEL_FILE)
    manifest = json.loads((bundle.root / MANIFEST_FILE).read_text())
    bundle = write_bundle(big, manifest=manifest, class_map=bundle.class_map)
    upload(bundle.root, "private-full/")
    env = {"MODEL_URI": f"s3://{BUCKET}/private-full/", "AWS_ENDPOINT_URL": moto_endpoint,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_MAX_ATTEMPTS": "1"}
    with LocalFunction(aws_package.zip_path, env=env, function_name="detect", timeout_s=30, ephemeral_storage_mb=16,
                       log_path=tmp_path / "full.log") as fn:
        assert_init_error(detect(fn), "no space left in /tmp/model-bundles")
        assert_init_error(detect(fn), "no space left in /tmp/model-bundles")
    with LocalFunction(aws_package.zip_path, env=env, function_name="detect", timeout_s=30, ephemeral_storage_mb=64,
                       log_path=tmp_path / "roomy.log") as fn:
        assert_serves(detect(fn))
