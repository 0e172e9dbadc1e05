"""RT-DETR (transformers ``RTDetrForObjectDetection``), ResNet-vd backbones r18/r34/r50/r101.

Published weights: ``PekingU/rtdetr_r<depth>vd`` (COCO; the ``..._coco_o365`` variants load the same way).
Served as its image processor (``RTDetrImageProcessor``) prepares images: resize to 640x640 without keeping
the aspect ratio, bilinear, x/255, no mean/std (``do_normalize=False``); outputs ``logits`` + ``pred_boxes``
(normalized cxcywh), decoded with sigmoid + top-k over queries x classes (``use_focal_loss=True``). Offline
configs follow the published recipes: ResNet-18/34 basic blocks with the hybrid encoder at expansion 0.5 and
3/4 decoder layers, ResNet-50/101 bottlenecks with 6 (``RTDetrConfig``'s defaults are RT-DETR-R50).

Example:
    >>> config = FAMILY.config("rtdetr-r18", num_labels=3)
    >>> config.encoder_in_channels, config.decoder_layers, FAMILY.hub_id("rtdetr-r18")
    ([128, 256, 512], 3, 'PekingU/rtdetr_r18vd')
"""

from __future__ import annotations

from .detr import STRETCH_NO_NORMALIZATION, DetrFamily, transformers_class
from .spec import ArchSpec

# depth -> (backbone changes from RTDetrResNetConfig's defaults, model changes from RTDetrConfig's defaults)
RECIPES = {
    18: (dict(depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512], layer_type="basic"),
         dict(encoder_in_channels=[128, 256, 512], hidden_expansion=0.5, decoder_layers=3)),
    34: (dict(depths=[3, 4, 6, 3], hidden_sizes=[64, 128, 256, 512], layer_type="basic"),
         dict(encoder_in_channels=[128, 256, 512], hidden_expansion=0.5, decoder_layers=4)),
    50: (dict(), dict()),
    101: (dict(depths=[3, 4, 23, 3]),
          dict(encoder_hidden_dim=384, encoder_ffn_dim=2048, decoder_in_channels=[384, 384, 384])),
}


def recipe_config(depth: int, *, num_labels: int, config_class: str = "RTDetrConfig", **extra):
    """The config of RT-DETR-R``depth`` (random weights, no download); ``extra`` for RT-DETR v2's keys."""
    backbone_changes, model_changes = RECIPES[depth]
    backbone = transformers_class("RTDetrResNetConfig")(out_features=["stage2", "stage3", "stage4"],
                                                        **backbone_changes)
    return transformers_class(config_class)(backbone_config=backbone, num_labels=num_labels, **model_changes,
                                            **extra)


FAMILY = DetrFamily(
    name="rtdetr", model_class="RTDetrForObjectDetection", config_class="RTDetrConfig",
    archs={f"rtdetr-r{depth}": ArchSpec(f"rtdetr-r{depth}", "rtdetr", (640, 640)) for depth in RECIPES},
    configs={f"rtdetr-r{depth}": (lambda num_labels, depth=depth: recipe_config(depth, num_labels=num_labels))
             for depth in RECIPES},
    hub_ids={f"rtdetr-r{depth}": f"PekingU/rtdetr_r{depth}vd" for depth in RECIPES},
    preprocessing=STRETCH_NO_NORMALIZATION,
    class_heads=lambda model: list(model.model.decoder.class_embed),
    box_heads=lambda model: [layer.layers[-1] for layer in model.model.decoder.bbox_embed],
)
