"""D-FINE (transformers ``DFineForObjectDetection``), sizes n/s/m/l/x.

Published weights: ``ustc-community/dfine-<nano|small|medium|large|xlarge>-coco`` (``hub_id``; the Objects365
variants ``...-obj365`` / ``...-obj2coco`` load the same way). Served as D-FINE is evaluated: stretch to 640,
antialiased bilinear, x/255, no mean/std (its processor is RT-DETR's). ``--weights none`` builds each size
offline from the published recipe (HGNetV2 B0/B0/B2/B4/B5 backbones): ``size_config``.

Example:
    >>> config = size_config("n", num_labels=3)
    >>> config.d_model, config.decoder_layers, FAMILY.hub_id("dfine-s")
    (128, 3, 'ustc-community/dfine-small-coco')
"""

from __future__ import annotations

from .detr import STRETCH_NO_NORMALIZATION, DetrFamily, transformers_class
from .spec import ArchSpec

SIZES = {"n": "nano", "s": "small", "m": "medium", "l": "large", "x": "xlarge"}

# Per-size differences from DFineConfig's defaults (the published model recipes: HGNetV2 B0/B0/B2/B4/B5).
_B0_BACKBONE = dict(
    stem_channels=[3, 16, 16], stage_in_channels=[16, 64, 256, 512], stage_mid_channels=[16, 32, 64, 128],
    stage_out_channels=[64, 256, 512, 1024], stage_num_blocks=[1, 1, 2, 1], stage_numb_of_layers=[3, 3, 3, 3],
    use_learnable_affine_block=True,
)
_RECIPES = {
    "n": dict(
        backbone=dict(_B0_BACKBONE, out_features=["stage3", "stage4"], out_indices=[3, 4]),
        model=dict(num_feature_levels=2, encoder_in_channels=[512, 1024], feat_strides=[16, 32],
                   encoder_hidden_dim=128, encode_proj_layers=[1], encoder_ffn_dim=512, d_model=128,
                   decoder_in_channels=[128, 128], decoder_ffn_dim=512, decoder_n_points=[6, 6],
                   decoder_layers=3, depth_mult=0.5, hidden_expansion=0.34),
    ),
    "s": dict(
        backbone=dict(_B0_BACKBONE),
        model=dict(encoder_in_channels=[256, 512, 1024], decoder_n_points=[3, 6, 3], decoder_layers=3,
                   depth_mult=0.34, hidden_expansion=0.5),
    ),
    "m": dict(
        backbone=dict(stem_channels=[3, 24, 32], stage_in_channels=[32, 96, 384, 768],
                      stage_mid_channels=[32, 64, 128, 256], stage_out_channels=[96, 384, 768, 1536],
                      stage_num_blocks=[1, 1, 3, 1], stage_numb_of_layers=[4, 4, 4, 4],
                      use_learnable_affine_block=True),
        model=dict(encoder_in_channels=[384, 768, 1536], decoder_n_points=[3, 6, 3], decoder_layers=4,
                   depth_mult=0.67),
    ),
    "l": dict(
        backbone=dict(),  # DFineConfig's default backbone is the B4 of D-FINE-L
        model=dict(encoder_in_channels=[512, 1024, 2048], decoder_n_points=[3, 6, 3], decoder_layers=6),
    ),
    "x": dict(
        backbone=dict(stem_channels=[3, 32, 64], stage_in_channels=[64, 128, 512, 1024],
                      stage_mid_channels=[64, 128, 256, 512], stage_out_channels=[128, 512, 1024, 2048],
                      stage_num_blocks=[1, 2, 5, 2], stage_numb_of_layers=[6, 6, 6, 6]),
        model=dict(encoder_in_channels=[512, 1024, 2048], encoder_hidden_dim=384, encoder_ffn_dim=2048,
                   decoder_in_channels=[384, 384, 384], decoder_n_points=[3, 6, 3], decoder_layers=6),
    ),
}


def hub_id(size: str, dataset: str = "coco") -> str:
    """``hub_id("s")`` -> ``'ustc-community/dfine-small-coco'``."""
    return f"ustc-community/dfine-{SIZES[size]}-{dataset}"


def size_config(size: str, *, num_labels: int):
    """A ``DFineConfig`` with the architecture of D-FINE-``size`` (random weights, no download)."""
    recipe = _RECIPES[size]
    config = transformers_class("DFineConfig")(num_labels=num_labels, **recipe["model"])
    backbone = config.backbone_config
    for key, value in recipe["backbone"].items():
        setattr(backbone, key, value)
    # the backbone reports its feature channels from hidden_sizes: keep them equal to the stage outputs
    backbone.hidden_sizes = list(backbone.stage_out_channels)
    backbone.embedding_size = backbone.stem_channels[-1]
    return config


FAMILY = DetrFamily(
    name="dfine", model_class="DFineForObjectDetection", config_class="DFineConfig",
    archs={f"dfine-{size}": ArchSpec(f"dfine-{size}", "dfine", (640, 640)) for size in SIZES},
    configs={f"dfine-{size}": (lambda num_labels, size=size: size_config(size, num_labels=num_labels))
             for size in SIZES},
    hub_ids={f"dfine-{size}": hub_id(size) for size in SIZES},
    preprocessing=STRETCH_NO_NORMALIZATION,
    class_heads=lambda model: list(model.model.decoder.class_embed),
    box_heads=lambda model: [layer.layers[-1] for layer in model.model.decoder.bbox_embed],
)
