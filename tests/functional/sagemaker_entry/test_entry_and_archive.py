"""The entry point's four functions with real onnxruntime on CPU (same fixtures, same detections as the
Lambda path), and the model.tar.gz: its layout, and model_fn loaded from the extracted code in a subprocess."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tarfile

import pytest

from detection.image import decode_image
from detection.pipeline import Detector
from detection.postprocess import postprocess
from detection.remote import decode_outputs, encode_array, resize_for_model
from sagemaker_entry import inference
from lambda_build.sagemaker import PackagingError, build_model_archive
from tests.conftest import load_event

VARIANTS = [{}, {"output_format": "detr"}, {"resize": "stretch"}, {"pad_position": "bottom_right"},
            {"output_format": "detr", "resize": "stretch", "pad_position": "bottom_right"}]
SQUARE = [40.0, 30.0, 120.0, 90.0]


def detections(body):
    return body["detections"]


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: "-".join(v.values()) or "default")
def served(request, known_answer_bundles):
    bundle = known_answer_bundles(**request.param)
    return bundle, inference.model_fn(str(bundle.root)), Detector(bundle)


@pytest.mark.parametrize("event_name", ["direct.json", "direct_options.json"])
def test_image_requests_give_the_lambda_paths_response(served, event_name):
    bundle, model, lambda_detector = served
    event = load_event(event_name)
    options = {k: v for k, v in event.items() if k != "image"}
    expected = lambda_detector.detect_bytes(base64.b64decode(event["image"]), threshold=options.get("threshold"),
                                            classes=options.get("classes"),
                                            max_detections=options.get("max_detections"))
    for body, content_type in [(base64.b64decode(event["image"]), "image/jpeg"),
                               (base64.b64decode(event["image"]), "application/x-image"),
                               (json.dumps(event), "application/json; charset=utf-8")]:
        if content_type != "application/json; charset=utf-8" and options:
            continue  # raw image requests carry no options
        payload, out_type = inference.output_fn(inference.predict_fn(inference.input_fn(body, content_type), model),
                                                "application/json")
        got = json.loads(payload)
        assert out_type == "application/json"
        assert detections(got) == detections(expected) and got["model"] == expected["model"]
        assert got["image"] == {"width": 160, "height": 120}
    if not options:
        assert [d["box"] for d in detections(expected)] == [pytest.approx(SQUARE, abs=1.5)]


def test_tensor_requests_give_the_same_detections(served, square_jpeg):
    bundle, model, lambda_detector = served
    expected = lambda_detector.detect_bytes(square_jpeg)
    decoded = decode_image(square_jpeg)
    image, geometry = resize_for_model(decoded.array, manifest=bundle.manifest, original_size=(160, 120))
    payload, content_type = inference.output_fn(
        inference.predict_fn(inference.input_fn(encode_array(image), "application/x-npy"), model), "*/*")
    outputs, sha = decode_outputs(payload)
    assert content_type == "application/x-npz" and sha == bundle.manifest.model_sha256
    found = postprocess(outputs, manifest=bundle.manifest, geometry=geometry, class_map=bundle.class_map)
    assert [d.to_dict() for d in found] == detections(expected)


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "fragment"),
    [
        (b"", "image/jpeg", "application/json", 415, "empty image"),
        (b"not an image", "image/png", "application/json", 415, "not a supported image"),
        (b"{", "application/json", "application/json", 400, "not valid JSON"),
        (b'{"threshold": 0.3}', "application/json", "application/json", 400, '{"image"'),
        (b'{"image": "aGk=", "threshold": 7}', "application/json", "application/json", 400, "threshold"),
        (b"\x93NUMPY", "application/x-npy", "application/x-npz", 400, ".npy"),
        (b"abc", "text/csv", "application/json", 415, "text/csv"),
        (b"abc", "", "application/json", 415, "not supported"),
    ],
)
def test_bad_requests_get_a_status_and_a_message(served, body, content_type, accept, status, fragment):
    _, model, _ = served
    from detection.errors import DetectionError

    with pytest.raises(DetectionError) as raised:
        inference.output_fn(inference.predict_fn(inference.input_fn(body, content_type), model), accept)
    assert raised.value.status == status and fragment in raised.value.message


def test_pickled_arrays_are_refused(served):
    import io

    import numpy as np
    from detection.errors import BadRequest

    buffer = io.BytesIO()
    np.save(buffer, np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(BadRequest):
        inference.input_fn(buffer.getvalue(), "application/x-npy")


def test_accept_must_match_the_answer(served, square_jpeg):
    _, model, _ = served
    from detection.errors import UnsupportedMediaType

    with pytest.raises(UnsupportedMediaType):
        inference.output_fn(inference.predict_fn(inference.input_fn(square_jpeg, "image/jpeg"), model), "text/csv")


# ---------------------------------------------------------------- the archive


@pytest.fixture(scope="module")
def archive(known_answer_bundle, tmp_path_factory):
    out = tmp_path_factory.mktemp("archive") / "gpu" / "model.tar.gz"
    return build_model_archive(known_answer_bundle.root, "gpu", out, wheels=None)


def test_archive_layout(archive, known_answer_bundle):
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        requirements = tar.extractfile("code/requirements.txt").read().decode()
        build = json.loads(tar.extractfile("code/build.json").read())
        model = tar.extractfile("model.onnx").read()
    assert {"model.onnx", "model.json", "class_map.json", "code/inference.py", "code/requirements.txt",
            "code/detection/__init__.py", "code/detection/pipeline.py", "code/detection/remote.py"} <= names
    assert not any("__pycache__" in n or n.startswith(("/", "..")) for n in names)
    assert requirements.strip().splitlines()[-1] == "onnxruntime-gpu==1.31.1" and "--no-index" not in requirements
    assert build["python"] == "3.12" and build["model_sha256"] == known_answer_bundle.manifest.model_sha256
    assert model == known_answer_bundle.model_path.read_bytes()


def test_model_fn_loads_from_the_extracted_code_dir(archive, tmp_path, square_jpeg):
    model_dir = tmp_path / "opt-ml-model"
    with tarfile.open(archive) as tar:
        tar.extractall(model_dir, filter="data")
    (tmp_path / "photo.jpg").write_bytes(square_jpeg)
    script = (
        "import json, sys, detection, inference\n"
        "assert detection.__file__.startswith(sys.argv[1]), detection.__file__\n"
        "model = inference.model_fn(sys.argv[1].rsplit('/code', 1)[0])\n"
        "body, ctype = inference.output_fn(inference.predict_fn(inference.input_fn(open(sys.argv[2], 'rb').read(), "
        "'image/jpeg'), model), 'application/json')\n"
        "print(json.dumps(json.loads(body)['detections']))\n"
    )
    code_dir = str(model_dir / "code")
    env = {**os.environ, "PYTHONPATH": code_dir}  # SageMaker puts code/ first on the path
    result = subprocess.run([sys.executable, "-c", script, code_dir, str(tmp_path / "photo.jpg")], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    (found,) = json.loads(result.stdout)
    assert found["label"] == "square" and found["box"] == pytest.approx(SQUARE, abs=1.5)


@pytest.mark.parametrize(
    ("target", "out_name", "wheels", "fragment"),
    [
        ("cpu", "model.tar.gz", None, "unknown target"),
        ("", "model.tar.gz", None, "unknown target"),
        ("gpu", "model.zip", None, ".tar.gz"),
        ("gpu", "model.tar.gz", "empty-dir", "no .whl"),
    ],
)
def test_packaging_refuses_bad_arguments(known_answer_bundle, tmp_path, target, out_name, wheels, fragment):
    if wheels:
        (tmp_path / wheels).mkdir()
        wheels = tmp_path / wheels
    with pytest.raises(PackagingError, match=fragment.replace(".", r"\.")):
        build_model_archive(known_answer_bundle.root, target, tmp_path / out_name, wheels=wheels)


def test_vendored_wheels_make_an_offline_requirements_file(known_answer_bundle, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_27_x86_64.whl").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    out = build_model_archive(known_answer_bundle.root, "inferentia", tmp_path / "model.tar.gz", wheels=wheels,
                              neuron_trace=False)
    with tarfile.open(out) as tar:
        requirements = tar.extractfile("code/requirements.txt").read().decode().splitlines()
        build = json.loads(tar.extractfile("code/build.json").read())
        assert "code/wheels/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_27_x86_64.whl" in tar.getnames()
    assert requirements[1:3] == ["--no-index", "--find-links wheels"]
    assert "onnx2torch==1.5.15" in requirements
    assert build == {**build, "target": "inferentia", "python": "3.10", "neuron_precompiled": False, "wheels_vendored": True}


def test_cli_exit_codes(known_answer_bundle, tmp_path):
    base = [sys.executable, "-m", "lambda_build.sagemaker", "--target", "gpu", "--wheels", "none"]
    ok = subprocess.run([*base, "--bundle", str(known_answer_bundle.root), "--out", str(tmp_path / "m.tar.gz")],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and ok.stdout.strip().endswith("m.tar.gz"), ok.stderr
    bad = subprocess.run([*base, "--bundle", str(tmp_path / "missing"), "--out", str(tmp_path / "n.tar.gz")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "does not exist" in bad.stderr
