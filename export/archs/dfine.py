"""D-FINE through Hugging Face transformers (``DFineForObjectDetection``).

Weights: ``default`` = the published COCO weights ``ustc-community/dfine-<size>-coco``; any other hub id
(``ustc-community/dfine-small-obj365``...); a directory written by ``save_pretrained``; a checkpoint from
``train/``; ``none`` = random init from the published size recipe (built offline, no download).

Served as D-FINE is evaluated: stretch to the input size (640 by default), antialiased bilinear, x/255,
no mean/std; outputs ``logits`` (per query and class) and ``pred_boxes`` (normalized cxcywh), decoded with
sigmoid + top-k over queries x classes (Hugging Face ``post_process_object_detection``).

Example:
    >>> config = size_config("n", num_labels=3)
    >>> config.d_model, config.decoder_layers
    (128, 3)
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from ..classes import coco80
from ..errors import ExportError

SIZES = {"n": "nano", "s": "small", "m": "medium", "l": "large", "x": "xlarge"}
DEFAULT_INPUT_SIZE = (640, 640)

PREPROCESSING = {
    "resize": "stretch", "interpolation": "bilinear", "antialias": True, "pad_position": "bottom_right",
    "pad_value": 0.0, "scale": 1.0 / 255.0, "mean": None, "std": None, "channel_order": "RGB",
}

# Per-size differences from DFineConfig's defaults (the published model recipes: HGNetV2 B0/B0/B2/B4/B5).
_B0_BACKBONE = dict(
    stem_channels=[3, 16, 16], stage_in_channels=[16, 64, 256, 512], stage_mid_channels=[16, 32, 64, 128],
    stage_out_channels=[64, 256, 512, 1024], stage_num_blocks=[1, 1, 2, 1], stage_numb_of_layers=[3, 3, 3, 3],
    use_learnable_affine_block=True,
)
_RECIPES = {
    "n": dict(
        backbone=dict(_B0_BACKBONE, out_features=["stage3", "stage4"], out_indices=[3, 4]),
        model=dict(num_feature_levels=2, encoder_in_channels=[512, 1024], feat_strides=[16, 32],
                   encoder_hidden_dim=128, encode_proj_layers=[1], encoder_ffn_dim=512, d_model=128,
                   decoder_in_channels=[128, 128], decoder_ffn_dim=512, decoder_n_points=[6, 6],
                   decoder_layers=3, depth_mult=0.5, hidden_expansion=0.34),
    ),
    "s": dict(
        backbone=dict(_B0_BACKBONE),
        model=dict(encoder_in_channels=[256, 512, 1024], decoder_n_points=[3, 6, 3], decoder_layers=3,
                   depth_mult=0.34, hidden_expansion=0.5),
    ),
    "m": dict(
        backbone=dict(stem_channels=[3, 24, 32], stage_in_channels=[32, 96, 384, 768],
                      stage_mid_channels=[32, 64, 128, 256], stage_out_channels=[96, 384, 768, 1536],
                      stage_num_blocks=[1, 1, 3, 1], stage_numb_of_layers=[4, 4, 4, 4],
                      use_learnable_affine_block=True),
        model=dict(encoder_in_channels=[384, 768, 1536], decoder_n_points=[3, 6, 3], decoder_layers=4,
                   depth_mult=0.67),
    ),
    "l": dict(
        backbone=dict(),  # DFineConfig's default backbone is the B4 of D-FINE-L
        model=dict(encoder_in_channels=[512, 1024, 2048], decoder_n_points=[3, 6, 3], decoder_layers=6),
    ),
    "x": dict(
        backbone=dict(stem_channels=[3, 32, 64], stage_in_channels=[64, 128, 512, 1024],
                      stage_mid_channels=[64, 128, 256, 512], stage_out_channels=[128, 512, 1024, 2048],
                      stage_num_blocks=[1, 2, 5, 2], stage_numb_of_layers=[6, 6, 6, 6]),
        model=dict(encoder_in_channels=[512, 1024, 2048], encoder_hidden_dim=384, encoder_ffn_dim=2048,
                   decoder_in_channels=[384, 384, 384], decoder_n_points=[3, 6, 3], decoder_layers=6),
    ),
}


def hub_id(size: str, dataset: str = "coco") -> str:
    """``hub_id("s")`` -> ``'ustc-community/dfine-small-coco'``."""
    return f"ustc-community/dfine-{SIZES[size]}-{dataset}"


def size_config(size: str, *, num_labels: int):
    """A ``DFineConfig`` with the architecture of D-FINE-``size`` (random weights, no download)."""
    from transformers import DFineConfig

    recipe = _RECIPES[size]
    config = DFineConfig(num_labels=num_labels, **recipe["model"])
    backbone = config.backbone_config
    for key, value in recipe["backbone"].items():
        setattr(backbone, key, value)
    # the backbone reports its feature channels from hidden_sizes: keep them equal to the stage outputs
    backbone.hidden_sizes = list(backbone.stage_out_channels)
    backbone.embedding_size = backbone.stem_channels[-1]
    return config


def reinit_for_parity(model: nn.Module, *, seed: int = 0, input_size: tuple[int, int] = DEFAULT_INPUT_SIZE,
                      logit_mean: float = -4.0, logit_std: float = 1.0) -> dict:
    """Give a randomly initialised D-FINE activations worth comparing.

    Hugging Face's init leaves features near zero, all class scores at the prior and every box equal to its
    anchor: top-k then picks among exact ties and ONNX Runtime and eager legitimately choose different
    queries. Kaiming-normal convolutions (BatchNorm is identity at init) and a perturbed box-distribution
    head spread features and boxes; the class heads are then calibrated on one noise image so the logits
    have ``logit_mean`` / ``logit_std``: few confident detections, distinct scores.
    """
    generator = torch.Generator().manual_seed(seed)
    decoder = model.model.decoder
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
        for layer in decoder.bbox_embed:
            nn.init.normal_(layer.layers[-1].weight, std=0.2, generator=generator)
        for layer in decoder.class_embed:
            nn.init.normal_(layer.weight, std=1.0 / math.sqrt(layer.in_features), generator=generator)
            nn.init.zeros_(layer.bias)
        height, width = input_size
        logits = model.eval()(pixel_values=torch.rand(1, 3, height, width, generator=generator)).logits
        gain = logit_std / max(float(logits.std()), 1e-6)
        shift = logit_mean - gain * float(logits.mean())
        for layer in decoder.class_embed:
            layer.weight.mul_(gain)
            layer.bias.fill_(shift)
    return {"random_init": f"kaiming-normal convolutions, box head std 0.2, class logits calibrated to "
                           f"mean {logit_mean} std {logit_std}", "seed": seed}


class DFineGraph(nn.Module):
    """The exported graph: ``pixel_values`` -> (``logits``, ``pred_boxes``); no processor inside."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor):
        out = self.model(pixel_values=pixel_values)
        return out.logits, out.pred_boxes


def _from_pretrained(source: str):
    from transformers import DFineForObjectDetection

    try:
        return DFineForObjectDetection.from_pretrained(source)
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportError(f"cannot load D-FINE weights {source!r} (the Hugging Face hub needs network access): "
                          f"{first}; pass --weights none, a save_pretrained directory or a train/ checkpoint") from None


def _class_map_from_config(config) -> dict[int, str]:
    return {int(k): str(v) for k, v in sorted(config.id2label.items(), key=lambda kv: int(kv[0]))}


def prepare(arch: str, *, weights: str = "default", classes: dict[int, str] | None = None,
            input_size: tuple[int, int] | None = None, seed: int = 0, checkpoint=None):
    """Build the D-FINE graph wrapper and its manifest blocks (see module docstring)."""
    from transformers import DFineConfig, DFineForObjectDetection

    from . import PreparedModel

    size = arch.split("-", 1)[1]
    notes: dict = {}
    preprocessing = dict(PREPROCESSING)
    if checkpoint is not None:
        class_map = checkpoint.class_map or classes
        if not class_map:
            raise ExportError(f"checkpoint {checkpoint.path} has no class map: pass --classes")
        config_dict = checkpoint.model_kwargs.get("config") or checkpoint.config
        config = (DFineConfig.from_dict(config_dict) if config_dict
                  else size_config(size, num_labels=len(class_map)))
        config.num_labels = len(class_map)
        model = DFineForObjectDetection(config)
        checkpoint.load_into(model)
        preprocessing.update(checkpoint.preprocessing or {})
        input_size = input_size or checkpoint.input_size
        resolved = str(checkpoint.path)
    elif weights == "none":
        class_map = dict(classes) if classes else coco80()
        if input_size:
            _check_input_size(size_config(size, num_labels=1), height=input_size[0], width=input_size[1])
        _check_contiguous(class_map)
        torch.manual_seed(seed)
        model = DFineForObjectDetection(size_config(size, num_labels=len(class_map)))
        notes = reinit_for_parity(model, seed=seed, input_size=input_size or DEFAULT_INPUT_SIZE)
        resolved = "none"
    else:
        source = hub_id(size) if weights == "default" else weights
        model = _from_pretrained(source)
        class_map = _class_map_from_config(model.config)
        if classes and len(classes) != len(class_map):
            raise ExportError(f"--classes has {len(classes)} names but {source} predicts {len(class_map)} classes")
        class_map = dict(classes) if classes else class_map
        resolved = source if not Path(source).exists() else str(Path(source).resolve())
    model.eval()
    height, width = input_size or DEFAULT_INPUT_SIZE
    _check_input_size(model.config, height=height, width=width)
    return PreparedModel(
        arch=arch, module=DFineGraph(model).eval(), input_name="pixel_values",
        output_names=("logits", "pred_boxes"), input_size=(height, width), preprocessing=preprocessing,
        output={"format": "detr", "logits": "logits", "boxes": "pred_boxes", "top_k": int(model.config.num_queries)},
        labels={"offset": min(class_map), "background_id": None}, class_map=class_map, weights=resolved,
        score_threshold=0.5, max_detections=100, notes=notes,
    )


def _check_contiguous(class_map: dict[int, str]) -> None:
    ids = sorted(class_map)
    if ids != list(range(ids[0], ids[0] + len(ids))):
        raise ExportError(f"D-FINE predicts contiguous class indices; --classes ids {ids[:5]}... have gaps: "
                          "renumber them 0..N-1")


def _check_input_size(config, *, height: int, width: int) -> None:
    """D-FINE picks ``num_queries`` encoder positions: the feature maps must have at least that many."""
    positions = sum(-(-height // s) * -(-width // s) for s in config.feat_strides)
    if positions < config.num_queries:
        raise ExportError(f"--input-size {height}x{width} is too small for D-FINE: its feature maps have "
                          f"{positions} positions, fewer than its {config.num_queries} queries; use at least 320")
