"""Architectures we train, how each is built, and the preprocessing/output contract each one is served with.

Every architecture here is trained on tensors that ``detection.preprocess.preprocess`` produced from the
manifest preprocessing in ``preprocessing_for(arch)``, so training and serving see identical inputs.

RetinaNet (torchvision): the model's internal ``GeneralizedRCNNTransform`` (resize + normalize + pad) is
**replaced** by ``PassThroughTransform``, which only stacks the already letterboxed, normalized tensors and
leaves boxes in input-tensor pixels. It has no parameters, so ``state_dict`` keys are exactly torchvision's
and export can load them into its own wrapper (which likewise skips the transform).

- ``retinanet_resnet50_fpn`` / ``retinanet_resnet50_fpn_v2``: torchvision's builders (COCO weights with
  ``--weights default``).
- ``retinanet_tiny_fpn``: the fastest to train from scratch on a CPU (the demo detector): ``TinyTrunk``, a plain
  residual ConvNet (3x3 conv + BatchNorm + ReLU, ``trunk_widths`` default 8..128, one residual block per
  stride) built for dense CPU kernels, which learn faster per second than depthwise ones.
- ``retinanet_resnet18_fpn`` / ``retinanet_mobilenet_v3_fpn``: small RetinaNets for CPU training: a
  torchvision ResNet-18 / MobileNetV3-Large trunk (plain BatchNorm, trainable from scratch), an FPN of
  ``fpn_channels`` (default 64) over C3-C5 plus a max-pooled P6, a RetinaNet head with GroupNorm, anchors
  ``anchor_sizes`` (default 16..203 px over 4 levels, 3 scales) x ``aspect_ratios`` (height / width, default
  0.5, 1, 2): match both to your objects' size distribution at the input size. ``head_norm_groups`` (default
  16) sets the head's GroupNorm; other keys (``fg_iou_thresh``...) go to torchvision's ``RetinaNet``. ``--weights default`` loads
  ImageNet backbone weights when torchvision can get them.

D-FINE (transformers ``DFineForObjectDetection``): ``dfine-n`` is built offline from the published nano
recipe (HGNetV2-B0, 2 levels, hidden 128, 3 decoder layers); every size can start from its hub id
(``ustc-community/dfine-<size>-coco``) when the hub is reachable. The full ``DFineConfig`` is stored in the
checkpoint's ``model_kwargs["config"]`` so the exact network is rebuilt without the hub.

Example:
    >>> spec = arch_spec("retinanet_resnet18_fpn")
    >>> spec.family, preprocessing_for("retinanet_resnet18_fpn")["resize"]
    ('retinanet', 'letterbox')
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

DFINE_HUB_IDS = {size: f"ustc-community/dfine-{name}-coco" for size, name in
                 (("n", "nano"), ("s", "small"), ("m", "medium"), ("l", "large"), ("x", "xlarge"))}


@dataclass(frozen=True)
class ArchSpec:
    name: str
    family: str  # "retinanet" | "dfine"
    default_input_size: tuple[int, int]
    small: bool = False


ARCHS = {
    "retinanet_resnet50_fpn": ArchSpec("retinanet_resnet50_fpn", "retinanet", (640, 640)),
    "retinanet_resnet50_fpn_v2": ArchSpec("retinanet_resnet50_fpn_v2", "retinanet", (640, 640)),
    "retinanet_resnet18_fpn": ArchSpec("retinanet_resnet18_fpn", "retinanet", (320, 320), small=True),
    "retinanet_mobilenet_v3_fpn": ArchSpec("retinanet_mobilenet_v3_fpn", "retinanet", (320, 320), small=True),
    "retinanet_tiny_fpn": ArchSpec("retinanet_tiny_fpn", "retinanet", (224, 224), small=True),
    **{f"dfine-{size}": ArchSpec(f"dfine-{size}", "dfine", (640, 640)) for size in DFINE_HUB_IDS},
}


class ModelError(ValueError):
    """The model cannot be built or its weights loaded; the message says what to pass instead."""


def arch_spec(arch: str) -> ArchSpec:
    if arch not in ARCHS:
        raise ModelError(f"unknown --arch {arch!r}; choose one of {', '.join(ARCHS)}")
    return ARCHS[arch]


def preprocessing_for(arch: str) -> dict:
    """The manifest ``preprocessing`` block this architecture is trained and served with."""
    if arch_spec(arch).family == "retinanet":
        # torchvision: normalize, resize (bilinear, no antialias), pad bottom/right with 0 after normalizing
        return {"resize": "letterbox", "interpolation": "bilinear", "antialias": False,
                "pad_position": "bottom_right", "pad_value": 0.0, "scale": 1.0 / 255.0,
                "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "channel_order": "RGB"}
    # D-FINE / HF processor: stretch to the input size, antialiased bilinear, /255, no mean/std
    return {"resize": "stretch", "interpolation": "bilinear", "antialias": True,
            "pad_position": "bottom_right", "pad_value": 0.0, "scale": 1.0 / 255.0,
            "mean": None, "std": None, "channel_order": "RGB"}


def output_format_for(arch: str) -> str:
    return "boxes_scores_labels" if arch_spec(arch).family == "retinanet" else "detr"


# ---------------------------------------------------------------- RetinaNet


class PassThroughTransform(nn.Module):
    """Stands in for ``GeneralizedRCNNTransform``: inputs are already the served tensor (N, 3, H, W).

    Boxes stay in input-tensor pixels both ways (targets in, detections out).
    """

    def forward(self, images, targets=None):
        from torchvision.models.detection.image_list import ImageList

        batch = images if isinstance(images, torch.Tensor) else torch.stack(list(images))
        height, width = int(batch.shape[-2]), int(batch.shape[-1])
        return ImageList(batch, [(height, width)] * batch.shape[0]), targets

    def postprocess(self, result, image_shapes, original_image_sizes):
        return result


DEFAULT_ASPECT_RATIOS = (0.5, 1.0, 2.0)  # anchor height / width, torchvision's convention


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

    def __init__(self, widths: tuple[int, ...] = (8, 16, 32, 64, 128), blocks: tuple[int, ...] = (1, 1, 1, 1)):
        stages = [("c2", nn.Sequential(_conv_bn_relu(3, widths[0], stride=2),
                                       _conv_bn_relu(widths[0], widths[1], stride=2),
                                       *[ResidualBlock(widths[1]) for _ in range(blocks[0])]))]
        for name, cin, cout, count in zip(("c3", "c4", "c5"), widths[1:4], widths[2:5], blocks[1:4]):
            stages.append((name, nn.Sequential(_conv_bn_relu(cin, cout, stride=2),
                                               *[ResidualBlock(cout) for _ in range(count)])))
        super().__init__(OrderedDict(stages))
        self.out_channels_list = list(widths[2:5])


DEFAULT_TINY_WIDTHS = (8, 16, 32, 64, 128)


def _small_backbone(name: str, *, fpn_channels: int, pretrained: bool, trunk_widths=None):
    from torchvision.models import mobilenet_v3_large, resnet18
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    if name == "tiny":
        if pretrained:
            raise ModelError("retinanet_tiny_fpn has no published weights: pass --weights none or a checkpoint")
        trunk = TinyTrunk(tuple(int(w) for w in trunk_widths or DEFAULT_TINY_WIDTHS))
        return BackboneWithFPN(trunk, {"c3": "0", "c4": "1", "c5": "2"}, trunk.out_channels_list, fpn_channels,
                               extra_blocks=LastLevelMaxPool())
    if name == "resnet18":
        weights = "IMAGENET1K_V1" if pretrained else None
        trunk = resnet18(weights=weights, norm_layer=nn.BatchNorm2d)
        return BackboneWithFPN(trunk, {"layer2": "0", "layer3": "1", "layer4": "2"}, [128, 256, 512],
                               fpn_channels, extra_blocks=LastLevelMaxPool())
    weights = "IMAGENET1K_V1" if pretrained else None
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


def build_retinanet(arch: str, *, num_classes: int, model_kwargs: dict | None = None,
                    pretrained: bool = False) -> nn.Module:
    """A torchvision RetinaNet with ``PassThroughTransform``; ``pretrained`` = torchvision's published weights
    (COCO for the ResNet-50 models, ImageNet backbone for the small ones)."""
    from torchvision.models.detection import retinanet as tv

    kwargs = dict(model_kwargs or {})
    if arch in ("retinanet_resnet50_fpn", "retinanet_resnet50_fpn_v2"):
        builder = tv.retinanet_resnet50_fpn if arch == "retinanet_resnet50_fpn" else tv.retinanet_resnet50_fpn_v2
        if pretrained:
            model = builder(weights="DEFAULT", **kwargs)
            if num_classes != 91:
                _replace_classification_head(model, num_classes)
        else:
            model = builder(weights=None, weights_backbone=None, num_classes=num_classes, **kwargs)
    else:
        backbone_name = {"retinanet_resnet18_fpn": "resnet18", "retinanet_tiny_fpn": "tiny"}.get(arch, "mobilenet_v3_large")
        fpn_channels = int(kwargs.pop("fpn_channels", 64))
        anchor_sizes = kwargs.pop("anchor_sizes", None) or default_small_anchor_sizes()
        aspect_ratios = tuple(float(r) for r in kwargs.pop("aspect_ratios", None) or DEFAULT_ASPECT_RATIOS)
        head_groups = int(kwargs.pop("head_norm_groups", 16))
        trunk_widths = kwargs.pop("trunk_widths", None)
        if trunk_widths is not None and backbone_name != "tiny":
            raise ModelError(f"model kwarg trunk_widths is for retinanet_tiny_fpn, not {arch}")
        backbone = _small_backbone(backbone_name, fpn_channels=fpn_channels, pretrained=pretrained,
                                   trunk_widths=trunk_widths)
        anchors = tv.AnchorGenerator(tuple(tuple(s) for s in anchor_sizes), (aspect_ratios,) * len(anchor_sizes))
        head = tv.RetinaNetHead(fpn_channels, anchors.num_anchors_per_location()[0], num_classes,
                                norm_layer=partial(nn.GroupNorm, head_groups))
        head.regression_head._loss_type = "giou"
        model = tv.RetinaNet(backbone, num_classes, anchor_generator=anchors, head=head, **kwargs)
    model.transform = PassThroughTransform()
    return model


def _replace_classification_head(model: nn.Module, num_classes: int) -> None:
    from torchvision.models.detection.retinanet import RetinaNetClassificationHead

    old = model.head.classification_head
    in_channels = old.conv[0][0].in_channels if isinstance(old.conv[0], nn.Sequential) else old.conv[0].in_channels
    norm = partial(nn.GroupNorm, 32) if isinstance(old.conv[0], nn.Sequential) and len(old.conv[0]) > 2 else None
    model.head.classification_head = RetinaNetClassificationHead(in_channels, old.num_anchors, num_classes,
                                                                 norm_layer=norm)


# ---------------------------------------------------------------- D-FINE


def dfine_nano_config(*, num_labels: int):
    """``DFineConfig`` of D-FINE-N (HGNetV2-B0 backbone), built offline."""
    from transformers import DFineConfig, HGNetV2Config

    backbone = HGNetV2Config(
        stem_channels=[3, 16, 16], embedding_size=16, hidden_sizes=[64, 256, 512, 1024], depths=[1, 1, 2, 1],
        stage_in_channels=[16, 64, 256, 512], stage_mid_channels=[16, 32, 64, 128],
        stage_out_channels=[64, 256, 512, 1024], stage_num_blocks=[1, 1, 2, 1],
        stage_downsample=[False, True, True, True], stage_light_block=[False, False, True, True],
        stage_kernel_size=[3, 3, 5, 5], stage_numb_of_layers=[3, 3, 3, 3], use_learnable_affine_block=True,
        out_features=["stage3", "stage4"], out_indices=[3, 4],
    )
    return DFineConfig(
        backbone_config=backbone, encoder_in_channels=[512, 1024], feat_strides=[16, 32],
        encoder_hidden_dim=128, encode_proj_layers=[1], encoder_ffn_dim=512, hidden_expansion=0.34,
        depth_mult=0.5, d_model=128, decoder_in_channels=[128, 128], num_feature_levels=2, decoder_layers=3,
        decoder_ffn_dim=512, decoder_n_points=[6, 6], eval_idx=-1, num_labels=num_labels,
        id2label={i: str(i) for i in range(num_labels)}, label2id={str(i): i for i in range(num_labels)},
    )


def build_dfine(arch: str, *, num_classes: int, model_kwargs: dict | None = None, hub_id: str | None = None,
                class_names: list[str] | None = None) -> nn.Module:
    """``DFineForObjectDetection``: from ``model_kwargs["config"]`` (a checkpoint), a hub id, or offline nano."""
    from transformers import DFineConfig, DFineForObjectDetection

    kwargs = dict(model_kwargs or {})
    labels = {i: (class_names[i] if class_names else str(i)) for i in range(num_classes)}
    if hub_id is not None:
        try:
            model = DFineForObjectDetection.from_pretrained(
                hub_id, num_labels=num_classes, id2label=labels, label2id={v: k for k, v in labels.items()},
                ignore_mismatched_sizes=True)
        except OSError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"cannot load D-FINE weights {hub_id!r} from the Hugging Face hub (offline?): {first}; "
                             "pass --weights none or a local checkpoint/directory") from None
        return model
    if "config" in kwargs:
        config = DFineConfig.from_dict(kwargs["config"])
    elif arch == "dfine-n":
        config = dfine_nano_config(num_labels=num_classes)
    else:
        raise ModelError(f"{arch} has no offline config here; use --weights {DFINE_HUB_IDS[arch[-1]]} "
                         "(needs the hub) or --arch dfine-n")
    config.num_labels = num_classes
    config.id2label, config.label2id = labels, {v: k for k, v in labels.items()}
    return DFineForObjectDetection(config)


def model_kwargs_for(arch: str, model: nn.Module, requested: dict | None = None) -> dict:
    """What must be stored to rebuild ``model`` exactly (see module docstring)."""
    if arch_spec(arch).family == "dfine":
        return {"config": model.config.to_dict()}
    kwargs = dict(requested or {})
    if arch_spec(arch).small:
        kwargs.setdefault("fpn_channels", 64)
        kwargs.setdefault("anchor_sizes", default_small_anchor_sizes())
    return kwargs


def build_model(arch: str, *, num_classes: int, model_kwargs: dict | None = None, weights: str = "none",
                class_names: list[str] | None = None) -> nn.Module:
    """Build ``arch`` for ``num_classes``; ``weights`` is ``none`` or ``default`` (published weights).

    Checkpoint paths and hub ids are resolved by ``train.weights.load_initial_weights``.

    Example:
        >>> model = build_model("retinanet_resnet18_fpn", num_classes=3)
        >>> type(model.transform).__name__
        'PassThroughTransform'
    """
    spec = arch_spec(arch)
    if weights not in ("none", "default"):
        raise ModelError(f"build_model takes weights none|default, got {weights!r}")
    if spec.family == "retinanet":
        try:
            return build_retinanet(arch, num_classes=num_classes, model_kwargs=model_kwargs,
                                   pretrained=weights == "default")
        except (OSError, RuntimeError) as exc:  # torchvision download failures (URLError is an OSError)
            if weights != "default":
                raise
            raise ModelError(f"cannot download torchvision weights for {arch} (offline?): "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; "
                             "pass --weights none or a local checkpoint") from None
    hub_id = DFINE_HUB_IDS[arch.split("-")[1]] if weights == "default" else None
    return build_dfine(arch, num_classes=num_classes, model_kwargs=model_kwargs, hub_id=hub_id,
                       class_names=class_names)
