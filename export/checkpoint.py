"""Read checkpoints written by ``train/`` (or by hand), tolerantly.

Expected (``torch.save`` of a dict of plain types)::

    {
      "arch": "dfine-s" | "retinanet_resnet50_fpn" | ...,     # --arch may fill it in when absent
      "state_dict": {...},                                    # also accepted: "model", "model_state_dict"
      "class_map": {0: "cat", 1: "dog"},                      # id -> name (or name -> id, or a list);
                                                              # also "classes" / "id2label"
      "num_classes": 2,                                       # optional (RetinaNet: incl. background)
      "input_size": [640, 640],                               # [height, width], optional
      "preprocessing": {...},                                 # manifest preprocessing block, optional
      "model_kwargs": {...},                                  # builder kwargs; D-FINE: {"config": DFineConfig dict}
    }

A bare ``state_dict`` (a dict of tensors) works too, with ``--arch`` and ``--classes`` given.
Loaded with ``torch.load(weights_only=True)``: plain types only; ``trust=True`` lifts that for files you made.

Example:
    >>> # ckpt = load_checkpoint("runs/exp1/best.pt"); ckpt.arch, ckpt.input_size
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detection.manifest import parse_class_map
from detection.errors import BundleError

from .errors import ExportError

_STATE_KEYS = ("state_dict", "model_state_dict", "model")
_CLASS_KEYS = ("class_map", "classes", "id2label")


@dataclass
class Checkpoint:
    path: Path
    arch: str | None
    state_dict: dict
    class_map: dict[int, str] | None = None
    num_classes: int | None = None
    input_size: tuple[int, int] | None = None
    preprocessing: dict | None = None
    model_kwargs: dict = field(default_factory=dict)
    config: dict | None = None
    recipe: dict | None = None      # train/'s recipe (what determined the weights) and last val metrics
    metrics: dict | None = None
    extra: dict = field(default_factory=dict)

    def load_into(self, model) -> None:
        """Load the weights strictly; a mismatch names the first missing/unexpected keys."""
        state = self.state_dict
        target = model.state_dict()
        if not any(k in target for k in state):  # saved from a wrapper: strip a common prefix
            for prefix in ("model.", "module."):
                stripped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
                if stripped and any(k in target for k in stripped):
                    state = stripped
                    break
        missing = [k for k in target if k not in state]
        unexpected = [k for k in state if k not in target]
        if missing or unexpected:
            raise ExportError(
                f"checkpoint {self.path} does not fit --arch {self.arch}: {len(missing)} missing keys "
                f"({', '.join(missing[:3])}...), {len(unexpected)} unexpected ({', '.join(unexpected[:3])}...); "
                "check --arch and the class count")
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ExportError(f"checkpoint {self.path} does not fit --arch {self.arch}: "
                              f"{str(exc).splitlines()[-1].strip()}") from None


def _input_size(value: Any, path: Path) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    raise ExportError(f"checkpoint {path}: input_size must be [height, width], got {value!r}")


def load_checkpoint(path: str | Path, *, arch: str | None = None, trust: bool = False) -> Checkpoint:
    """Load and sanity-check a checkpoint (see module docstring for the format)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"--weights {path}: no such checkpoint file (or pass default, none or a hub id)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        if not zipfile.is_zipfile(path):
            raise ExportError(f"checkpoint {path} is not a torch.save file") from None
        raise ExportError(f"checkpoint {path} holds objects beyond plain tensors/dicts/lists "
                          f"({str(exc).splitlines()[0][:120]}); save plain types or pass --trust-checkpoint "
                          "if you made this file") from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise ExportError(f"checkpoint {path} is not a torch.save file: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ExportError(f"checkpoint {path} holds a {type(data).__name__}; expected a dict (see export/README.md)")
    state = next((data[k] for k in _STATE_KEYS if isinstance(data.get(k), dict)), None)
    if state is None:
        import torch as _torch

        if data and all(isinstance(v, _torch.Tensor) for v in data.values()):
            state, data = data, {}
        else:
            raise ExportError(f"checkpoint {path} has no weights: expected a 'state_dict' key (or a bare state dict)")
    class_map = None
    raw_classes = next((data[k] for k in _CLASS_KEYS if data.get(k)), None)
    if raw_classes is not None:
        try:
            class_map = parse_class_map(raw_classes)
        except BundleError as exc:
            raise ExportError(f"checkpoint {path}: {exc.message}") from None
    found_arch = data.get("arch") or data.get("architecture")
    if arch and found_arch and arch != found_arch:
        raise ExportError(f"--arch {arch} but checkpoint {path} was trained as {found_arch}: drop --arch or fix it")
    return Checkpoint(
        path=path,
        arch=arch or found_arch,
        state_dict=state,
        class_map=class_map,
        num_classes=data.get("num_classes"),
        input_size=_input_size(data.get("input_size"), path),
        preprocessing=data.get("preprocessing"),
        model_kwargs=dict(data.get("model_kwargs") or {}),
        config=data.get("config"),
        recipe=data.get("recipe") if isinstance(data.get("recipe"), dict) else None,
        metrics=data.get("metrics") if isinstance(data.get("metrics"), dict) else None,
        extra={k: v for k, v in data.items() if k not in (*_STATE_KEYS, *_CLASS_KEYS)
               and isinstance(v, (str, int, float, bool))},
    )
