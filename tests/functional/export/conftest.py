"""Export fixtures: each architecture exported once per session (random init, CI-sized input), a small
parity image set, and an icevision-style ONNX graph built here with NMS inside."""

from __future__ import annotations

import io
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from export.images import ParityImage, real_photo_paths, synthetic_scenes

TEST_INPUT_SIZE = 320
ARCH_UNDER_TEST = ("dfine-n", "dfine-s", "retinanet_resnet50_fpn", "retinanet_resnet50_fpn_v2")


@pytest.fixture(scope="session")
def parity_images() -> list[ParityImage]:
    """Real photos shipped in installed packages (portrait grace_hopper pads the right, landscape chelsea the
    bottom) + a synthetic JPEG scene; the CLI's default set adds more, kept out here for test time."""
    photos = [ParityImage(p.name, p.read_bytes()) for p in real_photo_paths() if p.name in ("grace_hopper.jpg", "chelsea.png")]
    assert photos, "matplotlib's grace_hopper.jpg should be installed in .venv"
    scenes = [s for s in synthetic_scenes() if "landscape" in s.name]
    return photos + scenes


@pytest.fixture(scope="session")
def exported(tmp_path_factory, parity_images):
    """Factory ``exported(arch)`` -> (bundle, seconds): export with random weights once per session."""
    from export.api import export_bundle

    cache: dict[str, tuple] = {}

    def make(arch: str):
        if arch not in cache:
            out = tmp_path_factory.mktemp(arch.replace("_", "-"))
            started = time.perf_counter()
            bundle = export_bundle(arch, "none", out, input_size=TEST_INPUT_SIZE, parity_images=parity_images)
            cache[arch] = (bundle, time.perf_counter() - started)
        return cache[arch]

    return make


# ---------------------------------------------------------------- an icevision-style graph

CLASS_MAP = {"background": 0, "red_box": 1, "green_box": 2}  # icevision's name -> id, background at 0
BYO_SIZE = 256


def _colour_box_detector():
    """A tiny "detector" whose answer is known: the bounding box of strongly red / green pixels.

    It takes icevision's input (letterboxed, ImageNet-normalized), outputs boxes (xyxy input pixels), scores
    and labels, with a duplicate of each box at a lower score that batched NMS inside the graph removes.
    """
    import torch
    from torch import nn
    from torchvision.ops import batched_nms

    class ColourBoxes(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

        @staticmethod
        def _box(mask):
            height, width = mask.shape
            rows, cols = mask.any(dim=1), mask.any(dim=0)
            ys = torch.arange(height, dtype=torch.float32)
            xs = torch.arange(width, dtype=torch.float32)
            y0 = torch.where(rows, ys, torch.full_like(ys, 1e6)).min()
            y1 = torch.where(rows, ys, torch.full_like(ys, -1.0)).max() + 1
            x0 = torch.where(cols, xs, torch.full_like(xs, 1e6)).min()
            x1 = torch.where(cols, xs, torch.full_like(xs, -1.0)).max() + 1
            return torch.stack([x0, y0, x1, y1]), mask.any()

        def forward(self, images):
            rgb = (images * self.std + self.mean)[0]
            r, g, b = rgb[0], rgb[1], rgb[2]
            red, red_found = self._box((r > 0.7) & (g < 0.3) & (b < 0.3))
            green, green_found = self._box((g > 0.7) & (r < 0.3) & (b < 0.3))
            boxes = torch.stack([red, red, green, green])
            scores = torch.stack([0.9 * red_found.float(), 0.6 * red_found.float(),
                                  0.8 * green_found.float(), 0.5 * green_found.float()])
            labels = torch.tensor([1, 1, 2, 2], dtype=torch.int64)
            keep = scores > 0.05
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = batched_nms(boxes, scores, labels, 0.5)
            return boxes[keep], scores[keep], labels[keep]

    return ColourBoxes().eval()


@pytest.fixture(scope="session")
def icevision_artefacts(tmp_path_factory) -> tuple[Path, Path]:
    """(model.onnx, class_map.json) as icevision's ``to_onnx`` would leave them (names are deliberately
    not ours: the layout must be recognised from names/shapes)."""
    import torch

    folder = tmp_path_factory.mktemp("icevision")
    onnx_path = folder / "fridge_detector.onnx"
    example = torch.zeros(1, 3, BYO_SIZE, BYO_SIZE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about the data-dependent box count
        torch.onnx.export(_colour_box_detector(), (example,), str(onnx_path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["boxes", "scores", "labels"])
    class_map_path = folder / "class_map.json"
    class_map_path.write_text(json.dumps(CLASS_MAP))
    return onnx_path, class_map_path


def scene_with_boxes(width: int, height: int, *, red: tuple, green: tuple) -> bytes:
    """A grey PNG with a pure red and a pure green rectangle at known pixel boxes (x0, y0, x1, y1)."""
    array = np.full((height, width, 3), 128, dtype=np.uint8)
    array[red[1]:red[3], red[0]:red[2]] = (255, 0, 0)
    array[green[1]:green[3], green[0]:green[2]] = (0, 255, 0)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()
