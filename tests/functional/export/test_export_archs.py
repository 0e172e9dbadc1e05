"""Each architecture exports offline (random init, 320 px) and passes the parity gate."""

from __future__ import annotations

import pytest

from detection.bundle import read_bundle
from export.classes import coco80, coco91

from .conftest import ARCH_UNDER_TEST, TEST_INPUT_SIZE

pytestmark = pytest.mark.slow

EXPECTED = {
    "dfine": {"preprocessing": {"resize": "stretch", "antialias": True, "mean": None, "std": None},
              "output": {"format": "detr", "logits": "logits", "boxes": "pred_boxes", "top_k": 300},
              "labels": {"offset": 0, "background_id": None}},
    "retinanet": {"preprocessing": {"resize": "letterbox", "antialias": False, "pad_position": "bottom_right",
                                    "pad_value": 0.0, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
                  "output": {"format": "boxes_scores_labels", "boxes": "boxes", "scores": "scores", "labels": "labels"},
                  "labels": {"offset": 0, "background_id": 0}},
}


@pytest.mark.parametrize("arch", ARCH_UNDER_TEST)
def test_export_passes_parity_gate(exported, arch, parity_images):
    bundle, seconds = exported(arch)
    family = "dfine" if arch.startswith("dfine") else "retinanet"
    again = read_bundle(bundle.root)  # the files on disk validate, sha256 included
    manifest = again.manifest.to_dict()
    parity = manifest["parity"]
    assert parity["passed"] is True
    assert [r["image"] for r in parity["images"]] == [image.name for image in parity_images]
    assert all(r["matched"] >= 5 for r in parity["images"]), parity["images"]
    assert parity["max_score_delta"] <= 1e-4 and parity["min_iou"] >= 0.99
    for key, value in EXPECTED[family]["preprocessing"].items():
        assert manifest["preprocessing"][key] == pytest.approx(value) if value is not None else manifest["preprocessing"][key] is None
    assert manifest["output"] == EXPECTED[family]["output"]
    assert manifest["labels"] == EXPECTED[family]["labels"]
    assert (manifest["input"]["height"], manifest["input"]["width"]) == (TEST_INPUT_SIZE, TEST_INPUT_SIZE)
    assert again.class_map == (coco80() if family == "dfine" else coco91())
    assert manifest["provenance"]["architecture"] == arch and manifest["provenance"]["weights"] == "none"
    size_mb = sum(p.stat().st_size for p in bundle.root.iterdir()) / 1e6
    print(f"\n{arch}: export + gate {seconds:.1f} s, ONNX export {manifest['provenance']['export_seconds']} s, "
          f"bundle {size_mb:.1f} MB, {parity['detections_compared']} detections compared")
