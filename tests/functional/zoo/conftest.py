"""What every new zoo family must show, as helpers its test file calls: it exports offline with random init
through the parity gate, the unchanged handler serves the bundle, and ``python -m train fit`` trains it.

CI-sized: input 160 (DETR families need only ``num_queries`` feature positions: 160 gives 525 for 300 at
strides 8/16/32; a family without stride 8 passes a larger ``input_size``), two parity images, a one-epoch run
on four generated images."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import zoo
from detection.bundle import Bundle, read_bundle
from export.api import export_bundle
from export.images import ParityImage, real_photo_paths, synthetic_scenes
from train.demo_data import generate_dataset

REPO = Path(__file__).resolve().parents[3]
SMALL_INPUT = 160


class Context:
    aws_request_id = "zoo-family-check"


@pytest.fixture(scope="session")
def two_parity_images() -> list[ParityImage]:
    photo = next(p for p in real_photo_paths() if p.name == "grace_hopper.jpg")
    return [ParityImage(photo.name, photo.read_bytes()), next(s for s in synthetic_scenes() if "landscape" in s.name)]


@pytest.fixture(scope="session")
def four_images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("zoo-data")
    generate_dataset(root, num_images=6, seed=5, min_size=96, max_size=128, max_objects=3)
    return root


def export_random(arch: str, out: Path, images: list[ParityImage], *, input_size: int = SMALL_INPUT) -> Bundle:
    """Random init, offline, through the parity gate (with a batch axis where the family allows one: the gate
    then also runs its images as one batch); checks the manifest declares the family's contract."""
    family = zoo.family_of(arch)
    bundle = export_bundle(arch, "none", out, input_size=input_size, parity_images=images,
                           batch_axis=family.batch_axis)
    manifest = read_bundle(out).manifest.to_dict()
    parity = manifest["parity"]
    assert parity["passed"] is True and all(r["matched"] >= 5 for r in parity["images"]), parity["images"]
    assert parity["max_score_delta"] <= 1e-4 and parity["min_iou"] >= 0.99
    if family.batch_axis:  # several images per run give what each gives alone
        assert parity["batch"]["passed"] is True and parity["batch"]["images"] >= 3, parity.get("batch")
    assert {k: manifest["preprocessing"][k] for k in family.preprocessing} == family.preprocessing
    assert manifest["output"]["format"] == family.output_block()["format"]
    assert manifest["input"]["name"] == family.input_name
    return bundle


def serve(bundle: Bundle, monkeypatch) -> dict:
    """The unchanged ``lambda_src/handler.py`` with ``MODEL_URI`` = the bundle, one direct invoke."""
    monkeypatch.setenv("MODEL_URI", str(bundle.root))
    spec = importlib.util.spec_from_file_location("handler_for_zoo", REPO / "lambda_src" / "handler.py")
    handler = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(handler)
    photo = next(p for p in real_photo_paths() if p.name == "grace_hopper.jpg")
    buffer = io.BytesIO()
    Image.open(photo).convert("RGB").save(buffer, "JPEG")
    response = handler.handler({"image": base64.b64encode(buffer.getvalue()).decode(), "threshold": 0.0},
                               Context())
    body = json.loads(response["body"]) if "body" in response else response
    assert "detections" in body, body
    assert body["detections"] and all(d["label"] in bundle.class_map.values() for d in body["detections"])
    return body


def fit_one_epoch(arch: str, data: Path, out: Path, *, input_size: int = SMALL_INPUT) -> dict:
    """``python -m train fit`` for one epoch at the small input size; returns the epoch's history entry."""
    proc = subprocess.run([sys.executable, "-m", "train", "fit", "--data", str(data), "--arch", arch,
                           "--weights", "none", "--input-size", str(input_size), "--epochs", "1",
                           "--batch-size", "2", "--max-train-images", "4", "--out", str(out), "--no-progress",
                           "--threads", "2"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    history = json.loads((out / "history.json").read_text())
    assert (out / "checkpoint.pt").is_file() and math.isfinite(history[-1]["loss"])
    return history[-1]
