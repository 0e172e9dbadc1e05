"""DEIMv2 (transformers ``Deimv2ForObjectDetection``), HGNetV2 size N.

Published weights: ``Intellindust/DEIMv2_HGNetv2_N_COCO`` (43.0 COCO AP, 3.6M parameters, per the DEIMv2
README). Served as DEIMv2 evaluates its HGNetV2 sizes: stretch to 640, antialiased bilinear, x/255, no
mean/std (``configs/deimv2/deimv2_hgnetv2_n_coco.yml`` has no Normalize step; transformers maps DEIMv2 to
RT-DETR's image processor); outputs ``logits`` + ``pred_boxes``, decoded like D-FINE's.

The offline config follows that recipe: D-FINE-N's HGNetV2-B0 backbone (``zoo.dfine``) with the same encoder
and decoder widths (128, feature strides 16/32, 3 decoder layers), plus DEIMv2's own defaults (summed FPN
fusion, gated SwiGLU decoder) and SiLU in the query MLP (``mlp_act: silu``).

Not offered: the Atto/Femto/Pico sizes (a lite encoder on smaller HGNetV2 variants whose stage widths
transformers does not ship) and S/M/L/X (a DINOv3 ViT backbone served with ImageNet mean/std, which would be
a family of its own).

Example:
    >>> config = FAMILY.config("deimv2-n", num_labels=3)
    >>> type(config).__name__, config.d_model, config.feat_strides, FAMILY.hub_id("deimv2-n")
    ('Deimv2Config', 128, [16, 32], 'Intellindust/DEIMv2_HGNetv2_N_COCO')
"""

from __future__ import annotations

from .detr import STRETCH_NO_NORMALIZATION, DetrFamily, transformers_class
from .dfine import size_config as dfine_size_config
from .spec import ArchSpec

_N_RECIPE = dict(num_feature_levels=2, encoder_in_channels=[512, 1024], feat_strides=[16, 32],
                 encoder_hidden_dim=128, encode_proj_layers=[1], encoder_ffn_dim=512, d_model=128,
                 decoder_in_channels=[128, 128], decoder_ffn_dim=512, decoder_n_points=[6, 6], decoder_layers=3,
                 depth_mult=0.5, hidden_expansion=0.34, decoder_activation_function="silu")


def n_config(*, num_labels: int):
    """A ``Deimv2Config`` with the architecture of DEIMv2-N (random weights, no download)."""
    backbone = dfine_size_config("n", num_labels=num_labels).backbone_config
    return transformers_class("Deimv2Config")(backbone_config=backbone, num_labels=num_labels, **_N_RECIPE)


FAMILY = DetrFamily(
    name="deimv2", model_class="Deimv2ForObjectDetection", config_class="Deimv2Config",
    archs={"deimv2-n": ArchSpec("deimv2-n", "deimv2", (640, 640))},
    configs={"deimv2-n": lambda num_labels: n_config(num_labels=num_labels)},
    hub_ids={"deimv2-n": "Intellindust/DEIMv2_HGNetv2_N_COCO"},
    preprocessing=STRETCH_NO_NORMALIZATION,
    class_heads=lambda model: list(model.model.decoder.class_embed),
    box_heads=lambda model: [layer.layers[-1] for layer in model.model.decoder.bbox_embed],
)
