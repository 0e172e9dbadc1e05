"""The training checkpoint: what ``python -m train`` writes and ``python -m export --weights CKPT`` reads.

A ``torch.save``d dict (load with ``torch.load(path, map_location="cpu", weights_only=False)``)::

    {
      "format": "serverless-detection/train-checkpoint@1",
      "arch": "retinanet_resnet18_fpn",          # a key of zoo.ARCHS
      "num_classes": 4,                           # logits per box (no background slot)
      "class_map": {0: "cereal_box", ...},        # graph label -> name; manifest labels offset 0, no background
      "input_size": [320, 320],                   # [height, width] of the served tensor
      "preprocessing": {...},                     # the manifest "preprocessing" block, verbatim
      "output_format": "boxes_scores_labels",     # or "detr"
      "model_kwargs": {...},                      # zoo.build_model(arch, num_classes, model_kwargs)
      "state_dict": {...},                        # RetinaNet: torchvision keys (no transform); D-FINE: HF keys
      "epoch": 12, "optimizer": {...}, "scheduler": {...}, "history": [...],   # resume + curves
      "recipe": {...}, "metrics": {...}, "versions": {...}
    }

Networks are rebuilt by ``zoo.build_model`` (RetinaNet: torchvision's, whose transform is
``PassThroughTransform``; the DETR families: their transformers model from ``model_kwargs["config"]``), the
same builder export uses.

Example:
    >>> # ckpt = load_checkpoint("runs/demo/checkpoint.pt"); model = model_from_checkpoint(ckpt)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from zoo import ModelError, arch_spec, build_model

FORMAT = "serverless-detection/train-checkpoint@1"
REQUIRED_KEYS = ("arch", "num_classes", "class_map", "input_size", "preprocessing", "output_format",
                 "model_kwargs", "state_dict")


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and sanity-check a checkpoint; ``ModelError`` with one clear line otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several unrelated types for a bad file
        raise ModelError(f"{path} is not a readable torch checkpoint: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path} holds a {type(data).__name__}, not a train checkpoint dict")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ModelError(f"{path} is not a train checkpoint (missing {', '.join(missing)})")
    arch_spec(data["arch"])
    data["class_map"] = {int(k): str(v) for k, v in data["class_map"].items()}
    return data


def model_from_checkpoint(checkpoint: dict[str, Any]) -> torch.nn.Module:
    """The trained network, in eval mode."""
    model = build_model(checkpoint["arch"], num_classes=int(checkpoint["num_classes"]),
                        model_kwargs=checkpoint["model_kwargs"],
                        class_names=[checkpoint["class_map"][i] for i in sorted(checkpoint["class_map"])])
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Atomic write (tmp + rename), so an interrupted run never leaves a truncated checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"format": FORMAT, **payload}, tmp)
    os.replace(tmp, path)
    return path


def transfer_weights(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> tuple[int, int]:
    """Copy every tensor whose name and shape match (e.g. all but a class head of another size).

    Returns ``(copied, total_in_model)``.
    """
    own = model.state_dict()
    matched = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matched, strict=False)
    return len(matched), len(own)
