"""RetinaNet (torchvision): published COCO models and small RetinaNets trainable from scratch on a CPU.

- ``retinanet_resnet50_fpn`` / ``retinanet_resnet50_fpn_v2``: torchvision's builders; published COCO weights
  through torchvision's weight enums (``WEIGHTS``), labels = COCO category ids 1..90, 0 = background.
- ``retinanet_tiny_fpn``: the fastest to train from scratch on a CPU (the demo detector): ``TinyTrunk``, a plain
  residual ConvNet (3x3 conv + BatchNorm + ReLU, ``trunk_widths`` default 8..128, one residual block per
  stride) built for dense CPU kernels, which learn faster per second than depthwise ones.
- ``retinanet_resnet18_fpn`` / ``retinanet_mobilenet_v3_fpn``: a torchvision ResNet-18 / MobileNetV3-Large
  trunk (plain BatchNorm, trainable from scratch), an FPN of ``fpn_channels`` (default 64) over C3-C5 plus a
  max-pooled P6, a RetinaNet head with GroupNorm, anchors ``anchor_sizes`` (default 16..203 px over 4 levels,
  3 scales) x ``aspect_ratios`` (height / width, default 0.5, 1, 2): match both to your objects' size
  distribution at the input size. ``head_norm_groups`` (default 16) sets the head's GroupNorm; other keys
  (``fg_iou_thresh``...) go to torchvision's ``RetinaNet``. Published weights = ImageNet backbone weights.

The model's internal ``GeneralizedRCNNTransform`` (resize + normalize + pad) is **replaced** by
``PassThroughTransform``: inputs are already the served tensor, served as torchvision trains it (bilinear resize
without antialias, ImageNet mean/std, zero padding of the normalized tensor at the bottom/right). It has no
parameters, so ``state_dict`` keys are exactly torchvision's.

The exported graph (``RetinaNetGraph``) runs backbone -> head -> anchors -> ``postprocess_detections`` (score
threshold, top-k per level, batched NMS), so NMS sits inside the graph and outputs are ``boxes`` (xyxy,
input-tensor pixels), ``scores``, ``labels``.

Example:
    >>> FAMILY.archs["retinanet_tiny_fpn"].default_input_size, FAMILY.preprocessing["resize"]
    ((224, 224), 'letterbox')
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from functools import partial
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torchvision.models import mobilenet_v3_large, resnet18
from torchvision.models.detection import _utils as detection_utils
from torchvision.models.detection import retinanet as tv
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.image_list import ImageList
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from .spec import IMAGENET_MEAN, IMAGENET_STD, ArchSpec, Family, ModelError, first_line

# torchvision's builders and weight enums of the published COCO models
WEIGHTS = {"retinanet_resnet50_fpn": (tv.retinanet_resnet50_fpn, tv.RetinaNet_ResNet50_FPN_Weights),
           "retinanet_resnet50_fpn_v2": (tv.retinanet_resnet50_fpn_v2, tv.RetinaNet_ResNet50_FPN_V2_Weights)}
SMALL_TRUNKS = {"retinanet_resnet18_fpn": "resnet18", "retinanet_mobilenet_v3_fpn": "mobilenet_v3_large",
                "retinanet_tiny_fpn": "tiny"}
DEFAULT_ASPECT_RATIOS = (0.5, 1.0, 2.0)  # anchor height / width, torchvision's convention
DEFAULT_TINY_WIDTHS = (8, 16, 32, 64, 128)


class PassThroughTransform(nn.Module):
    """Stands in for ``GeneralizedRCNNTransform``: inputs are already the served tensor (N, 3, H, W).

    Boxes stay in input-tensor pixels both ways (targets in, detections out).
    """

    def forward(self, images, targets=None):
        batch = images if isinstance(images, torch.Tensor) else torch.stack(list(images))
        height, width = int(batch.shape[-2]), int(batch.shape[-1])
        return ImageList(batch, [(height, width)] * batch.shape[0]), targets

    def postprocess(self, result, image_shapes, original_image_sizes):
        return result


def default_small_anchor_sizes() -> list[list[int]]:
    return [[int(base * 2 ** (k / 3)) for k in range(3)] for base in (16, 32, 64, 128)]


def _conv_bn_relu(in_channels: int, out_channels: int, *, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """Two 3x3 conv + BatchNorm with an identity shortcut (ResNet's basic block, same width in and out)."""

    def __init__(self, channels: int):
        super().__init__()
        self.first = _conv_bn_relu(channels, channels)
        self.second = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(x + self.second(self.first(x)))


class TinyTrunk(nn.Sequential):
    """Strided 3x3 convs to strides 2, 4, 8, 16, 32, a residual block after each from stride 4 on.

    Children ``c3``/``c4``/``c5`` are the stride 8/16/32 outputs (``IntermediateLayerGetter`` reads them by name).
    """

    def __init__(self, widths: tuple[int, ...] = DEFAULT_TINY_WIDTHS, blocks: tuple[int, ...] = (1, 1, 1, 1)):
        stages = [("c2", nn.Sequential(_conv_bn_relu(3, widths[0], stride=2),
                                       _conv_bn_relu(widths[0], widths[1], stride=2),
                                       *[ResidualBlock(widths[1]) for _ in range(blocks[0])]))]
        for name, cin, cout, count in zip(("c3", "c4", "c5"), widths[1:4], widths[2:5], blocks[1:4]):
            stages.append((name, nn.Sequential(_conv_bn_relu(cin, cout, stride=2),
                                               *[ResidualBlock(cout) for _ in range(count)])))
        super().__init__(OrderedDict(stages))
        self.out_channels_list = list(widths[2:5])


def _small_backbone(name: str, *, fpn_channels: int, pretrained: bool, trunk_widths=None) -> BackboneWithFPN:
    if name == "tiny":
        if pretrained:
            raise ModelError("retinanet_tiny_fpn has no published weights: pass --weights none or a checkpoint")
        trunk = TinyTrunk(tuple(int(w) for w in trunk_widths or DEFAULT_TINY_WIDTHS))
        return BackboneWithFPN(trunk, {"c3": "0", "c4": "1", "c5": "2"}, trunk.out_channels_list, fpn_channels,
                               extra_blocks=LastLevelMaxPool())
    weights = "IMAGENET1K_V1" if pretrained else None
    if name == "resnet18":
        trunk = resnet18(weights=weights, norm_layer=nn.BatchNorm2d)
        return BackboneWithFPN(trunk, {"layer2": "0", "layer3": "1", "layer4": "2"}, [128, 256, 512],
                               fpn_channels, extra_blocks=LastLevelMaxPool())
    # torchvision's MobileNetV3 BatchNorm uses momentum 0.01, tuned for long ImageNet runs; in short detection
    # runs the running statistics then lag far behind the weights and eval-mode scores collapse. 0.1 tracks them.
    features = mobilenet_v3_large(weights=weights,
                                  norm_layer=partial(nn.BatchNorm2d, eps=0.001, momentum=0.1)).features
    stages = [i for i, block in enumerate(features) if getattr(block, "_is_cn", False)]
    # strided blocks start C2..C5; take the outputs at strides 8, 16, 32
    c3, c4 = stages[2] - 1, stages[3] - 1
    c5 = len(features) - 1
    return BackboneWithFPN(features, {str(c3): "0", str(c4): "1", str(c5): "2"},
                           [features[c3].out_channels, features[c4].out_channels, features[c5].out_channels],
                           fpn_channels, extra_blocks=LastLevelMaxPool())


def _replace_classification_head(model: nn.Module, num_classes: int) -> None:
    old = model.head.classification_head
    in_channels = old.conv[0][0].in_channels if isinstance(old.conv[0], nn.Sequential) else old.conv[0].in_channels
    norm = partial(nn.GroupNorm, 32) if isinstance(old.conv[0], nn.Sequential) and len(old.conv[0]) > 2 else None
    model.head.classification_head = tv.RetinaNetClassificationHead(in_channels, old.num_anchors, num_classes,
                                                                    norm_layer=norm)


def _build(arch: str, *, num_classes: int, model_kwargs: dict | None, pretrained: bool) -> nn.Module:
    kwargs = dict(model_kwargs or {})
    if arch in WEIGHTS:
        builder, enum = WEIGHTS[arch]
        if pretrained:
            model = builder(weights=enum.COCO_V1, **kwargs)
            if num_classes != 91:
                _replace_classification_head(model, num_classes)
        else:
            model = builder(weights=None, weights_backbone=None, num_classes=num_classes, **kwargs)
        return model
    trunk = SMALL_TRUNKS[arch]
    fpn_channels = int(kwargs.pop("fpn_channels", 64))
    anchor_sizes = kwargs.pop("anchor_sizes", None) or default_small_anchor_sizes()
    aspect_ratios = tuple(float(r) for r in kwargs.pop("aspect_ratios", None) or DEFAULT_ASPECT_RATIOS)
    head_groups = int(kwargs.pop("head_norm_groups", 16))
    trunk_widths = kwargs.pop("trunk_widths", None)
    if trunk_widths is not None and trunk != "tiny":
        raise ModelError(f"model kwarg trunk_widths is for retinanet_tiny_fpn, not {arch}")
    backbone = _small_backbone(trunk, fpn_channels=fpn_channels, pretrained=pretrained, trunk_widths=trunk_widths)
    anchors = tv.AnchorGenerator(tuple(tuple(s) for s in anchor_sizes), (aspect_ratios,) * len(anchor_sizes))
    head = tv.RetinaNetHead(fpn_channels, anchors.num_anchors_per_location()[0], num_classes,
                            norm_layer=partial(nn.GroupNorm, head_groups))
    head.regression_head._loss_type = "giou"
    return tv.RetinaNet(backbone, num_classes, anchor_generator=anchors, head=head, **kwargs)


class RetinaNetGraph(nn.Module):
    """The exported graph: ``images`` (1, 3, H, W) -> (``boxes``, ``scores``, ``labels``)."""

    def __init__(self, model: nn.Module, *, height: int, width: int):
        super().__init__()
        self.model = model
        self.image_size = (height, width)

    def forward(self, images: torch.Tensor):
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
    saved = detection_utils.BoxCoder.decode_single, tv.box_ops.clip_boxes_to_image
    detection_utils.BoxCoder.decode_single, tv.box_ops.clip_boxes_to_image = _decode_boxes, _clip_boxes
    try:
        yield
    finally:
        detection_utils.BoxCoder.decode_single, tv.box_ops.clip_boxes_to_image = saved


class RetinaNetFamily(Family):
    name = "retinanet"
    archs = {
        "retinanet_resnet50_fpn": ArchSpec("retinanet_resnet50_fpn", "retinanet", (640, 640)),
        "retinanet_resnet50_fpn_v2": ArchSpec("retinanet_resnet50_fpn_v2", "retinanet", (640, 640)),
        "retinanet_resnet18_fpn": ArchSpec("retinanet_resnet18_fpn", "retinanet", (320, 320), small=True),
        "retinanet_mobilenet_v3_fpn": ArchSpec("retinanet_mobilenet_v3_fpn", "retinanet", (320, 320), small=True),
        "retinanet_tiny_fpn": ArchSpec("retinanet_tiny_fpn", "retinanet", (224, 224), small=True),
    }
    # torchvision: normalize, resize (bilinear, no antialias), pad bottom/right with 0 after normalizing
    preprocessing = {"resize": "letterbox", "interpolation": "bilinear", "antialias": False,
                     "pad_position": "bottom_right", "pad_value": 0.0, "scale": 1.0 / 255.0,
                     "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "channel_order": "RGB"}
    input_name = "images"
    output_names = ("boxes", "scores", "labels")
    default_lr = 1e-3

    def output_block(self, model: nn.Module | None = None) -> dict:
        return {"format": "boxes_scores_labels", "boxes": "boxes", "scores": "scores", "labels": "labels"}

    def build(self, arch: str, *, num_classes: int, model_kwargs: dict | None = None, pretrained: bool = False,
              class_names: Sequence[str] | None = None) -> nn.Module:
        """A torchvision RetinaNet with ``PassThroughTransform``; ``pretrained`` = torchvision's published weights
        (COCO for the ResNet-50 models, ImageNet backbone for the small ones)."""
        try:
            model = _build(arch, num_classes=num_classes, model_kwargs=model_kwargs, pretrained=pretrained)
        except (OSError, RuntimeError) as exc:  # torchvision download failures (URLError is an OSError)
            if not pretrained:
                raise
            raise ModelError(f"cannot download torchvision weights for {arch} (offline?): {first_line(exc)}; "
                             "pass --weights none or a local checkpoint") from None
        model.transform = PassThroughTransform()
        return model

    def graph(self, model: nn.Module, *, input_size: tuple[int, int]) -> nn.Module:
        return RetinaNetGraph(model, height=input_size[0], width=input_size[1]).eval()

    def model_kwargs(self, arch: str, model: nn.Module, requested: dict | None = None) -> dict:
        kwargs = dict(requested or {})
        if self.archs[arch].small:
            kwargs.setdefault("fpn_channels", 64)
            kwargs.setdefault("anchor_sizes", default_small_anchor_sizes())
        return kwargs

    def make_target(self, boxes: torch.Tensor, labels: torch.Tensor, *, input_size: tuple[int, int]) -> dict:
        return {"boxes": boxes, "labels": labels}

    def loss(self, model: nn.Module, batch: torch.Tensor, targets: list[dict]) -> tuple[torch.Tensor, dict]:
        parts = model(batch, targets)
        return sum(parts.values()), {k: float(v.detach()) for k, v in parts.items()}

    def raw_outputs(self, model: nn.Module, batch: torch.Tensor) -> list[dict[str, np.ndarray]]:
        return [{"boxes": r["boxes"].numpy(), "scores": r["scores"].numpy(), "labels": r["labels"].numpy()}
                for r in model(batch)]


FAMILY = RetinaNetFamily()
