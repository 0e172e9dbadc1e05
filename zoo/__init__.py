"""The model zoo: every detector family ``train`` trains and ``export`` exports, one module per family.

Each family module defines ``FAMILY`` (a ``zoo.spec.Family``: architectures, builder, manifest preprocessing
and output blocks, the graph wrapper export traces, hub ids, training target and loss). Modules are found by
scanning this package, so a new family is one new file. ``train`` and ``export`` both import this package;
it imports only ``torch``/``torchvision`` (and ``transformers`` on first use of a DETR family).

Example:
    >>> arch_spec("retinanet_resnet18_fpn").family, preprocessing_for("dfine-n")["resize"]
    ('retinanet', 'stretch')
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Sequence

from torch import nn

from .spec import IMAGENET_MEAN, IMAGENET_STD, ArchSpec, Family, ModelError

__all__ = ["ARCHS", "FAMILIES", "IMAGENET_MEAN", "IMAGENET_STD", "ArchSpec", "Family", "ModelError", "arch_spec",
           "build_model", "family_of", "model_kwargs_for", "output_format_for", "preprocessing_for"]


def _discover() -> dict[str, Family]:
    families = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        family = getattr(importlib.import_module(f"{__name__}.{info.name}"), "FAMILY", None)
        if family is not None:
            families[family.name] = family
    return families


FAMILIES: dict[str, Family] = _discover()
ARCHS: dict[str, ArchSpec] = {name: spec for family in FAMILIES.values() for name, spec in family.archs.items()}


def arch_spec(arch: str) -> ArchSpec:
    if arch not in ARCHS:
        raise ModelError(f"unknown --arch {arch!r}; choose one of {', '.join(ARCHS)}")
    return ARCHS[arch]


def family_of(arch: str) -> Family:
    return FAMILIES[arch_spec(arch).family]


def preprocessing_for(arch: str) -> dict:
    """The manifest ``preprocessing`` block this architecture is trained and served with."""
    return dict(family_of(arch).preprocessing)


def output_format_for(arch: str) -> str:
    return family_of(arch).output_block()["format"]


def model_kwargs_for(arch: str, model: nn.Module, requested: dict | None = None) -> dict:
    """What a checkpoint must store to rebuild ``model`` exactly."""
    return family_of(arch).model_kwargs(arch, model, requested)


def build_model(arch: str, *, num_classes: int, model_kwargs: dict | None = None, weights: str = "none",
                class_names: Sequence[str] | None = None) -> nn.Module:
    """Build ``arch`` for ``num_classes``; ``weights`` is ``none`` or ``default`` (published weights).

    Checkpoint paths and hub ids are resolved by ``train.engine.initial_model`` and ``export.archs``.

    Example:
        >>> model = build_model("retinanet_resnet18_fpn", num_classes=3)
        >>> type(model.transform).__name__
        'PassThroughTransform'
    """
    if weights not in ("none", "default"):
        raise ModelError(f"build_model takes weights none|default, got {weights!r}")
    return family_of(arch).build(arch, num_classes=num_classes, model_kwargs=model_kwargs,
                                 pretrained=weights == "default", class_names=class_names)
