"""A checkpoint in train/'s format exports with its own classes, input size and preprocessing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from detection.bundle import read_bundle

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]
ARCH = "retinanet_resnet18_fpn"
CLASSES = {0: "cereal_box", 1: "milk_carton", 2: "soda_can"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """Written with train's own builder and saver (the format export reads)."""
    from train.checkpoint import save_checkpoint
    from zoo import build_model, model_kwargs_for, preprocessing_for

    torch.manual_seed(0)
    model = build_model(ARCH, num_classes=len(CLASSES))
    with torch.no_grad():  # stand-in for training: class scores that clear RetinaNet's 0.05 floor
        torch.nn.init.normal_(model.head.classification_head.cls_logits.weight, std=0.05)
        model.head.classification_head.cls_logits.bias.fill_(-2.5)
    path = tmp_path_factory.mktemp("ckpt") / "demo-run.pt"
    save_checkpoint(path, {
        "arch": ARCH, "num_classes": len(CLASSES), "class_map": CLASSES, "input_size": [256, 320],
        "preprocessing": preprocessing_for(ARCH), "output_format": "boxes_scores_labels",
        "model_kwargs": model_kwargs_for(ARCH, model), "state_dict": model.state_dict(), "epoch": 1,
    })
    return path


def test_cli_exports_a_train_checkpoint(checkpoint, tmp_path, parity_images):
    photo = tmp_path / parity_images[0].name
    photo.write_bytes(parity_images[0].data)
    result = subprocess.run(
        [sys.executable, "-m", "export", "--weights", str(checkpoint), "--out", str(tmp_path / "bundle"),
         "--parity-images", str(photo)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    bundle = read_bundle(tmp_path / "bundle")
    manifest = bundle.manifest
    assert manifest.name == f"{ARCH}-demo-run"
    assert (manifest.input.height, manifest.input.width) == (256, 320)
    assert bundle.class_map == CLASSES
    assert (manifest.labels.offset, manifest.labels.background_id) == (0, None)  # train: no background slot
    assert manifest.provenance["architecture"] == ARCH and manifest.provenance["weights"] == str(checkpoint)
    assert manifest.parity["passed"] and manifest.parity["detections_compared"] > 0


def test_checkpoint_of_another_arch_is_refused(checkpoint, tmp_path):
    from export.api import export_bundle
    from export.errors import ExportError

    with pytest.raises(ExportError, match="trained as retinanet_resnet18_fpn"):
        export_bundle("dfine-n", str(checkpoint), tmp_path, parity_images=[])
