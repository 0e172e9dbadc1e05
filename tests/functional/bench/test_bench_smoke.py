"""The benchmark's quick path end to end on a tiny known-answer bundle: real export-free bundle, real built
package in a clean subprocess, real cold starts. Checks files and fields only: no timed assertions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.models import BenchError, model_specs, parse_model_spec
from bench.report import goal_line
from tests.support.known_answer import build_known_answer_bundle

REPO_ROOT = Path(__file__).resolve().parents[3]
TEST_DIST = REPO_ROOT / ".cache" / "lambda_build" / "test-dist"  # shared with tests/functional/lambda_package


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    bundle = build_known_answer_bundle(root / "bundle", output_format="detr", resize="stretch", antialias=True,
                                       height=96, width=128, batch="axis")
    out = root / "out"
    code = main(["--quick", "--bundle", str(bundle.root), "--out", str(out), "--dist", str(TEST_DIST),
                 "--tmp-models", str(root / "tmp-models")])
    return code, out


def test_quick_run_writes_json_markdown_and_chart(quick_run):
    code, out = quick_run
    assert code == 0
    assert (out / "benchmarks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (out / "BENCHMARKS.md").read_text()
    for heading in ("## Goals", "## Latency", "## Handler breakdown", "## Cold start", "## Package size",
                    "## Cost per million images", "## Batched inference for S3 jobs", "indicative only"):
        assert heading in markdown


def test_quick_run_results_have_every_figure(quick_run):
    _, out = quick_run
    results = json.loads((out / "benchmarks.json").read_text())
    assert results["quick"] is True and results["prices"]["as_of"]
    [model] = results["models"]
    assert model["model"] == "bundle:bundle" and model["eager_vs_ort"]["eager"] is None
    handler = model["handler"]
    assert handler["torch_importable"] is False and handler["torch_imported"] is False
    for label in ("1080p", "4k"):
        assert handler[f"handler_{label}"]["n"] >= 3
        assert handler[f"handler_{label}_over_session_run"] > 0
        assert set(handler[f"breakdown_{label}_p50_ms"]) >= {"decode", "preprocess", "inference", "postprocess",
                                                              "total", "event_and_response"}
    for key in ("p50_ms", "p90_ms", "p99_ms"):
        assert handler["session_run"][key] > 0
    assert model["cold_start"]["opened"] == ["model.optimized.onnx"]
    assert model["cold_start_plain"]["opened"] == ["model.onnx"]
    assert model["cold_start_no_bytecode"]["opened"] == ["model.optimized.onnx"]
    assert model["cold_start_no_bytecode"]["median"]["imports_s"] > 0
    assert model["ratios"]["cold_start_plain_over_optimized"] > 0
    assert model["one_vcpu"]["handler_1080p_over_session_run"] > 0
    batched = model["batched"]
    assert batched["takes_batches"] is True
    for threads in ("threads_1", "threads_2"):
        assert sorted(batched[threads], key=int) == ["1", "2", "4", "8"]
        assert all(row["images_per_s_per_vcpu"] > 0 for row in batched[threads].values())
        assert all(batched[threads][size]["gain_over_one_by_one"] > 0 for size in ("2", "4", "8"))
    cold = model["cold_start"]["median"]
    assert cold["imports_plus_session_plus_first_run_s"] > 0 and cold["process_wall_s"] >= cold["imports_s"]
    assert [row["memory_mb"] for row in model["cost"]] == [1024, 1769, 2048, 3008, 3538, 10240]
    assert all(row["usd_per_million_arm64"] < row["usd_per_million_x86_64"] for row in model["cost"])
    x86_64 = results["packages"]["x86_64"]  # the zip AWS runs, measured as uploaded
    assert x86_64["zipped_mib"] > 0 and x86_64["within_budget"] is True
    assert x86_64["python"] == "3.13" and x86_64["bytecode"] is not None  # compiled by the Lambda Python


@pytest.mark.parametrize("text, expected", [
    ("dfine-s@384", ("dfine-s", 384)),
    ("dfine-s", ("dfine-s", 640)),
    ("retinanet_resnet50_fpn_v2@640", ("retinanet_resnet50_fpn_v2", 640)),
])
def test_model_spec_parsing(text, expected):
    spec = parse_model_spec(text)
    assert (spec.arch, spec.size) == expected


@pytest.mark.parametrize("text", ["", "@640", "dfine-s@abc", "dfine-s@100", "dfine-s@0"])
def test_bad_model_specs_say_what_to_fix(text):
    with pytest.raises(BenchError):
        parse_model_spec(text)


def test_default_model_list_is_three_archs_at_two_sizes():
    assert [s.key for s in model_specs(None, None, quick=False)] == [
        "dfine-n@640", "dfine-n@384", "dfine-s@640", "dfine-s@384",
        "retinanet_resnet50_fpn_v2@640", "retinanet_resnet50_fpn_v2@384"]
    assert [s.key for s in model_specs(["dfine-s@640"], None, quick=True)] == ["dfine-s@640"]


def test_bad_bundle_is_a_one_line_error(tmp_path, capsys):
    assert main(["--quick", "--bundle", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    assert "no model.json" in capsys.readouterr().err


@pytest.mark.parametrize("value, op, target, status", [(2.5, ">=", 2.0, "met"), (1.5, ">=", 2.0, "missed"),
                                                       (1.05, "<=", 1.08, "met"), (None, "<=", 1.0, "not measured")])
def test_goal_line_status(value, op, target, status):
    assert goal_line("g", value, op, target).endswith(f"| {status} |")


def test_reports_regenerate_from_json(quick_run, tmp_path):
    _, out = quick_run
    assert main(["--from-json", str(out / "benchmarks.json"), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "BENCHMARKS.md").read_text() == (out / "BENCHMARKS.md").read_text()
    assert main(["--from-json", str(tmp_path / "missing.json"), "--out", str(tmp_path)]) == 1
