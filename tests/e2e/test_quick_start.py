"""The quick start as a new user runs it: ``./deploy.sh --local`` with no model given, in the deploy environment.

deploy.sh runs the deployer with .venv-deploy, which has no PyTorch, so a deploy path that imports torch anywhere
(build, lint, upload, deploy, first detection) fails here. The default model is the demo detector shipped in
models/demo; the first detection must be worth looking at (several objects, a table, an annotated image) and the
``curl`` and ``aws lambda invoke`` lines it prints must work when pasted into a shell.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from detection.bundle import read_bundle

REPO = Path(__file__).resolve().parents[2]
DEPLOY_PYTHON = REPO / ".venv-deploy" / "bin" / "python"
STACK = "quick-start"
pytestmark = pytest.mark.slow


def _env(state_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env["LOCALAWS_HOME"] = str(state_dir)
    return env


@pytest.fixture(scope="module")
def quick_start(tmp_path_factory):
    if not DEPLOY_PYTHON.exists():
        pytest.fail(f"{DEPLOY_PYTHON} is missing: run ./setup.sh")
    state_dir = tmp_path_factory.mktemp("localaws")
    env = _env(state_dir)
    result = subprocess.run([str(REPO / "deploy.sh"), "--local", "--stack-name", STACK], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    yield {"stdout": result.stdout, "env": env}
    down = subprocess.run([str(REPO / "deploy.sh"), "--local", "--delete", "--stack-name", STACK], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr


def _table(stdout: str) -> list[tuple[str, float]]:
    rows = re.findall(r"^ {4}(\w+) +(\d\.\d\d)  \[[\d, ]+\]$", stdout, flags=re.MULTILINE)
    return [(label, float(score)) for label, score in rows]


def _try_line(stdout: str, needle: str) -> str:
    lines = [line.strip() for line in stdout.splitlines() if needle in line]
    assert len(lines) == 1, f"expected one printed line with `{needle}`:\n{stdout}"
    return lines[0]


def _found(body: dict) -> list[tuple[str, float]]:
    return sorted((d["label"], round(d["score"], 2)) for d in body["detections"])


def test_the_deploy_environment_has_no_torch():
    result = subprocess.run([str(DEPLOY_PYTHON), "-c", "import torch"], capture_output=True, text=True)
    assert "No module named 'torch'" in result.stderr


def test_deploys_the_shipped_demo_detector_and_finds_several_objects(quick_start):
    stdout = quick_start["stdout"]
    assert "the demo detector shipped in models/demo" in stdout
    assert f"model: {read_bundle(REPO / 'models' / 'demo').manifest.name};" in stdout
    rows = _table(stdout)
    assert len(rows) >= 3, stdout
    assert min(score for _, score in rows) >= 0.5
    assert len({label for label, _ in rows}) >= 2, "the demo scene should show more than one class"


def test_saves_the_annotated_scene_and_prints_its_path(quick_start):
    stdout = quick_start["stdout"]
    annotated = Path(re.search(r"annotated image: (\S+)", stdout).group(1))
    scene = Path(re.search(r"POST \S+ with (\S+)", stdout).group(1))
    with Image.open(annotated) as drawn, Image.open(scene) as original:
        assert drawn.format == "JPEG" and drawn.size == original.size
        difference = sum(abs(a - b) for a, b in zip(drawn.convert("L").tobytes(), original.convert("L").tobytes()))
    assert difference > 0, "boxes should be drawn on the annotated image"


def test_printed_curl_line_works(quick_start):
    stdout = quick_start["stdout"]
    reply = subprocess.run(["bash", "-c", _try_line(stdout, "curl -s ")], capture_output=True, text=True, timeout=120,
                           env=quick_start["env"])
    assert reply.returncode == 0, reply.stderr
    body = json.loads(reply.stdout)
    assert _found(body) == sorted(_table(stdout))


def test_printed_aws_lambda_invoke_line_works(quick_start, tmp_path):
    if shutil.which("aws") is None:
        pytest.skip("the aws CLI is not installed here, so the printed `aws lambda invoke` line cannot be run")
    stdout = quick_start["stdout"]
    script = f"{_try_line(stdout, 'localaws env')}\n{_try_line(stdout, 'aws lambda invoke ')}"
    reply = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                           env=quick_start["env"])
    assert reply.returncode == 0, reply.stderr
    body = json.loads((tmp_path / "out.json").read_text())
    assert _found(body) == sorted(_table(stdout))
