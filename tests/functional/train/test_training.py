"""A CI-sized training run through the real CLI; resume; evaluation of checkpoint vs exported bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from train.checkpoint import load_checkpoint, model_from_checkpoint
from train.data import DetectionSamples, collate
from train.datasets import load_voc, split_records
from train.demo_data import generate_dataset
from train.engine import compute_loss
from zoo import build_model, preprocessing_for

ARCH = "retinanet_mobilenet_v3_fpn"
INPUT = 96
KWARGS = {"fpn_channels": 32}
pytestmark = pytest.mark.slow


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "train", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny-demo")
    generate_dataset(root, num_images=30, seed=11, min_size=96, max_size=128, max_objects=3)
    return root


@pytest.fixture(scope="module")
def tiny_run(tiny_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    proc = run_cli("fit", "--data", str(tiny_data), "--arch", ARCH, "--input-size", str(INPUT), "--epochs", "1",
                   "--batch-size", "8", "--lr", "3e-3", "--model-kwargs", json.dumps(KWARGS), "--out", str(out),
                   "--no-progress", "--threads", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run_cli("fit", "--data", str(tiny_data), "--arch", ARCH, "--input-size", str(INPUT), "--epochs", "3",
                   "--batch-size", "8", "--lr", "3e-3", "--model-kwargs", json.dumps(KWARGS), "--out", str(out),
                   "--no-progress", "--threads", "2", "--resume")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resumed from" in proc.stdout
    return out


def fixed_batch_loss(model, data: Path) -> float:
    dataset = load_voc(data)
    train, _ = split_records(dataset.records, val_fraction=0.2, seed=0)
    samples = DetectionSamples(train[:8], classes=dataset.classes, family="retinanet",
                               preprocessing=preprocessing_for(ARCH), input_size=(INPUT, INPUT), train=False)
    batch, targets, _ = collate([samples[i] for i in range(len(samples))])
    model.train()
    with torch.no_grad():
        loss, _ = compute_loss(model, batch, targets, family="retinanet")
    return float(loss)


def test_training_lowers_the_loss(tiny_run, tiny_data):
    checkpoint = load_checkpoint(tiny_run / "checkpoint.pt")
    torch.manual_seed(0)  # the run's seed: the same initial weights
    initial = build_model(ARCH, num_classes=checkpoint["num_classes"], model_kwargs=checkpoint["model_kwargs"])
    trained = model_from_checkpoint(checkpoint)
    before, after = fixed_batch_loss(initial, tiny_data), fixed_batch_loss(trained, tiny_data)
    assert after < 0.8 * before, (before, after)
    history = checkpoint["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["loss"] < history[0]["loss"]


def test_checkpoint_format_is_what_export_reads(tiny_run):
    data = torch.load(tiny_run / "checkpoint.pt", map_location="cpu", weights_only=True)  # plain types only
    assert data["arch"] == ARCH and data["num_classes"] == 4 and data["input_size"] == [INPUT, INPUT]
    assert data["class_map"] == {0: "cereal_box", 1: "milk_carton", 2: "orange", 3: "soda_can"}
    assert data["preprocessing"] == preprocessing_for(ARCH)
    assert data["output_format"] == "boxes_scores_labels"
    assert data["model_kwargs"]["fpn_channels"] == 32
    assert {"optimizer", "scheduler", "history", "epoch"} <= set(data)
    assert (tiny_run / "training.png").stat().st_size > 1000
    assert (tiny_run / "best.pt").is_file() or all(h["AP50"] <= 0 for h in data["history"])


def test_evaluate_checkpoint_cli_writes_report(tiny_run, tiny_data, tmp_path):
    report_path = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "train.evaluate", "--checkpoint", str(tiny_run / "checkpoint.pt"),
                           "--data", str(tiny_data), "--report", str(report_path), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(report_path.read_text())
    assert report["images"] == 6 and report["source"]["kind"] == "checkpoint"
    assert set(report["metrics"]["per_class"]) == {"cereal_box", "milk_carton", "orange", "soda_can"}
    assert "AP50" in proc.stdout and "soda_can" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["fit", "--data", "/nonexistent/dir"], "give a VOC folder"),
    (["fit", "--data", "{data}", "--weights", "/nonexistent.pt"], "not none, default, an existing file"),
    # every D-FINE size now builds offline (zoo.dfine); what stays refused is an input its queries cannot fill
    (["fit", "--data", "{data}", "--arch", "dfine-s", "--weights", "none", "--input-size", "64"], "does not fit dfine"),
    (["evaluate", "--checkpoint", "/nonexistent.pt", "--data", "{data}"], "does not exist"),
])
def test_cli_errors_are_one_clear_line(tiny_data, tmp_path, args, message):
    proc = run_cli(*[a.replace("{data}", str(tiny_data)) for a in args], "--out", str(tmp_path)) \
        if args[0] == "fit" else run_cli(*[a.replace("{data}", str(tiny_data)) for a in args])
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def tiny_bundle(tiny_run, tmp_path_factory) -> Path:
    """``export --weights CHECKPOINT`` with no other arguments."""
    from export.api import export_bundle  # torch side of the suite: export is always importable in .venv

    out = tmp_path_factory.mktemp("bundle")
    bundle = export_bundle("auto", weights=str(tiny_run / "checkpoint.pt"), out_dir=out)
    assert bundle.manifest.input.height == INPUT
    assert bundle.manifest.preprocessing.resize == "letterbox"
    return out


EVAL = {"split": "all", "threshold": 0.01, "progress": False}


@pytest.fixture(scope="module")
def bundle_report(tiny_bundle, tiny_data):
    from train.evaluate import evaluate

    return evaluate(bundle=str(tiny_bundle), data=str(tiny_data), **EVAL)


def test_exported_bundle_scores_like_the_checkpoint(tiny_run, tiny_data, bundle_report):
    """The Lambda core running the bundle and PyTorch running the checkpoint give the same AP."""
    from train.evaluate import evaluate

    torch_report = evaluate(checkpoint=str(tiny_run / "checkpoint.pt"), data=str(tiny_data), **EVAL)
    assert torch_report["metrics"]["AR100"] > 0  # the comparison is not between two empty sets
    for key in ("AP", "AP50", "AP75", "AR100"):
        assert abs(torch_report["metrics"][key] - bundle_report["metrics"][key]) <= 0.005, key


def test_local_endpoint_scores_like_the_bundle(tiny_bundle, tiny_data, bundle_report, tmp_path):
    """POST /detect on a local API front + the built Lambda package in the local runtime, with concurrency."""
    from lambda_build import build_package
    from localaws.lambda_runtime import LocalFunction
    from localaws.start_api import LocalHttpApi
    from train.evaluate import evaluate

    # same out_dir as tests/functional/lambda_package: one cached build for the whole suite
    package = build_package(arch="x86_64", out_dir=Path(__file__).resolve().parents[3] / ".cache" / "lambda_build"
                            / "test-dist").zip_path
    factory = lambda: LocalFunction(package, env={"MODEL_URI": str(tiny_bundle)},  # noqa: E731
                                    log_path=tmp_path / "fn.log", timeout_s=60)
    with LocalHttpApi(factory, max_environments=2) as api:
        report = evaluate(endpoint=api.url, data=str(tiny_data), concurrency=2, **EVAL)
    assert report["images"] == bundle_report["images"] and report["source"]["latency_ms"]["p50"] > 0
    for key in ("AP", "AP50", "AP75", "AR100"):
        assert abs(report["metrics"][key] - bundle_report["metrics"][key]) <= 0.005, key


def test_sgd_with_weight_average_resumes_and_exports_the_average(tiny_data, tmp_path):
    common = ["--data", str(tiny_data), "--arch", "retinanet_tiny_fpn", "--input-size", str(INPUT),
              "--batch-size", "8", "--optimizer", "sgd", "--lr", "0.02", "--ema", "0.99", "--crop-prob", "0",
              "--model-kwargs", json.dumps({"fpn_channels": 16, "head_norm_groups": 8}), "--out", str(tmp_path),
              "--no-progress", "--threads", "2"]
    assert run_cli("fit", *common, "--epochs", "1").returncode == 0
    proc = run_cli("fit", *common, "--epochs", "2", "--resume")
    assert proc.returncode == 0, proc.stderr[-2000:]
    checkpoint = load_checkpoint(tmp_path / "checkpoint.pt")
    raw = torch.load(tmp_path / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert [h["epoch"] for h in checkpoint["history"]] == [1, 2]
    assert raw["recipe"]["optimizer"] == "sgd" and raw["recipe"]["ema_decay"] == 0.99
    assert raw["ema_updates"] == 2 * 3  # 24 training images, batch 8: 3 steps per epoch, counted across the resume
    averaged, trained = raw["state_dict"], raw["train_state_dict"]
    assert averaged.keys() == trained.keys()
    assert any(not torch.equal(averaged[k], trained[k]) for k in averaged if averaged[k].is_floating_point())
    model = model_from_checkpoint(checkpoint)  # what export loads: the average
    assert all(torch.equal(v, averaged[k]) for k, v in model.state_dict().items())
