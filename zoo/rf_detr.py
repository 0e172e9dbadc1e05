"""RF-DETR (transformers ``RfDetrForObjectDetection``), sizes nano/small/medium/base.

A windowed DINOv2-S ViT backbone, one projected feature level, a two-stage deformable decoder. Published weights:
``Roboflow/rf-detr-<size>`` (the transformers conversions; ``Roboflow/rf-detr-base`` is the checkpoint
transformers documents). Served as the ``rfdetr`` package predicts: x/255, ImageNet mean/std, then a square
resize to the size's resolution (torchvision ``resize``: bilinear, antialiased; normalizing first is the same
as after, a bilinear resize being affine per channel); outputs ``logits`` + ``pred_boxes`` (normalized cxcywh),
sigmoid + top-300 over queries x classes like the other DETRs.

The offline configs are the ``rfdetr`` package's recipes (``rfdetr/config.py``): base = patch 14, 4x4 windows,
features after blocks 2/5/8/11, 3 decoder layers at 560 (``RfDetrConfig``'s defaults); nano/small/medium =
patch 16, 2x2 windows, features after blocks 3/6/9/12, 2/3/4 decoder layers at 384/512/576. The position
embedding grid is the resolution in patches.

Example:
    >>> config = FAMILY.config("rf-detr-nano", num_labels=3)
    >>> config.backbone_config.patch_size, config.decoder_layers, FAMILY.archs["rf-detr-nano"].default_input_size
    (16, 2, (384, 384))
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from .detr import STRETCH_NO_NORMALIZATION, DetrFamily, DetrGraph, transformers_class
from .spec import IMAGENET_MEAN, IMAGENET_STD, ArchSpec, ModelError

# size -> (resolution, patch size, windows per side, ViT blocks whose output feeds the projector, decoder layers)
RECIPES = {
    "nano": (384, 16, 2, (3, 6, 9, 12), 2),
    "small": (512, 16, 2, (3, 6, 9, 12), 3),
    "medium": (576, 16, 2, (3, 6, 9, 12), 4),
    "base": (560, 14, 4, (2, 5, 8, 11), 3),
}

STRETCH_IMAGENET = dict(STRETCH_NO_NORMALIZATION, mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))


def size_config(size: str, *, num_labels: int):
    """An ``RfDetrConfig`` with the architecture of RF-DETR-``size`` (random weights, no download)."""
    resolution, patch, windows, blocks, decoder_layers = RECIPES[size]
    backbone = transformers_class("RfDetrDinov2Config")(
        hidden_size=384, num_attention_heads=6, num_register_tokens=0, patch_size=patch, num_windows=windows,
        image_size=resolution, out_features=[f"stage{block}" for block in blocks])
    return transformers_class("RfDetrConfig")(backbone_config=backbone, num_labels=num_labels,
                                              decoder_layers=decoder_layers)


class RfDetrFamily(DetrFamily):
    def graph(self, model: nn.Module, *, input_size: tuple[int, int]) -> nn.Module:
        """The DETR graph with the ViT's position embedding computed once for ``input_size``.

        While tracing, transformers always resizes the embedding grid with an antialiased bicubic interpolation,
        which ONNX opset 17 cannot express; at a fixed input size it is a constant. The model is for export at
        this size from then on (``partial`` keeps it picklable).
        """
        height, width = input_size
        for module in model.modules():
            if hasattr(module, "interpolate_pos_encoding") and hasattr(module, "position_embeddings"):
                tokens = 1 + (height // module.patch_size) * (width // module.patch_size)
                with torch.no_grad():
                    fixed = module.interpolate_pos_encoding(
                        torch.zeros(1, tokens, module.position_embeddings.shape[-1]), height, width)
                module.interpolate_pos_encoding = partial(_fixed_position_embedding, fixed)
        return DetrGraph(model).eval()

    def check_input_size(self, model: nn.Module, *, height: int, width: int) -> None:
        """The ViT splits its patch grid into windows, and the encoder picks ``num_queries`` of its positions."""
        backbone = model.config.backbone_config
        step = backbone.patch_size * backbone.num_windows
        positions = (height // backbone.patch_size) * (width // backbone.patch_size)
        if height % step or width % step or positions < model.config.num_queries:
            raise ModelError(f"input size {height}x{width} does not fit {self.name}: sides must be multiples of "
                             f"{step} (patch {backbone.patch_size} x {backbone.num_windows} windows) giving at "
                             f"least {model.config.num_queries} patches; it has {positions}")


def _fixed_position_embedding(fixed: torch.Tensor, embeddings, height: int, width: int) -> torch.Tensor:
    return fixed


FAMILY = RfDetrFamily(
    name="rf_detr", model_class="RfDetrForObjectDetection", config_class="RfDetrConfig",
    archs={f"rf-detr-{size}": ArchSpec(f"rf-detr-{size}", "rf_detr", (recipe[0], recipe[0]))
           for size, recipe in RECIPES.items()},
    configs={f"rf-detr-{size}": (lambda num_labels, size=size: size_config(size, num_labels=num_labels))
             for size in RECIPES},
    hub_ids={f"rf-detr-{size}": f"Roboflow/rf-detr-{size}" for size in RECIPES},
    preprocessing=STRETCH_IMAGENET,
    class_heads=lambda model: [model.class_embed, *model.model.enc_out_class_embed],
    box_heads=lambda model: [model.bbox_embed.layers[-1], *(head.layers[-1] for head in model.model.enc_out_bbox_embed)],
)
