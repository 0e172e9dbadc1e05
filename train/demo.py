"""A real trained detector, offline: the demo dataset + the small RetinaNet, trained once and cached.

``ensure_demo_checkpoint()`` generates the seeded demo dataset and trains ``DEMO_RECIPE`` the first time, then
returns the cached checkpoint. The cache folder is keyed by a hash of the recipe (dataset parameters, training
config, torch/torchvision versions), so changing the recipe retrains instead of serving a stale model.
Concurrent callers (parallel tests, deploy.sh) serialize on a file lock (``locked``); a half-written result is
never picked up (``done.json`` is written last). The deployer exports the checkpoint to the demo bundle
(``deployer.demo``).

Cache root: ``cache_dir`` argument, else ``$SERVERLESS_DETECTION_CACHE``, else
``~/.cache/serverless-detection``.

Example:
    >>> # checkpoint = ensure_demo_checkpoint()        # minutes the first time, instant afterwards
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable

import torch
import torchvision

from .demo_data import GENERATOR_VERSION, generate_dataset
from .engine import TrainConfig, fit

DEMO_DATASET = {"num_images": 2000, "seed": 0, "min_size": 320, "max_size": 480}
DEMO_RECIPE = {
    "arch": "retinanet_tiny_fpn",
    "input_size": [224, 224],
    "epochs": 9,
    "batch_size": 8,
    "optimizer": "sgd",
    "lr": 0.02,
    "weight_decay": 4e-5,
    "ema_decay": 0.998,
    "crop_prob": 0.0,
    "seed": 0,
    "val_fraction": 0.2,
    "eval_every": 2,
    "model_kwargs": {"fpn_channels": 32, "head_norm_groups": 8},
}


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    if cache_dir:
        return Path(cache_dir)
    env = os.environ.get("SERVERLESS_DETECTION_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "serverless-detection"


def dataset_key_params(dataset: dict | None = None) -> dict:
    """The generator's parameters plus its version: what identifies the generated files."""
    return {**(dataset or DEMO_DATASET), "generator": GENERATOR_VERSION}


def recipe_key(dataset: dict | None = None, recipe: dict | None = None) -> str:
    """12 hex chars identifying what would be trained (changes when anything that matters changes)."""
    payload = {"dataset": dataset_key_params(dataset), "recipe": recipe or DEMO_RECIPE,
               "torch": torch.__version__, "torchvision": torchvision.__version__, "format": 1}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


@contextlib.contextmanager
def locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def demo_dir(cache_dir: str | os.PathLike | None = None, *, dataset: dict | None = None,
             recipe: dict | None = None) -> Path:
    return cache_root(cache_dir) / "demo-detector" / recipe_key(dataset, recipe)


def ensure_demo_dataset(cache_dir: str | os.PathLike | None = None, *, dataset: dict | None = None) -> Path:
    """The demo VOC dataset (generated once per parameter set)."""
    params = dataset or DEMO_DATASET
    key = hashlib.sha256(json.dumps(dataset_key_params(params), sort_keys=True).encode()).hexdigest()[:12]
    root = cache_root(cache_dir) / "demo-data" / key
    with locked(root.parent / f"{key}.lock"):
        if not (root / "done.json").is_file():
            summary = generate_dataset(root, **params)
            (root / "done.json").write_text(json.dumps(summary))
    return root


def ensure_demo_checkpoint(cache_dir: str | os.PathLike | None = None, *, dataset: dict | None = None,
                           recipe: dict | None = None, progress: bool = False,
                           log: Callable[[str], None] = print) -> Path:
    """The trained demo checkpoint (``checkpoint.pt``), training it first if this recipe has no cached one."""
    params = dict(recipe or DEMO_RECIPE)
    root = demo_dir(cache_dir, dataset=dataset, recipe=recipe)
    checkpoint = root / "checkpoint.pt"
    with locked(root.parent / f"{root.name}.lock"):
        if (root / "done.json").is_file() and checkpoint.is_file():
            return checkpoint
        data = ensure_demo_dataset(cache_dir, dataset=dataset)
        log(f"training the demo detector ({params['arch']}, {params['epochs']} epochs) into {root}; "
            "this happens once per recipe")
        started = time.perf_counter()
        config = TrainConfig(data=str(data), out=str(root), progress=progress, resume=True,
                             input_size=tuple(params.pop("input_size")), **params)
        fit(config, log=log)
        history = json.loads((root / "history.json").read_text())
        (root / "done.json").write_text(json.dumps({
            "recipe": recipe or DEMO_RECIPE, "dataset": str(data), "seconds": round(time.perf_counter() - started, 1),
            "final": history[-1] if history else None}, indent=1))
    return checkpoint
