"""``--weights default`` keeps the real loading code (hub ids, torchvision weight enums); without network it
fails fast with one line saying what to pass instead."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("arch, source", [
    ("dfine-s", "ustc-community/dfine-small-coco"),
    ("retinanet_resnet50_fpn_v2", "RetinaNet_ResNet50_FPN_V2_Weights.COCO_V1"),
])
def test_published_weights_unreachable(arch, source, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TORCH_HOME=str(tmp_path / "torch"),
               https_proxy="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")  # a closed port: no network
    result = subprocess.run([sys.executable, "-m", "export", "--arch", arch, "--out", str(tmp_path / "b"), "--quiet"],
                            cwd=REPO, capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("export failed: cannot ") and source in line and "--weights none" in line
