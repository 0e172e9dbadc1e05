"""The gate must fail when the manifest's preprocessing is not what the model was trained with."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from detection.bundle import write_bundle
from export import archs
from export.errors import ParityError
from export.images import real_photo_paths
from export.parity import run_parity_gate

from .conftest import TEST_INPUT_SIZE

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]


def test_cli_exits_non_zero_with_the_reason(tmp_path):
    """Letterboxing a stretch-trained D-FINE (the classic mistake) -> exit 3, one line naming the key.

    With custom classes: the head is sized from them and the class map is written before the gate runs."""
    out = tmp_path / "bundle"
    photo = real_photo_paths()[0]
    result = subprocess.run(
        [sys.executable, "-m", "export", "--arch", "dfine-n", "--weights", "none", "--input-size", "320",
         "--out", str(out), "--parity-images", str(photo), "--quiet", "--classes", "cat,dog,bird",
         "--preprocessing", json.dumps({"resize": "letterbox", "pad_position": "center"})],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 3, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("export failed: parity gate failed on 1 of 1 images")
    assert "resize='letterbox' (trained with 'stretch')" in lines[0]
    assert not (out / "model.json").exists(), "a failed export must not leave a deployable manifest"
    assert json.loads((out / "class_map.json").read_text()) == {"0": "cat", "1": "dog", "2": "bird"}
    report = json.loads((out / "parity_failed.json").read_text())
    assert report["passed"] is False and report["images"][0]["problem_count"] > 0


SUBTLE = [
    ("dfine-n", {"antialias": False}, "antialias=False (trained with True)"),
    ("dfine-n", {"channel_order": "BGR"}, "channel_order='BGR'"),
    ("retinanet_resnet50_fpn", {"pad_position": "center"}, "pad_position='center'"),
    ("retinanet_resnet50_fpn", {"mean": None, "std": None}, "mean=None"),
]


@pytest.mark.parametrize("arch, override, reason", SUBTLE, ids=[f"{a}-{next(iter(o))}" for a, o, _ in SUBTLE])
def test_gate_catches_subtle_mistakes(exported, parity_images, tmp_path, arch, override, reason):
    """Same graph, one wrong manifest key: the gate fails and names the key."""
    bundle, _ = exported(arch)
    prepared = archs.prepare(arch, weights="none", input_size=TEST_INPUT_SIZE)  # seeded: the exported weights
    manifest = bundle.manifest.to_dict()
    manifest.pop("parity")
    manifest["preprocessing"].update(override)
    wrong = write_bundle(tmp_path, manifest=manifest, class_map=bundle.class_map, model_path=bundle.model_path)
    with pytest.raises(ParityError) as caught:
        run_parity_gate(prepared, wrong, parity_images[:2])
    assert reason in caught.value.message
    assert caught.value.report["passed"] is False


def test_same_manifest_passes_again(exported, parity_images):
    """Control for the test above: the rebuilt module with the original manifest passes."""
    bundle, _ = exported("dfine-n")
    prepared = archs.prepare("dfine-n", weights="none", input_size=TEST_INPUT_SIZE)
    assert run_parity_gate(prepared, bundle, parity_images[:1])["passed"]
