"""Weights for torchvision's RetinaNets (``zoo.retinanet``): ``default`` = torchvision's published COCO
weights (``retinanet_resnet50_fpn[_v2]``), a ``train/`` checkpoint (every RetinaNet of the zoo), or ``none``.

Labels of the published models are COCO category ids (1..90) with 0 = background, torchvision's
``weights.meta["categories"]``; ``train/`` checkpoints label classes 0..N-1 with no background slot.

Example:
    >>> normalize_class_map({0: "cat", 1: "dog"})
    {1: 'cat', 2: 'dog'}
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.retinanet import WEIGHTS, RetinaNetFamily
from zoo.spec import first_line

from ..classes import coco91
from ..errors import ExportError
from .prepared import PreparedModel, load_trained

BACKGROUND_NAMES = ("background", "__background__", "__bg__")


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


def _published(arch: str) -> tuple[nn.Module, str]:
    if arch not in WEIGHTS:
        raise ExportError(f"{arch} has no published weights: pass --weights none or a train/ checkpoint")
    build, enum = WEIGHTS[arch]
    try:
        model = build(weights=enum.COCO_V1)
    except (OSError, RuntimeError) as exc:  # download failures surface as URLError (an OSError)
        raise ExportError(f"cannot download torchvision's {enum.__name__}.COCO_V1 (offline?): {first_line(exc)}; "
                          "pass --weights none or a checkpoint path") from None
    return model, f"torchvision:{enum.__name__}.COCO_V1"


def prepare(arch: str, family: RetinaNetFamily, *, weights: str = "default", classes: dict[int, str] | None = None,
            input_size: tuple[int, int] | None = None, seed: int = 0, checkpoint=None) -> PreparedModel:
    """Resolve the weights of a RetinaNet, wrap it for export, and describe it (see module docstring)."""
    notes: dict = {}
    preprocessing = dict(family.preprocessing)
    labels = {"offset": 0, "background_id": 0}
    if checkpoint is not None:
        class_map = dict(checkpoint.class_map or classes or {})
        if not class_map:
            raise ExportError(f"checkpoint {checkpoint.path} has no class map: pass --classes")
        has_background = class_map.get(0, "").lower() in BACKGROUND_NAMES
        labels = {"offset": 0, "background_id": 0 if has_background else None}
        num_classes = int(checkpoint.num_classes or max(class_map) + 1)
        model = family.build(arch, num_classes=num_classes, model_kwargs=dict(checkpoint.model_kwargs))
        input_size, resolved = load_trained(checkpoint, model, preprocessing=preprocessing, input_size=input_size)
    elif weights == "none":
        class_map = normalize_class_map(classes) if classes else coco91()
        torch.manual_seed(seed)
        model = family.build(arch, num_classes=max(class_map) + 1)
        notes = spread_random_scores(model, seed=seed)
        resolved = "none"
    elif weights == "default":
        if classes:
            raise ExportError("--classes cannot rename the COCO classes of --weights default; leave it out")
        model, resolved = _published(arch)
        class_map = coco91()
    else:
        raise ExportError(f"--weights {weights!r} for {arch}: expected default, none or a checkpoint file")
    model.eval()
    height, width = input_size or family.archs[arch].default_input_size
    return PreparedModel(
        arch=arch, module=family.graph(model, input_size=(height, width)), input_name=family.input_name,
        output_names=family.output_names, input_size=(height, width), preprocessing=preprocessing,
        output=family.output_block(model), labels=labels, class_map=class_map, weights=resolved,
        score_threshold=0.5, max_detections=100, nms_iou=float(model.nms_thresh), notes=notes,
    )
