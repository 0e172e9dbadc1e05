"""The serve/deploy path imports no PyTorch: every module it runs loads in a fresh interpreter without torch,
torchvision or transformers being imported (the deploy environment, .venv-deploy, does not have them;
tests/e2e/test_quick_start.py runs ./deploy.sh there)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DEPLOY_PACKAGES = ("deployer", "localaws", "lambda_build", "lambda_python", "batch", "detection")
DEPLOY_MODULES = ("handler", "train.evaluate", "train.demo_data", "lambda_build.sagemaker", "export.upload")
HEAVY = ("torch", "torchvision", "transformers")

PROBE = """
import importlib, json, pkgutil, sys
names = list(sys.argv[2].split(","))
for package in sys.argv[1].split(","):
    module = importlib.import_module(package)
    names += [info.name for info in pkgutil.walk_packages(module.__path__, package + ".")
              if not info.name.endswith(".__main__")]  # running a CLI is not importing it
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "heavy": sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[3].split(",")))}))
"""


def test_deploy_path_modules_import_no_torch():
    result = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(DEPLOY_PACKAGES), ",".join(DEPLOY_MODULES), ",".join(HEAVY)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": f"{REPO}:{REPO / 'lambda_src'}", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert "deployer.cli" in report["modules"] and "localaws.server" in report["modules"]
    assert report["heavy"] == [], f"the deploy path imported {report['heavy']}"
