"""Weights for the transformers DETR families of the zoo (``zoo.detr.DetrFamily``: D-FINE, RT-DETR...).

``default`` = the family's published COCO weights (``family.hub_id(arch)``); any other hub id or a
``save_pretrained`` directory; a checkpoint from ``train/``; ``none`` = random init from the published size
recipe (built offline, no download), re-initialised by ``reinit_for_parity``.

Example:
    >>> # prepare("dfine-n", zoo.FAMILIES["dfine"], weights="none", input_size=(320, 320)).output["top_k"]
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from zoo.detr import DetrFamily
from zoo.spec import ModelError

from ..classes import coco80
from ..errors import ExportError
from .prepared import PreparedModel, load_trained


def reinit_for_parity(model: nn.Module, family: DetrFamily, *, seed: int = 0,
                      input_size: tuple[int, int] = (640, 640), logit_mean: float = -4.0,
                      logit_std: float = 1.0) -> dict:
    """Give a randomly initialised DETR activations worth comparing.

    Hugging Face's init leaves features near zero, all class scores at the prior and every box equal to its
    anchor: top-k then picks among exact ties and ONNX Runtime and eager legitimately choose different
    queries. Kaiming-normal convolutions behind identity BatchNorm (transformers' generic init draws RT-DETR's
    BatchNorm weights near 0, which collapses its encoder to a constant) and perturbed box heads spread
    features and boxes; the class heads are then calibrated on one noise image so the logits have
    ``logit_mean`` / ``logit_std``: few confident detections, distinct scores.
    """
    generator = torch.Generator().manual_seed(seed)
    class_heads, box_heads = family.class_heads(model), family.box_heads(model)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for layer in box_heads:
            nn.init.normal_(layer.weight, std=0.2, generator=generator)
        for layer in class_heads:
            nn.init.normal_(layer.weight, std=1.0 / math.sqrt(layer.in_features), generator=generator)
            nn.init.zeros_(layer.bias)
        height, width = input_size
        logits = model.eval()(pixel_values=torch.rand(1, 3, height, width, generator=generator)).logits
        gain = logit_std / max(float(logits.std()), 1e-6)
        shift = logit_mean - gain * float(logits.mean())
        for layer in class_heads:
            layer.weight.mul_(gain)
            layer.bias.fill_(shift)
    return {"random_init": f"kaiming-normal convolutions, identity BatchNorm, box head std 0.2, class logits "
                           f"calibrated to mean {logit_mean} std {logit_std}", "seed": seed}


def _class_map_from_config(config) -> dict[int, str]:
    return {int(k): str(v) for k, v in sorted(config.id2label.items(), key=lambda kv: int(kv[0]))}


def _check_contiguous(class_map: dict[int, str], family: DetrFamily) -> None:
    ids = sorted(class_map)
    if ids != list(range(ids[0], ids[0] + len(ids))):
        raise ExportError(f"{family.name} predicts contiguous class indices; --classes ids {ids[:5]}... have gaps: "
                          "renumber them 0..N-1")


def _check_input_size(model: nn.Module, family: DetrFamily, *, height: int, width: int) -> None:
    try:
        family.check_input_size(model, height=height, width=width)
    except ModelError as exc:
        raise ExportError(f"--input-size: {exc}") from None


def prepare(arch: str, family: DetrFamily, *, weights: str = "default", classes: dict[int, str] | None = None,
            input_size: tuple[int, int] | None = None, seed: int = 0, checkpoint=None) -> PreparedModel:
    """Resolve the weights of a DETR-family model, wrap it for export, and describe it (see module docstring)."""
    notes: dict = {}
    preprocessing = dict(family.preprocessing)
    default_size = family.archs[arch].default_input_size
    if checkpoint is not None:
        class_map = checkpoint.class_map or classes
        if not class_map:
            raise ExportError(f"checkpoint {checkpoint.path} has no class map: pass --classes")
        config_dict = checkpoint.model_kwargs.get("config") or checkpoint.config
        config = (family.config_from_dict(config_dict) if config_dict
                  else family.config(arch, num_labels=len(class_map)))
        config.num_labels = len(class_map)
        model = family.from_config(config)
        input_size, resolved = load_trained(checkpoint, model, preprocessing=preprocessing, input_size=input_size)
    elif weights == "none":
        class_map = dict(classes) if classes else coco80()
        _check_contiguous(class_map, family)
        torch.manual_seed(seed)
        model = family.from_config(family.config(arch, num_labels=len(class_map)))
        if input_size:
            _check_input_size(model, family, height=input_size[0], width=input_size[1])
        notes = reinit_for_parity(model, family, seed=seed, input_size=input_size or default_size)
        resolved = "none"
    else:
        source = family.hub_id(arch) if weights == "default" else weights
        if source is None:
            raise ExportError(f"{arch} has no published weights: pass --weights none, a hub id or a checkpoint")
        try:
            model = family.from_pretrained(source)
        except ModelError as exc:
            raise ExportError(str(exc)) from None
        class_map = _class_map_from_config(model.config)
        if classes and len(classes) != len(class_map):
            raise ExportError(f"--classes has {len(classes)} names but {source} predicts {len(class_map)} classes")
        class_map = dict(classes) if classes else class_map
        resolved = source if not Path(source).exists() else str(Path(source).resolve())
    model.eval()
    height, width = input_size or default_size
    _check_input_size(model, family, height=height, width=width)
    return PreparedModel(
        arch=arch, module=family.graph(model, input_size=(height, width)), input_name=family.input_name,
        output_names=family.output_names, input_size=(height, width), preprocessing=preprocessing,
        output=family.output_block(model), labels={"offset": min(class_map), "background_id": None},
        class_map=class_map, weights=resolved, score_threshold=0.5, max_detections=100, notes=notes,
    )
