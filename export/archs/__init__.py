"""Weights for each architecture of the zoo: ``prepare`` turns ``(weights, classes, input size)`` into a
``PreparedModel``: the zoo's eval-mode graph wrapper (it takes the already preprocessed tensor) plus the
manifest blocks that say how it was trained and what it outputs.

What an architecture *is* lives in ``zoo``; here lives only where its weights come from (published weights,
a ``train/`` checkpoint, ``none`` = random init) and the random-init tweaks that give the parity gate
detections worth comparing: ``retinanet`` for torchvision's RetinaNets, ``detr`` for every transformers DETR
family.

Example:
    >>> ARCHS["dfine-n"].family, ARCHS["retinanet_tiny_fpn"].default_input_size
    ('dfine', (224, 224))
"""

from __future__ import annotations

import zoo
from zoo.detr import DetrFamily
from zoo.retinanet import RetinaNetFamily

from ..errors import ExportError
from . import detr, retinanet
from .prepared import PreparedModel

ARCHS = zoo.ARCHS
_RESOLVERS = ((RetinaNetFamily, retinanet.prepare), (DetrFamily, detr.prepare))

__all__ = ["ARCHS", "PreparedModel", "prepare"]


def prepare(arch: str, **kwargs) -> PreparedModel:
    """Build ``arch`` (see ``ARCHS``) with ``weights``, ``classes``, ``input_size``, ``seed``, ``checkpoint``."""
    if arch not in ARCHS:
        raise ExportError(f"unknown --arch {arch!r}: choose one of {', '.join(sorted(ARCHS))}, or 'onnx' "
                          "with --onnx model.onnx for a bring-your-own graph")
    size = kwargs.get("input_size")
    if isinstance(size, int):
        kwargs["input_size"] = (size, size)
    family = zoo.family_of(arch)
    resolve = next(resolve for kind, resolve in _RESOLVERS if isinstance(family, kind))
    return resolve(arch, family, **kwargs)
