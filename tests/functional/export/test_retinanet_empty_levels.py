"""A RetinaNet graph answers images where a pyramid level (or every level) has no score above its threshold.

torchvision's box decoding/clipping end in ``flatten``/``reshape``; once ONNX Runtime's quantization
pre-processing (shape inference + graph optimization, what ``bench.quantize`` runs) folds their shapes into
``Reshape(0, -1)``, an empty level cannot be reshaped and the INT8 demo detector failed on real scenes.
``empty_safe_box_ops`` rebuilds the same arithmetic with ``stack``.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from zoo import build_model
from zoo.retinanet import RetinaNetGraph, empty_safe_box_ops

pytestmark = pytest.mark.slow


def exported(tmp_path, *, silent_levels: int):
    torch.manual_seed(0)
    model = build_model("retinanet_tiny_fpn", num_classes=3, model_kwargs={"fpn_channels": 16}).eval()
    logits = model.head.classification_head.cls_logits
    with torch.no_grad():
        torch.nn.init.normal_(logits.weight, std=0.05)
        logits.bias.fill_(-30.0 if silent_levels == 4 else -1.0)
    graph = RetinaNetGraph(model, height=96, width=128).eval()
    if 0 < silent_levels < 4:  # silence the coarsest levels only: their head outputs go very negative
        original = model.head.forward

        def head(features):
            out = original(features)
            per_level = [f.shape[2] * f.shape[3] * model.anchor_generator.num_anchors_per_location()[0]
                         for f in features]
            cut = sum(per_level[:len(per_level) - silent_levels])
            out["cls_logits"] = torch.cat([out["cls_logits"][:, :cut], out["cls_logits"][:, cut:] - 50.0], dim=1)
            return out

        model.head.forward = head
    path = tmp_path / "model.onnx"
    example = torch.rand(1, 3, 96, 128)
    torch.onnx.export(graph, (example,), str(path), dynamo=False, opset_version=17, input_names=["images"],
                      output_names=["boxes", "scores", "labels"])
    return graph, path


@pytest.mark.parametrize("silent_levels", [0, 2, 4])
def test_empty_levels_run_and_match_eager(tmp_path, silent_levels):
    from onnxruntime.quantization.shape_inference import quant_pre_process

    graph, path = exported(tmp_path, silent_levels=silent_levels)
    prepared = tmp_path / "prepared.onnx"
    quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)
    session = ort.InferenceSession(str(prepared), providers=["CPUExecutionProvider"])
    image = np.random.default_rng(1).random((1, 3, 96, 128), dtype=np.float32)
    boxes, scores, labels = session.run(None, {"images": image})
    with torch.no_grad():
        eager = [t.numpy() for t in graph(torch.from_numpy(image))]
    assert boxes.shape[1:] == (4,) and len(boxes) == len(scores) == len(labels) == len(eager[0])
    if silent_levels == 4:
        assert len(boxes) == 0
    else:
        assert len(boxes) > 0
        np.testing.assert_allclose(boxes, eager[0], atol=1e-4)
        np.testing.assert_allclose(scores, eager[1], atol=1e-5)


def test_box_ops_are_torchvisions_arithmetic():
    from torchvision.models.detection import _utils
    from torchvision.ops import boxes as box_ops

    coder = _utils.BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
    codes, anchors = torch.randn(50, 4), torch.rand(50, 4) * 50
    anchors[:, 2:] += anchors[:, :2] + 1
    expected = box_ops.clip_boxes_to_image(coder.decode_single(codes, anchors), (60, 70))
    with empty_safe_box_ops():
        got = box_ops.clip_boxes_to_image(coder.decode_single(codes, anchors), (60, 70))
        empty = box_ops.clip_boxes_to_image(coder.decode_single(codes[:0], anchors[:0]), (60, 70))
    assert torch.equal(got, expected) and empty.shape == (0, 4)
    assert coder.decode_single.__func__ is _utils.BoxCoder.decode_single  # restored afterwards
