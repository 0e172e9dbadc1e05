"""What the real-time DETR families of Hugging Face transformers share (D-FINE, RT-DETR, DEIM, RF-DETR).

Each takes ``pixel_values`` (the served tensor) and returns ``logits`` (per query and class, sigmoid scores)
and ``pred_boxes`` (normalized cxcywh), decoded with sigmoid + top-k over queries x classes (Hugging Face's
``post_process_object_detection``); the manifest declares that as output format ``detr``. Training targets
are ``class_labels`` + normalized cxcywh ``boxes``; the model computes its own matching loss.

A family module builds one ``DetrFamily``: its architectures, the transformers classes (named, resolved on
first use: importing transformers takes seconds and RetinaNet-only installs do without it), an offline
config per size (the published recipe, so ``--weights none`` needs no download), hub ids and preprocessing.
The full config goes into the checkpoint's ``model_kwargs["config"]`` so the exact network is rebuilt
without the hub.

Example:
    >>> STRETCH_NO_NORMALIZATION["resize"], STRETCH_NO_NORMALIZATION["mean"]
    ('stretch', None)
"""

from __future__ import annotations

import importlib
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .spec import ArchSpec, Family, ModelError, first_line

# Stretch to the input size, antialiased bilinear, x/255, no mean/std: the RT-DETR image processor's defaults
# (do_resize to 640x640, do_rescale, do_normalize=False), which D-FINE, RT-DETR v2 and DEIM publish with.
STRETCH_NO_NORMALIZATION = {"resize": "stretch", "interpolation": "bilinear", "antialias": True,
                            "pad_position": "bottom_right", "pad_value": 0.0, "scale": 1.0 / 255.0,
                            "mean": None, "std": None, "channel_order": "RGB"}


def transformers_class(name: str):
    """``transformers.<name>``, imported on first use."""
    return getattr(importlib.import_module("transformers"), name)


class DetrGraph(nn.Module):
    """The exported graph: ``pixel_values`` -> (``logits``, ``pred_boxes``); no processor inside."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor):
        out = self.model(pixel_values=pixel_values)
        return out.logits, out.pred_boxes


class DetrFamily(Family):
    """A transformers DETR-style detector family (see module docstring).

    ``configs[arch](num_labels)`` returns the offline config of ``arch``; ``hub_ids[arch]`` its published
    weights; ``class_heads`` / ``box_heads`` name the final linear layers of the decoder's class and box
    predictors (export's random-init calibration reaches them through these).
    """

    input_name = "pixel_values"
    output_names = ("logits", "pred_boxes")
    batch_axis = True

    def __init__(self, *, name: str, model_class: str, config_class: str, archs: dict[str, ArchSpec],
                 configs: dict[str, Callable[[int], object]], hub_ids: dict[str, str], preprocessing: dict,
                 class_heads: Callable[[nn.Module], list[nn.Linear]],
                 box_heads: Callable[[nn.Module], list[nn.Linear]], default_lr: float = 2e-4):
        self.name, self.model_class, self.config_class = name, model_class, config_class
        self.archs, self.configs, self.hub_ids = archs, configs, hub_ids
        self.preprocessing = preprocessing
        self.class_heads, self.box_heads = class_heads, box_heads
        self.default_lr = default_lr

    def output_block(self, model: nn.Module | None = None) -> dict:
        top_k = int(model.config.num_queries) if model is not None else 300
        return {"format": "detr", "logits": "logits", "boxes": "pred_boxes", "top_k": top_k}

    def hub_id(self, arch: str) -> str | None:
        return self.hub_ids.get(arch)

    def config(self, arch: str, *, num_labels: int, class_names: Sequence[str] | None = None):
        """The offline config of ``arch`` (the published size recipe) for ``num_labels`` classes."""
        config = self.configs[arch](num_labels)
        _set_labels(config, num_labels, class_names)
        return config

    def config_from_dict(self, data: dict):
        return transformers_class(self.config_class).from_dict(data)

    def from_config(self, config) -> nn.Module:
        return transformers_class(self.model_class)(config)

    def from_pretrained(self, source: str, *, num_classes: int | None = None,
                        class_names: Sequence[str] | None = None) -> nn.Module:
        """Published weights (hub id) or a ``save_pretrained`` directory; with ``num_classes`` the class heads
        are re-created for that many classes (fine-tuning)."""
        kwargs = {}
        if num_classes is not None:
            labels = _labels(num_classes, class_names)
            kwargs = dict(num_labels=num_classes, id2label=labels, label2id={v: k for k, v in labels.items()},
                          ignore_mismatched_sizes=True)
        try:
            return transformers_class(self.model_class).from_pretrained(source, **kwargs)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load {self.name} weights {source!r} (the Hugging Face hub needs network "
                             f"access): {first_line(exc)}; pass --weights none, a save_pretrained directory or "
                             "a train/ checkpoint") from None

    def build(self, arch: str, *, num_classes: int, model_kwargs: dict | None = None, pretrained: bool = False,
              class_names: Sequence[str] | None = None) -> nn.Module:
        """From ``model_kwargs["config"]`` (a checkpoint), the published weights, or the offline recipe."""
        kwargs = dict(model_kwargs or {})
        if pretrained:
            return self.from_pretrained(self.hub_ids[arch], num_classes=num_classes, class_names=class_names)
        if "config" in kwargs:
            config = self.config_from_dict(kwargs["config"])
            _set_labels(config, num_classes, class_names)
        else:
            config = self.config(arch, num_labels=num_classes, class_names=class_names)
        return self.from_config(config)

    def graph(self, model: nn.Module, *, input_size: tuple[int, int]) -> nn.Module:
        return DetrGraph(model).eval()

    def model_kwargs(self, arch: str, model: nn.Module, requested: dict | None = None) -> dict:
        return {"config": model.config.to_dict()}

    def check_input_size(self, model: nn.Module, *, height: int, width: int) -> None:
        """The encoder picks ``num_queries`` positions of its feature maps: they must have at least that many."""
        config = model.config
        positions = sum(-(-height // s) * -(-width // s) for s in config.feat_strides)
        if positions < config.num_queries or height % 32 or width % 32:
            raise ModelError(f"input size {height}x{width} does not fit {self.name}: its feature maps have "
                             f"{positions} positions for {config.num_queries} queries, and sides must be multiples "
                             "of 32; use 320 or more")

    def make_target(self, boxes: torch.Tensor, labels: torch.Tensor, *, input_size: tuple[int, int]) -> dict:
        height, width = input_size
        cx = (boxes[:, 0] + boxes[:, 2]) / 2 / width
        cy = (boxes[:, 1] + boxes[:, 3]) / 2 / height
        w = (boxes[:, 2] - boxes[:, 0]) / width
        h = (boxes[:, 3] - boxes[:, 1]) / height
        return {"class_labels": labels, "boxes": torch.stack([cx, cy, w, h], dim=1)}

    def loss(self, model: nn.Module, batch: torch.Tensor, targets: list[dict]) -> tuple[torch.Tensor, dict]:
        out = model(pixel_values=batch, labels=targets)
        parts = {k: float(v.detach()) for k, v in (getattr(out, "loss_dict", None) or {}).items()}
        return out.loss, parts

    def raw_outputs(self, model: nn.Module, batch: torch.Tensor) -> list[dict[str, np.ndarray]]:
        out = model(pixel_values=batch)
        return [{"logits": out.logits[i:i + 1].numpy(), "pred_boxes": out.pred_boxes[i:i + 1].numpy()}
                for i in range(batch.shape[0])]


def _labels(num_classes: int, class_names: Sequence[str] | None) -> dict[int, str]:
    return {i: (str(class_names[i]) if class_names else str(i)) for i in range(num_classes)}


def _set_labels(config, num_classes: int, class_names: Sequence[str] | None) -> None:
    labels = _labels(num_classes, class_names)
    config.num_labels = num_classes
    config.id2label, config.label2id = labels, {v: k for k, v in labels.items()}
