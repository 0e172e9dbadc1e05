"""What every detector family in the zoo provides (``Family``), and the names they share.

A family turns an architecture name (``dfine-n``, ``retinanet_tiny_fpn``...) into a PyTorch network that takes
the already preprocessed tensor (the served one: ``detection.preprocess`` makes it from the manifest block
``preprocessing``), and says how that network is trained, exported and served:

- ``archs``: the architecture names it builds, with their default input size;
- ``preprocessing`` / ``output_block`` / ``input_name`` / ``output_names``: the manifest contract;
- ``build``: the network for ``num_classes`` (random init, published weights, or a stored config);
- ``graph``: the module ``torch.onnx.export`` traces (tensor in, the output tensors out); ``batch_axis``: it
  can run several images at once (``export --batch-axis`` gives it a free first axis);
- ``hub_id``: where its published weights live;
- ``make_target`` / ``loss`` / ``raw_outputs``: what ``train`` feeds it, how it learns, what it predicts.

Example:
    >>> ArchSpec("dfine-n", "dfine", (640, 640)).default_input_size
    (640, 640)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class ModelError(ValueError):
    """The model cannot be built or its weights loaded; the message says what to pass instead."""


@dataclass(frozen=True)
class ArchSpec:
    name: str
    family: str
    default_input_size: tuple[int, int]
    small: bool = False  # trainable from scratch on a CPU in minutes


class Family:
    """One detector family; subclasses fill in the contract described in the module docstring."""

    name: str
    archs: dict[str, ArchSpec]
    preprocessing: dict
    input_name: str
    output_names: tuple[str, ...]
    default_lr: float  # AdamW peak learning rate for fine-tuning
    batch_axis: bool = False  # the graph can run several images at once (export --batch-axis)

    def output_block(self, model: nn.Module | None = None) -> dict:
        """The manifest ``output`` block (``model``, when given, may refine it, e.g. DETR's ``top_k``)."""
        raise NotImplementedError

    def build(self, arch: str, *, num_classes: int, model_kwargs: dict | None = None, pretrained: bool = False,
              class_names: Sequence[str] | None = None) -> nn.Module:
        raise NotImplementedError

    def graph(self, model: nn.Module, *, input_size: tuple[int, int]) -> nn.Module:
        raise NotImplementedError

    def hub_id(self, arch: str) -> str | None:
        return None

    def model_kwargs(self, arch: str, model: nn.Module, requested: dict | None = None) -> dict:
        """What a checkpoint must store to rebuild ``model`` exactly with ``build``."""
        return dict(requested or {})

    def check_input_size(self, model: nn.Module, *, height: int, width: int) -> None:
        """Raise ``ModelError`` when the network cannot run at this input size."""

    def make_target(self, boxes: torch.Tensor, labels: torch.Tensor, *, input_size: tuple[int, int]) -> dict:
        """One image's training target from xyxy boxes in input-tensor pixels and 0-based labels."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: torch.Tensor, targets: list[dict]) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def raw_outputs(self, model: nn.Module, batch: torch.Tensor) -> list[dict[str, np.ndarray]]:
        """Per image, the outputs the exported graph gives (named as in ``output_names``)."""
        raise NotImplementedError


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type), for one-line errors."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
