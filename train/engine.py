"""The training loop: data -> model -> AdamW + warmup/cosine -> per-epoch COCO eval -> checkpoint + plot.

Example:
    >>> # fit(TrainConfig(data="data/fridge", arch="retinanet_resnet18_fpn", epochs=20, out="runs/fridge"))
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torchvision

from zoo import (FAMILIES, ModelError, arch_spec, build_model, family_of, model_kwargs_for, output_format_for,
                 preprocessing_for)
from zoo.detr import DetrFamily

from .checkpoint import load_checkpoint, save_checkpoint, transfer_weights
from .data import AugmentConfig, DetectionSamples, collate
from .datasets import Dataset, load_dataset, split_records
from .metrics import coco_metrics, format_table
from .predict import decode_like_lambda, detections_as_dicts, serving_manifest, torch_detect

CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.pt"
PLOT_NAME = "training.png"


@dataclass
class TrainConfig:
    data: str
    arch: str = "retinanet_resnet18_fpn"
    weights: str = "none"
    out: str = "runs/train"
    input_size: tuple[int, int] | None = None
    epochs: int = 20
    batch_size: int = 8
    lr: float | None = None
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    ema_decay: float = 0.0
    crop_prob: float = 0.5
    warmup_iters: int = 100
    val_fraction: float = 0.2
    seed: int = 0
    classes: list[str] | None = None
    images_dir: str | None = None
    workers: int = 0
    threads: int | None = None
    resume: bool = False
    eval_every: int = 1
    eval_initial: bool = False
    max_train_images: int | None = None
    model_kwargs: dict = field(default_factory=dict)
    progress: bool = True

    def resolved_input_size(self) -> tuple[int, int]:
        size = self.input_size or arch_spec(self.arch).default_input_size
        return int(size[0]), int(size[1])

    def resolved_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        if self.optimizer == "sgd":
            return 0.02
        return family_of(self.arch).default_lr


OPTIMIZERS = ("adamw", "sgd")


def make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    """AdamW, or SGD with Nesterov momentum 0.9 (faster for the small RetinaNets from scratch)."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.resolved_lr(), momentum=0.9, nesterov=True,
                               weight_decay=config.weight_decay)
    if config.optimizer != "adamw":
        raise ModelError(f"--optimizer {config.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
    return torch.optim.AdamW(params, lr=config.resolved_lr(), weight_decay=config.weight_decay)


class ModelEMA:
    """An exponential moving average of the weights (and BatchNorm statistics), updated after every step.

    The decay ramps up from 0 (``decay * (1 - exp(-updates / ramp))``), so the average follows the fast-moving
    early weights and then smooths the noise of small-batch SGD; evaluation and export use the average.

    Example:
        >>> model = torch.nn.Linear(2, 1)
        >>> ema = ModelEMA(model, decay=0.99)
        >>> ema.update(model); ema.updates
        1
    """

    def __init__(self, model: torch.nn.Module, *, decay: float, ramp: int = 200, updates: int = 0):
        self.model = copy.deepcopy(model).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.decay, self.ramp, self.updates = decay, ramp, updates

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        decay = self.decay * (1 - math.exp(-self.updates / self.ramp))
        current = model.state_dict()
        for name, value in self.model.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(decay).add_(current[name].detach(), alpha=1 - decay)
            else:
                value.copy_(current[name])


def recipe(config: TrainConfig) -> dict:
    """What determines the trained weights (for cache keys and the checkpoint); excludes paths and I/O knobs."""
    data = asdict(config)
    for key in ("data", "out", "resume", "workers", "threads", "progress", "images_dir", "eval_initial"):
        data.pop(key)
    data["input_size"] = list(config.resolved_input_size())
    data["lr"] = config.resolved_lr()
    return data


# ---------------------------------------------------------------- initial weights


def initial_model(config: TrainConfig, classes: list[str]) -> tuple[torch.nn.Module, str]:
    """Build the model for ``--weights none|default|PATH|hub id``; returns the model and a note on the source."""
    weights, arch, num = config.weights, config.arch, len(classes)
    family = family_of(arch)
    from_hub = isinstance(family, DetrFamily)  # a hub id or save_pretrained directory
    if weights in ("none", "default"):
        return build_model(arch, num_classes=num, model_kwargs=config.model_kwargs, weights=weights,
                           class_names=classes), weights
    path = Path(weights)
    if path.is_dir():
        if not from_hub:
            raise ModelError(f"--weights {weights} is a directory; RetinaNet takes a .pt/.pth file")
        return family.from_pretrained(str(path), num_classes=num, class_names=classes), f"local:{path}"
    if path.is_file():
        data = torch.load(path, map_location="cpu", weights_only=False)
        if isinstance(data, dict) and "state_dict" in data and "arch" in data:
            if data["arch"] != arch:
                raise ModelError(f"--weights {weights} is a {data['arch']} checkpoint, not {arch}; pass --arch {data['arch']}")
            kwargs = dict(data.get("model_kwargs") or {})
            if "config" in kwargs:
                kwargs["config"] = {**kwargs["config"], "num_labels": num}
            model = build_model(arch, num_classes=num, model_kwargs=kwargs, class_names=classes)
            state = data["state_dict"]
        else:
            model = build_model(arch, num_classes=num, model_kwargs=config.model_kwargs, class_names=classes)
            state = data.get("model", data) if isinstance(data, dict) else data
            if not isinstance(state, dict):
                raise ModelError(f"--weights {weights} holds no state dict")
        copied, total = transfer_weights(model, state)
        if copied == 0:
            raise ModelError(f"--weights {weights}: no tensor matches {arch} by name and shape")
        return model, f"{path} ({copied}/{total} tensors)"
    if from_hub and "/" in weights and not weights.startswith((".", "/")):
        return family.from_pretrained(weights, num_classes=num, class_names=classes), weights
    hint = f" or a hub id like {family.hub_id(arch)}" if from_hub else ""
    raise ModelError(f"--weights {weights!r}: not none, default, an existing file{hint}")


# ---------------------------------------------------------------- schedule, loss, eval


def lr_factor(step: int, *, total: int, warmup: int) -> float:
    """Linear warmup to 1, then cosine down to 0.05.

    Example:
        >>> [round(lr_factor(s, total=100, warmup=10), 2) for s in (0, 10, 100)]
        [0.1, 1.0, 0.05]
    """
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))


def compute_loss(model, batch: torch.Tensor, targets: list[dict], *, family: str) -> tuple[torch.Tensor, dict]:
    """The training loss of ``family`` (a ``zoo.FAMILIES`` key) and its parts."""
    return FAMILIES[family].loss(model, batch, targets)


def evaluate_model(model, records, *, classes: list[str], arch: str, input_size, preprocessing: dict,
                   batch_size: int = 8) -> dict:
    """COCO metrics of ``model`` on ``records``, through the served preprocessing/postprocessing."""
    manifest = serving_manifest(arch=arch, input_size=input_size, preprocessing=preprocessing)
    class_map = dict(enumerate(classes))
    was_training = model.training
    model.eval()
    detections = {}
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        images = [decode_like_lambda(r.path.read_bytes(), manifest=manifest) for r in chunk]
        for record, dets in zip(chunk, torch_detect(model, images, arch=arch, manifest=manifest, class_map=class_map)):
            detections[record.image_id] = detections_as_dicts(dets)
    model.train(was_training)
    return coco_metrics(records, classes, detections)


# ---------------------------------------------------------------- plot


def plot_history(history: list[dict], path: str | os.PathLike) -> Path:
    """Loss (left axis) and mAP / mAP50 (right axis) per epoch as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    trained = [h for h in history if h.get("loss") is not None]
    ax.plot([h["epoch"] for h in trained], [h["loss"] for h in trained], "o-", color="tab:red", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    evaluated = [h for h in history if h.get("AP50") is not None]
    ax2.plot([h["epoch"] for h in evaluated], [h["AP50"] for h in evaluated], "s-", color="tab:blue", label="mAP50")
    ax2.plot([h["epoch"] for h in evaluated], [h["AP"] for h in evaluated], "^-", color="tab:green", label="mAP")
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("val mAP")
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="center right")
    ax.set_title("training")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


# ---------------------------------------------------------------- fit


def _progress(iterable, *, enabled: bool, **kwargs):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, **kwargs)


def fit(config: TrainConfig, *, dataset: Dataset | None = None, log: Callable[[str], None] = print) -> Path:
    """Train; returns the path of the last checkpoint (``out/checkpoint.pt``; ``out/best.pt`` = best mAP50)."""
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = dataset or load_dataset(config.data, classes=config.classes, images_dir=config.images_dir)
    for warning in dataset.report.warnings[:5]:
        log(f"warning: {warning}")
    classes = dataset.classes
    train_records, val_records = split_records(dataset.records, val_fraction=config.val_fraction, seed=config.seed)
    if config.max_train_images:
        train_records = train_records[:config.max_train_images]
    if not train_records:
        raise ModelError("no training images after the split; add images or lower --val-fraction")
    family = arch_spec(config.arch).family
    input_size = config.resolved_input_size()
    preprocessing = preprocessing_for(config.arch)

    resume_from = out / CHECKPOINT_NAME
    state = load_checkpoint(resume_from) if config.resume and resume_from.is_file() else None
    if config.resume and state is None:
        log(f"--resume: no {resume_from} yet, starting fresh")
    if state is not None:
        if [state["class_map"][i] for i in sorted(state["class_map"])] != classes or state["arch"] != config.arch:
            raise ModelError(f"--resume: {resume_from} was trained with {state['arch']} on classes "
                             f"{list(state['class_map'].values())}; use another --out")
        model = build_model(config.arch, num_classes=len(classes), model_kwargs=state["model_kwargs"], class_names=classes)
        # with EMA, "state_dict" is the average (what export and eval use); the raw weights go on training
        model.load_state_dict(state.get("train_state_dict") or state["state_dict"])
        source = f"resumed from {resume_from} (epoch {state['epoch']})"
    else:
        model, source = initial_model(config, classes)
    family_of(config.arch).check_input_size(model, height=input_size[0], width=input_size[1])
    model.train()
    log(f"{config.arch} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M params, weights: {source}); "
        f"{len(train_records)} train / {len(val_records)} val images, classes {classes}, input {input_size}")

    train_set = DetectionSamples(train_records, classes=classes, family=family, preprocessing=preprocessing,
                                 input_size=input_size, train=True, seed=config.seed,
                                 augment_config=AugmentConfig(crop=config.crop_prob))
    generator = torch.Generator().manual_seed(config.seed)
    loader = torch.utils.data.DataLoader(train_set, batch_size=config.batch_size, shuffle=True, collate_fn=collate,
                                         num_workers=config.workers, generator=generator, drop_last=len(train_set) > config.batch_size)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(config, params)
    total_steps = config.epochs * len(loader)
    warmup = min(config.warmup_iters, max(1, total_steps // 5))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total=total_steps, warmup=warmup))
    history: list[dict] = []
    start_epoch = 1
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = list(state.get("history", []))
        start_epoch = int(state["epoch"]) + 1
        generator.manual_seed(config.seed + start_epoch)
    ema = None
    if config.ema_decay:
        ema = ModelEMA(model, decay=config.ema_decay, updates=int(state.get("ema_updates", 0)) if state else 0)
        if state is not None and state.get("train_state_dict"):
            ema.model.load_state_dict(state["state_dict"])
    scored = ema.model if ema else model  # what is evaluated and exported
    best = max((h["AP50"] for h in history if h.get("AP50") is not None), default=-1.0)
    model_kwargs = model_kwargs_for(config.arch, model, config.model_kwargs)
    started = time.perf_counter() - (history[-1]["elapsed_s"] if history else 0.0)
    last = out / CHECKPOINT_NAME
    last_metrics = state.get("metrics") if state is not None else None
    if config.eval_initial and not history and val_records:
        initial = evaluate_model(scored, val_records, classes=classes, arch=config.arch, input_size=input_size,
                                 preprocessing=preprocessing, batch_size=config.batch_size)
        history.append({"epoch": 0, "loss": None, "AP": initial["AP"], "AP50": initial["AP50"],
                        "AP75": initial["AP75"], "elapsed_s": round(time.perf_counter() - started, 1)})
        log(f"before training: val mAP {initial['AP']:.3f}  mAP50 {initial['AP50']:.3f}")
    for epoch in range(start_epoch, config.epochs + 1):
        train_set.epoch = epoch
        generator.manual_seed(config.seed + epoch)
        model.train()
        losses, epoch_start = [], time.perf_counter()
        bar = _progress(loader, enabled=config.progress, desc=f"epoch {epoch}/{config.epochs}", leave=False)
        for batch, targets, _ in bar:
            loss, _parts = compute_loss(model, batch, targets, family=family)
            if not torch.isfinite(loss):
                raise ModelError(f"loss became {float(loss)} at epoch {epoch}; lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            optimizer.step()
            scheduler.step()
            if ema:
                ema.update(model)
            losses.append(float(loss.detach()))
            if config.progress:
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        entry = {"epoch": epoch, "loss": float(np.mean(losses)), "lr": scheduler.get_last_lr()[0],
                 "train_s": round(time.perf_counter() - epoch_start, 1), "AP": None, "AP50": None}
        metrics = None
        if val_records and (epoch % config.eval_every == 0 or epoch == config.epochs):
            metrics = evaluate_model(scored, val_records, classes=classes, arch=config.arch, input_size=input_size,
                                     preprocessing=preprocessing, batch_size=config.batch_size)
            entry.update(AP=metrics["AP"], AP50=metrics["AP50"], AP75=metrics["AP75"])
            last_metrics = metrics
        entry["elapsed_s"] = round(time.perf_counter() - started, 1)
        history.append(entry)
        ap = f"  val mAP {entry['AP']:.3f}  mAP50 {entry['AP50']:.3f}" if entry["AP50"] is not None else ""
        log(f"epoch {epoch}/{config.epochs}  loss {entry['loss']:.4f}{ap}  ({entry['train_s']} s train, "
            f"{entry['elapsed_s']} s total)")
        payload = {
            "arch": config.arch, "num_classes": len(classes), "class_map": dict(enumerate(classes)),
            "input_size": list(input_size), "preprocessing": preprocessing,
            "output_format": output_format_for(config.arch), "model_kwargs": model_kwargs,
            "state_dict": scored.state_dict(), "epoch": epoch, "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "history": history, "recipe": recipe(config),
            "metrics": metrics, "weights_source": source, "versions": _versions(),
            "split": {"seed": config.seed, "val_fraction": config.val_fraction,
                      "val_images": [str(r.path) for r in val_records]},
        }
        if ema:
            payload.update(train_state_dict=model.state_dict(), ema_updates=ema.updates)
        payload = plain(payload, keep=("state_dict", "train_state_dict", "optimizer"))
        save_checkpoint(last, payload)
        if entry["AP50"] is not None and entry["AP50"] > best:
            best = entry["AP50"]
            save_checkpoint(out / BEST_NAME, payload)
        plot_history(history, out / PLOT_NAME)
        (out / "history.json").write_text(json.dumps(history, indent=1))
    if last_metrics:
        log(format_table(last_metrics, title=f"val metrics after epoch {history[-1]['epoch']}"))
    return last


def plain(value, *, keep: tuple[str, ...] = ()):
    """Only types ``torch.load(weights_only=True)`` accepts (export loads checkpoints that way): numbers, strings,
    lists, dicts, tensors; anything else (numpy scalars, version objects, paths) becomes a number or a string."""
    if isinstance(value, dict):
        return {k: (v if k in keep else plain(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _versions() -> dict:
    versions = {"torch": str(torch.__version__), "torchvision": str(torchvision.__version__)}
    try:
        import transformers

        versions["transformers"] = str(transformers.__version__)
    except ImportError:  # optional for RetinaNet-only installs
        pass
    return versions
