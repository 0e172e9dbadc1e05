"""The demo detector shipped in models/demo: made by the recorded recipe, and as good as that recipe promises.

It is scored the way a user would score it without PyTorch: ``python -m train.evaluate --bundle`` run by the
deploy environment's interpreter (.venv-deploy, which has no torch), through the Lambda core, on the val split of
the generated demo dataset (the split training held out).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from detection.bundle import read_bundle
from train.demo import DEMO_DATASET, DEMO_RECIPE, dataset_key_params, ensure_demo_dataset

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "models" / "demo"
DEPLOY_PYTHON = REPO / ".venv-deploy" / "bin" / "python"
REPRODUCE = "python -m deployer.demo --out models/demo"


def test_manifest_records_the_demo_recipe_and_data():
    provenance = read_bundle(SHIPPED).manifest.provenance
    trained = provenance["training"]["recipe"]
    differs = {key: (trained.get(key), value) for key, value in DEMO_RECIPE.items() if trained.get(key) != value}
    assert not differs, f"models/demo was trained with another recipe (shipped, DEMO_RECIPE): {differs}; run {REPRODUCE}"
    assert provenance["training_data"] == dataset_key_params(DEMO_DATASET), f"data differs; run {REPRODUCE}"
    assert provenance["training"]["epoch"] == DEMO_RECIPE["epochs"]


@pytest.mark.slow
def test_scores_at_least_0_9_map50_through_the_lambda_core_without_torch(tmp_path):
    if not DEPLOY_PYTHON.exists():
        pytest.fail(f"{DEPLOY_PYTHON} is missing: run ./setup.sh")
    no_torch = subprocess.run([str(DEPLOY_PYTHON), "-c", "import torch"], capture_output=True, text=True)
    assert "No module named 'torch'" in no_torch.stderr, "the deploy environment must not have PyTorch"
    data = ensure_demo_dataset()  # generated once (about a minute on 2 cores), cached like training's
    report_path = tmp_path / "report.json"
    result = subprocess.run(
        [str(DEPLOY_PYTHON), "-m", "train.evaluate", "--bundle", str(SHIPPED), "--data", str(data),
         "--seed", str(DEMO_RECIPE["seed"]), "--val-fraction", str(DEMO_RECIPE["val_fraction"]),
         "--report", str(report_path), "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(report_path.read_text())
    assert report["source"]["kind"] == "bundle" and report["split"] == "val"
    assert report["images"] == round(DEMO_DATASET["num_images"] * DEMO_RECIPE["val_fraction"])
    assert report["metrics"]["AP50"] >= 0.9, result.stdout
