"""torchvision RetinaNet: ``retinanet_resnet50_fpn`` and ``retinanet_resnet50_fpn_v2`` (COCO weights via
torchvision's weight enums), plus the small RetinaNets ``train/`` trains (checkpoints only).

The graph skips ``model.transform``: it takes the letterboxed, ImageNet-normalized tensor and runs
backbone -> head -> anchors -> ``postprocess_detections`` (score threshold, top-k per level, batched NMS),
so NMS sits inside the graph and outputs are ``boxes`` (xyxy, input-tensor pixels), ``scores``, ``labels``.
Labels are COCO category ids (1..90) with 0 = background, torchvision's ``weights.meta["categories"]``.

Served as torchvision trains it: bilinear resize without antialias, ImageNet mean/std, zero padding of
the normalized tensor at the bottom/right (``GeneralizedRCNNTransform`` batches images that way).

Example:
    >>> normalize_class_map({0: "cat", 1: "dog"})
    {1: 'cat', 2: 'dog'}
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..classes import coco91
from ..errors import ExportError

ARCHS = ("retinanet_resnet50_fpn", "retinanet_resnet50_fpn_v2", "retinanet_resnet18_fpn",
         "retinanet_mobilenet_v3_fpn", "retinanet_tiny_fpn")
TORCHVISION_ARCHS = ARCHS[:2]
DEFAULT_INPUT_SIZE = (640, 640)
BACKGROUND_NAMES = ("background", "__background__", "__bg__")

PREPROCESSING = {
    "resize": "letterbox", "interpolation": "bilinear", "antialias": False, "pad_position": "bottom_right",
    "pad_value": 0.0, "scale": 1.0 / 255.0, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
    "channel_order": "RGB",
}


def normalize_class_map(class_map: dict[int, str]) -> dict[int, str]:
    """torchvision detection labels start at 1 (0 is background): drop a background entry, or shift a
    0-based map (a comma list, a list file) up by one."""
    if 0 not in class_map:
        return dict(class_map)
    if class_map[0].lower() in BACKGROUND_NAMES:
        rest = {k: v for k, v in class_map.items() if k != 0}
        if not rest:
            raise ExportError("--classes holds only the background class")
        return rest
    return {k + 1: v for k, v in class_map.items()}


class RetinaNetGraph(nn.Module):
    """The exported graph: ``images`` (1, 3, H, W) -> (``boxes``, ``scores``, ``labels``)."""

    def __init__(self, model: nn.Module, *, height: int, width: int):
        super().__init__()
        self.model = model
        self.image_size = (height, width)

    def forward(self, images: torch.Tensor):
        from torchvision.models.detection.image_list import ImageList

        model = self.model
        features = list(model.backbone(images).values())
        head_outputs = model.head(features)
        image_list = ImageList(images, [self.image_size])
        anchors = model.anchor_generator(image_list, features)
        per_level = [f.size(2) * f.size(3) for f in features]
        anchors_per_location = head_outputs["cls_logits"].size(1) // sum(per_level)
        per_level = [n * anchors_per_location for n in per_level]
        split_outputs = {k: list(v.split(per_level, dim=1)) for k, v in head_outputs.items()}
        split_anchors = [list(a.split(per_level)) for a in anchors]
        with empty_safe_box_ops():
            detections = model.postprocess_detections(split_outputs, split_anchors, image_list.image_sizes)[0]
        return detections["boxes"], detections["scores"], detections["labels"]


def _decode_boxes(self, rel_codes: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """``BoxCoder.decode_single`` for (N, 4) codes, the same arithmetic, built by stacking columns."""
    boxes = boxes.to(rel_codes.dtype)
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    ctr_x, ctr_y = boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights
    wx, wy, ww, wh = self.weights
    dw = torch.clamp(rel_codes[:, 2] / ww, max=self.bbox_xform_clip)
    dh = torch.clamp(rel_codes[:, 3] / wh, max=self.bbox_xform_clip)
    pred_ctr_x = rel_codes[:, 0] / wx * widths + ctr_x
    pred_ctr_y = rel_codes[:, 1] / wy * heights + ctr_y
    half_w, half_h = 0.5 * (torch.exp(dw) * widths), 0.5 * (torch.exp(dh) * heights)
    return torch.stack((pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h), dim=1)


def _clip_boxes(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    height, width = size
    return torch.stack((boxes[:, 0].clamp(0, width), boxes[:, 1].clamp(0, height),
                        boxes[:, 2].clamp(0, width), boxes[:, 3].clamp(0, height)), dim=1)


@contextlib.contextmanager
def empty_safe_box_ops():
    """torchvision's box decoding and clipping end in ``flatten``/``reshape``, which export as ``Reshape(0, -1)``:
    ONNX Runtime cannot infer ``-1`` from an empty tensor, so an image where one pyramid level has no score above
    the threshold would fail (seen on INT8 models). Same arithmetic, assembled with ``stack`` instead."""
    from torchvision.models.detection import _utils, retinanet as tv

    saved = _utils.BoxCoder.decode_single, tv.box_ops.clip_boxes_to_image
    _utils.BoxCoder.decode_single, tv.box_ops.clip_boxes_to_image = _decode_boxes, _clip_boxes
    try:
        yield
    finally:
        _utils.BoxCoder.decode_single, tv.box_ops.clip_boxes_to_image = saved


def _builder(arch: str):
    from torchvision.models.detection import retinanet as tv

    return {"retinanet_resnet50_fpn": (tv.retinanet_resnet50_fpn, tv.RetinaNet_ResNet50_FPN_Weights),
            "retinanet_resnet50_fpn_v2": (tv.retinanet_resnet50_fpn_v2, tv.RetinaNet_ResNet50_FPN_V2_Weights)}[arch]


def _random_model(arch: str, *, num_classes: int, model_kwargs: dict) -> nn.Module:
    if arch in TORCHVISION_ARCHS and not model_kwargs:
        build, _ = _builder(arch)
        return build(weights=None, weights_backbone=None, num_classes=num_classes, **model_kwargs)
    from train.models import build_retinanet  # the small RetinaNets are defined by train/

    return build_retinanet(arch, num_classes=num_classes, model_kwargs=model_kwargs, pretrained=False)


def spread_random_scores(model: nn.Module, *, seed: int = 0) -> dict:
    """RetinaNet's classification prior (p = 0.01) sits below its own 0.05 score threshold, so a random
    network detects nothing and the parity gate would compare two empty lists. Wider class-logit weights
    around a slightly higher bias give a sparse, spread-out set of detections to compare."""
    generator = torch.Generator().manual_seed(seed)
    logits = model.head.classification_head.cls_logits
    with torch.no_grad():
        nn.init.normal_(logits.weight, std=0.02, generator=generator)
        nn.init.constant_(logits.bias, -3.5)
    return {"random_init": "class logits weight N(0, 0.02^2), bias -3.5", "seed": seed}


def prepare(arch: str, *, weights: str = "default", classes: dict[int, str] | None = None,
            input_size: tuple[int, int] | None = None, seed: int = 0, checkpoint=None):
    """Build the RetinaNet graph wrapper and its manifest blocks (see module docstring)."""
    from . import PreparedModel

    notes: dict = {}
    preprocessing = dict(PREPROCESSING)
    labels = {"offset": 0, "background_id": 0}
    if checkpoint is not None:
        # train/ checkpoints label classes 0..N-1 with no background slot (sigmoid focal loss needs none)
        class_map = dict(checkpoint.class_map or classes or {})
        if not class_map:
            raise ExportError(f"checkpoint {checkpoint.path} has no class map: pass --classes")
        has_background = class_map.get(0, "").lower() in BACKGROUND_NAMES
        labels = {"offset": 0, "background_id": 0 if has_background else None}
        num_classes = int(checkpoint.num_classes or max(class_map) + 1)
        model = _random_model(arch, num_classes=num_classes, model_kwargs=dict(checkpoint.model_kwargs))
        checkpoint.load_into(model)
        preprocessing.update(checkpoint.preprocessing or {})
        input_size = input_size or checkpoint.input_size
        resolved = str(checkpoint.path)
    elif weights == "none":
        class_map = normalize_class_map(classes) if classes else coco91()
        torch.manual_seed(seed)
        model = _random_model(arch, num_classes=max(class_map) + 1, model_kwargs={})
        notes = spread_random_scores(model, seed=seed)
        resolved = "none"
    elif weights == "default":
        if arch not in TORCHVISION_ARCHS:
            raise ExportError(f"{arch} has no published weights: pass --weights none or a train/ checkpoint")
        build, enum = _builder(arch)
        try:
            model = build(weights=enum.COCO_V1)
        except (OSError, RuntimeError) as exc:  # download failures surface as URLError (an OSError)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ExportError(f"cannot download torchvision's {enum.__name__}.COCO_V1 (offline?): {first}; "
                              "pass --weights none or a checkpoint path") from None
        class_map = coco91()
        if classes:
            raise ExportError("--classes cannot rename the COCO classes of --weights default; leave it out")
        resolved = f"torchvision:{enum.__name__}.COCO_V1"
    else:
        raise ExportError(f"--weights {weights!r} for {arch}: expected default, none or a checkpoint file")
    model.eval()
    height, width = input_size or DEFAULT_INPUT_SIZE
    return PreparedModel(
        arch=arch, module=RetinaNetGraph(model, height=height, width=width).eval(), input_name="images",
        output_names=("boxes", "scores", "labels"), input_size=(height, width), preprocessing=preprocessing,
        output={"format": "boxes_scores_labels", "boxes": "boxes", "scores": "scores", "labels": "labels"},
        labels=labels, class_map=class_map, weights=resolved,
        score_threshold=0.5, max_detections=100, nms_iou=float(model.nms_thresh), notes=notes,
    )
