"""RT-DETR v2 (transformers ``RTDetrV2ForObjectDetection``): RT-DETR's ResNet-vd sizes with the v2 decoder
(per-level sampling points, ``decoder_method`` default); published as ``PekingU/rtdetr_v2_r<depth>vd``.

Same image processor as RT-DETR (640x640 stretch, x/255, no mean/std) and the same ``detr`` outputs; the offline
configs are RT-DETR's recipes (``zoo.rtdetr.RECIPES``) in ``RTDetrV2Config``.

Example:
    >>> config = FAMILY.config("rtdetr-v2-r18", num_labels=3)
    >>> type(config).__name__, config.decoder_layers, FAMILY.hub_id("rtdetr-v2-r18")
    ('RTDetrV2Config', 3, 'PekingU/rtdetr_v2_r18vd')
"""

from __future__ import annotations

from .detr import STRETCH_NO_NORMALIZATION, DetrFamily
from .rtdetr import RECIPES, recipe_config
from .spec import ArchSpec

FAMILY = DetrFamily(
    name="rtdetr_v2", model_class="RTDetrV2ForObjectDetection", config_class="RTDetrV2Config",
    archs={f"rtdetr-v2-r{depth}": ArchSpec(f"rtdetr-v2-r{depth}", "rtdetr_v2", (640, 640)) for depth in RECIPES},
    configs={f"rtdetr-v2-r{depth}": (lambda num_labels, depth=depth: recipe_config(
        depth, num_labels=num_labels, config_class="RTDetrV2Config")) for depth in RECIPES},
    hub_ids={f"rtdetr-v2-r{depth}": f"PekingU/rtdetr_v2_r{depth}vd" for depth in RECIPES},
    preprocessing=STRETCH_NO_NORMALIZATION,
    class_heads=lambda model: list(model.model.decoder.class_embed),
    box_heads=lambda model: [layer.layers[-1] for layer in model.model.decoder.bbox_embed],
)
