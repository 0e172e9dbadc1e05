"""Bring-your-own: an icevision-style graph (NMS inside, letterbox with centered padding, ImageNet norm,
class map name -> id with background) becomes a bundle the Lambda core serves with the right labels and
boxes in original-image pixels."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from detection.pipeline import Detector
from export.api import export_bundle
from export.errors import ExportError

from .conftest import BYO_SIZE, scene_with_boxes

REPO = Path(__file__).resolve().parents[3]
RED, GREEN = (40, 30, 200, 110), (300, 150, 380, 190)  # a 400x200 image: letterboxed with padding top/bottom


@pytest.fixture(scope="module")
def byo_bundle(icevision_artefacts, tmp_path_factory):
    onnx_path, class_map_path = icevision_artefacts
    out = tmp_path_factory.mktemp("byo") / "bundle"
    result = subprocess.run(
        [sys.executable, "-m", "export", "--arch", "onnx", "--onnx", str(onnx_path), "--classes", str(class_map_path),
         "--preset", "icevision", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "fridge_detector" in result.stdout
    return out


def test_manifest_describes_the_icevision_graph(byo_bundle):
    manifest = json.loads((byo_bundle / "model.json").read_text())
    assert manifest["input"] == {"name": "input", "height": BYO_SIZE, "width": BYO_SIZE, "dtype": "float32",
                                 "layout": "NCHW"}
    assert manifest["preprocessing"]["resize"] == "letterbox"
    assert manifest["preprocessing"]["pad_position"] == "center"
    assert manifest["preprocessing"]["antialias"] is False
    assert manifest["preprocessing"]["mean"] == [0.485, 0.456, 0.406]
    assert manifest["output"] == {"format": "boxes_scores_labels", "boxes": "boxes", "scores": "scores",
                                  "labels": "labels"}
    assert manifest["labels"] == {"offset": 0, "background_id": 0}
    assert manifest["parity"]["mode"] == "smoke" and manifest["parity"]["passed"]
    assert json.loads((byo_bundle / "class_map.json").read_text()) == {"0": "background", "1": "red_box",
                                                                       "2": "green_box"}


@pytest.mark.parametrize("width, height, red, green", [
    (400, 200, RED, GREEN),                                   # padding above and below
    (200, 400, (20, 40, 120, 200), (150, 300, 190, 380)),     # padding left and right
    (256, 256, (0, 0, 64, 64), (128, 128, 256, 256)),         # no padding, boxes touching the borders
])
def test_lambda_core_serves_it_with_correct_labels_and_boxes(byo_bundle, width, height, red, green):
    detector = Detector.from_uri(str(byo_bundle))
    body = detector.detect_bytes(scene_with_boxes(width, height, red=red, green=green))
    found = {d["label"]: d for d in body["detections"]}
    assert sorted(found) == ["green_box", "red_box"], body["detections"]  # NMS removed the duplicates
    assert found["red_box"]["class_id"] == 1 and found["green_box"]["class_id"] == 2
    assert found["red_box"]["score"] == pytest.approx(0.9) and found["green_box"]["score"] == pytest.approx(0.8)
    scale = BYO_SIZE / max(width, height)
    tolerance = 1.5 / scale  # one tensor pixel each side after resizing
    assert found["red_box"]["box"] == pytest.approx(list(red), abs=tolerance)
    assert found["green_box"]["box"] == pytest.approx(list(green), abs=tolerance)
    assert body["image"] == {"width": width, "height": height}


def test_empty_scene_has_no_detections(byo_bundle):
    detector = Detector.from_uri(str(byo_bundle))
    body = detector.detect_bytes(scene_with_boxes(300, 300, red=(0, 0, 0, 0), green=(0, 0, 0, 0)))
    assert body["detections"] == []


@pytest.mark.parametrize("kwargs, message", [
    ({"classes": None, "preset": "icevision"}, "--arch onnx needs --classes"),
    ({"preset": None}, "needs --preset"),
    ({"preset": "yolo"}, "unknown --preset 'yolo'"),
    ({"preset": "icevision", "input_size": 320}, "drop --input-size"),
    ({"preset": "icevision", "outputs": "boxes=nope,scores=scores,labels=labels"}, "not outputs of the graph"),
])
def test_byo_errors_name_what_to_pass(icevision_artefacts, tmp_path, kwargs, message):
    onnx_path, class_map_path = icevision_artefacts
    options = {"classes": str(class_map_path), **kwargs}
    with pytest.raises(ExportError, match=message):
        export_bundle("onnx", out_dir=tmp_path, onnx_path=onnx_path, parity_images=[], **options)


def test_unknown_output_layout_is_a_clear_error(tmp_path):
    """A graph with two float outputs: neither names nor shapes say which is which."""
    import torch

    class TwoHeads(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3)), x.amax(dim=(2, 3))

    path = tmp_path / "odd.onnx"
    torch.onnx.export(TwoHeads(), (torch.zeros(1, 3, 64, 64),), str(path), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["a", "b"])
    with pytest.raises(ExportError, match=r"cannot tell the output layout .* pass --outputs boxes=NAME"):
        export_bundle("onnx", out_dir=tmp_path / "out", onnx_path=path, classes="a,b", preset="torchvision",
                      parity_images=[])


def test_graph_that_cannot_run_fails_the_smoke_check(icevision_artefacts, tmp_path, parity_images):
    """Declared outputs swapped (labels read as boxes): the run fails, no manifest is left behind."""
    from export.errors import ParityError

    onnx_path, class_map_path = icevision_artefacts
    with pytest.raises(ParityError, match="the graph fails on"):
        export_bundle("onnx", out_dir=tmp_path, onnx_path=onnx_path, classes=str(class_map_path), preset="icevision",
                      outputs="boxes=labels,scores=scores,labels=boxes", parity_images=parity_images[:1])
    assert not (tmp_path / "model.json").exists() and (tmp_path / "parity_failed.json").exists()
