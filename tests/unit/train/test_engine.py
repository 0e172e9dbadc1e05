"""Optimizer choice, the weight average (EMA), the schedule and the tiny RetinaNet trunk."""

from __future__ import annotations

import math

import pytest
import torch

from train.engine import ModelEMA, TrainConfig, lr_factor, make_optimizer, recipe
from zoo import ModelError, build_model
from zoo.retinanet import TinyTrunk


@pytest.mark.parametrize("optimizer, lr, expected_type, expected_lr", [
    ("adamw", None, torch.optim.AdamW, 1e-3),
    ("adamw", 5e-4, torch.optim.AdamW, 5e-4),
    ("sgd", None, torch.optim.SGD, 0.02),
    ("sgd", 0.01, torch.optim.SGD, 0.01),
])
def test_make_optimizer(optimizer, lr, expected_type, expected_lr):
    config = TrainConfig(data="unused", arch="retinanet_tiny_fpn", optimizer=optimizer, lr=lr)
    made = make_optimizer(config, torch.nn.Linear(2, 2).parameters())
    assert type(made) is expected_type
    assert made.param_groups[0]["lr"] == pytest.approx(expected_lr)
    if optimizer == "sgd":
        assert made.param_groups[0]["momentum"] == 0.9 and made.param_groups[0]["nesterov"]


def test_unknown_optimizer_is_a_clear_error():
    config = TrainConfig(data="unused", optimizer="lion")
    with pytest.raises(ModelError, match="--optimizer 'lion'"):
        make_optimizer(config, torch.nn.Linear(2, 2).parameters())


def test_recipe_records_the_knobs_that_change_the_weights():
    config = TrainConfig(data="d", out="o", optimizer="sgd", ema_decay=0.998, crop_prob=0.0)
    data = recipe(config)
    assert (data["optimizer"], data["ema_decay"], data["crop_prob"]) == ("sgd", 0.998, 0.0)
    assert "data" not in data and "out" not in data


def test_ema_follows_the_weights_with_a_ramped_decay():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = ModelEMA(model, decay=0.9, ramp=1)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)
    decay = 0.9 * (1 - math.exp(-1))
    assert ema.model.weight.item() == pytest.approx(1 - decay)
    assert not ema.model.weight.requires_grad and not ema.model.training


def test_ema_copies_integer_buffers_and_averages_batchnorm_statistics():
    model = torch.nn.BatchNorm1d(2)
    ema = ModelEMA(model, decay=0.5, ramp=10**9)  # decay ~0: the average equals the latest weights
    model.train()
    model(torch.tensor([[1.0, 2.0], [3.0, 6.0]]))
    ema.update(model)
    assert torch.equal(ema.model.num_batches_tracked, model.num_batches_tracked)
    assert torch.allclose(ema.model.running_mean, model.running_mean, atol=1e-6)


@pytest.mark.parametrize("step, expected", [(0, 0.1), (9, 1.0), (10, 1.0), (55, 0.525), (100, 0.05), (500, 0.05)])
def test_lr_factor_table(step, expected):
    assert lr_factor(step, total=100, warmup=10) == pytest.approx(expected, abs=1e-3)


def test_tiny_trunk_strides_and_widths():
    assert TinyTrunk().out_channels_list == [32, 64, 128]  # default widths 8..128
    trunk = TinyTrunk((16, 32, 64, 128, 256))
    out = torch.zeros(1, 3, 64, 96)
    shapes = []
    for name, stage in trunk.named_children():
        out = stage(out)
        shapes.append((name, tuple(out.shape[1:])))
    assert shapes == [("c2", (32, 16, 24)), ("c3", (64, 8, 12)), ("c4", (128, 4, 6)), ("c5", (256, 2, 3))]
    assert trunk.out_channels_list == [64, 128, 256]


def test_tiny_retinanet_detects_in_input_pixels_and_has_no_published_weights():
    torch.manual_seed(0)
    model = build_model("retinanet_tiny_fpn", num_classes=3, model_kwargs={"fpn_channels": 32}).eval()
    with torch.no_grad():
        (detections,) = model(torch.zeros(1, 3, 96, 128))
    assert set(detections) == {"boxes", "scores", "labels"}
    with pytest.raises(ModelError, match="no published weights"):
        build_model("retinanet_tiny_fpn", num_classes=3, weights="default")
    with pytest.raises(ModelError, match="trunk_widths is for retinanet_tiny_fpn"):
        build_model("retinanet_resnet18_fpn", num_classes=3, model_kwargs={"trunk_widths": [8, 16, 32, 64, 128]})
