"""The arm64 zip executed: built for python3.13 aarch64, run by the arm64 Lambda Python under qemu-aarch64 with the
shipped demo detector on 3 generated scenes — the same detections as the x86_64 zip (scores within 1e-4, boxes
within 0.5 px) — and its byte code taken as shipped by the arm64 interpreter."""

from __future__ import annotations

import base64
import io
import json
import shutil

import numpy as np
import pytest

from lambda_build import build_package
from lambda_python import ensure_interpreter
from localaws.lambda_runtime import LocalFunction
from tests.support.lambda_package import REPO_ROOT, TEST_DIST, detections
from train.demo_data import render_scene

DEMO_BUNDLE = REPO_ROOT / "models" / "demo"
SCENES = 3


def scene_events() -> list[bytes]:
    events = []
    for seed in range(SCENES):
        image, _ = render_scene(np.random.default_rng(1000 + seed), width=640, height=480)
        jpeg = io.BytesIO()
        image.save(jpeg, format="JPEG", quality=90)
        events.append(json.dumps({"image": base64.b64encode(jpeg.getvalue()).decode()}).encode())
    return events


@pytest.mark.slow
def test_the_arm64_zip_gives_the_x86_64_zips_detections(aws_package, tmp_path):
    if not (DEMO_BUNDLE / "model.json").is_file():
        pytest.skip(f"{DEMO_BUNDLE} (the shipped demo detector) is not in this checkout")
    arm64 = build_package(arch="arm64", out_dir=TEST_DIST)
    env = {"MODEL_URI": str(DEMO_BUNDLE)}
    events = scene_events()
    answers = {}
    for arch, package in (("x86_64", aws_package), ("arm64", arm64)):
        with LocalFunction(package.zip_path, arch=arch, env=env, timeout_s=120, init_timeout_s=120,
                           log_path=tmp_path / f"{arch}.log") as function:
            results = [function.invoke(event) for event in events]
        assert all(r.function_error is None for r in results), [r.payload[:300] for r in results]
        answers[arch] = [detections(r.json()) for r in results]
    assert sum(len(found) for found in answers["x86_64"]) >= SCENES  # the demo detector finds objects
    score_gap = max((abs(a[2] - b[2]) for x86, arm in zip(answers["x86_64"], answers["arm64"])
                     for a, b in zip(x86, arm)), default=0.0)
    box_gap = max((float(np.abs(np.subtract(a[3], b[3])).max()) for x86, arm in
                   zip(answers["x86_64"], answers["arm64"]) for a, b in zip(x86, arm)), default=0.0)
    print(f"\n{sum(map(len, answers['x86_64']))} detections on {SCENES} scenes; arm64 vs x86_64: "
          f"max score gap {score_gap:.2e}, max box gap {box_gap:.3f} px")
    for x86, arm in zip(answers["x86_64"], answers["arm64"]):
        assert [(label, class_id) for label, class_id, _, _ in arm] == [(label, class_id) for label, class_id, _, _ in x86]
        assert np.allclose([d[2] for d in arm], [d[2] for d in x86], atol=1e-4, rtol=0)
        assert np.allclose([d[3] for d in arm], [d[3] for d in x86], atol=0.5, rtol=0)

    # byte code: the arm64 interpreter loads the shipped .pyc without reading (or compiling) the source
    shutil.copytree(arm64.package_dir / "detection", tmp_path / "detection")
    (tmp_path / "detection" / "errors.py").write_text("raise SystemExit('source was compiled instead')\n")
    python = ensure_interpreter("arm64")
    proc = python.run("-I", "-S", "-B", "-c", "import sys, platform; sys.path.insert(0, sys.argv[1]); "
                      "import detection.errors as e; print(platform.machine(), e.__spec__.cached)", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    machine, cached = proc.stdout.split()
    assert machine == "aarch64" and cached.endswith("errors.cpython-313.pyc")
