"""bench.quantize end to end on a tiny real conv detector and a tiny generated demo dataset (AP of both
bundles through train.evaluate); the verdict rule as a table."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from bench.quantize import main, verdict
from detection.bundle import read_bundle, write_bundle
from train.demo_data import CLASSES, generate_dataset

QUERIES, SIZE = 5, 32


def _tiny_detr_model() -> onnx.ModelProto:
    """Conv -> ReLU -> global pool -> two Gemm heads: logits (1, Q, C) and sigmoid boxes (1, Q, 4)."""
    rng = np.random.default_rng(0)
    classes = len(CLASSES)

    def init(name, shape, scale=0.5):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    initializers = [
        init("conv_w", (8, 3, 3, 3)), init("conv_b", (8,)), init("cls_w", (8, QUERIES * classes)),
        init("cls_b", (QUERIES * classes,)), init("box_w", (8, QUERIES * 4)), init("box_b", (QUERIES * 4,)),
        numpy_helper.from_array(np.array([1, QUERIES, classes], np.int64), "logits_shape"),
        numpy_helper.from_array(np.array([1, QUERIES, 4], np.int64), "boxes_shape"),
    ]
    nodes = [
        helper.make_node("Conv", ["images", "conv_w", "conv_b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "cls_w", "cls_b"], ["cls"]),
        helper.make_node("Reshape", ["cls", "logits_shape"], ["logits"]),
        helper.make_node("Gemm", ["flat", "box_w", "box_b"], ["box"]),
        helper.make_node("Sigmoid", ["box"], ["box_sig"]),
        helper.make_node("Reshape", ["box_sig", "boxes_shape"], ["pred_boxes"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny-detr", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, QUERIES, classes]),
         helper.make_tensor_value_info("pred_boxes", TensorProto.FLOAT, [1, QUERIES, 4])], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("quant")
    onnx.save(_tiny_detr_model(), root / "model.onnx")
    manifest = {
        "name": "tiny-detr", "input": {"name": "images", "height": SIZE, "width": SIZE},
        "preprocessing": {"resize": "stretch", "interpolation": "bilinear", "antialias": True,
                          "pad_position": "bottom_right", "pad_value": 0.0, "scale": 1 / 255, "mean": None,
                          "std": None},
        "output": {"format": "detr", "logits": "logits", "boxes": "pred_boxes", "top_k": QUERIES},
        "labels": {"offset": 0, "background_id": None}, "score_threshold": 0.05,
        "provenance": {"architecture": "tiny-detr", "weights": "random"},
    }
    bundle = write_bundle(root / "bundle", manifest=manifest, class_map=dict(enumerate(CLASSES)),
                          model_path=root / "model.onnx")
    generate_dataset(root / "data", num_images=10, min_size=64, max_size=96)
    return bundle, root


def test_quantizes_evaluates_and_records_a_verdict(tiny_bundle, capsys):
    bundle, root = tiny_bundle
    out = root / "int8"
    code = main([str(bundle.root), "--out", str(out), "--eval-data", str(root / "data"), "--count", "4"])
    record = json.loads((out / "quantization.json").read_text())
    assert record["status"] in ("offered", "refused")
    assert code == (0 if record["status"] == "offered" else 2)
    assert 0.0 <= record["ap_fp32"] <= 1.0 and 0.0 <= record["ap_int8"] <= 1.0
    assert record["int8_speedup"] > 0 and record["fp32_p50_ms"] > 0
    manifest_file = out / ("model.json" if code == 0 else "model.refused.json")
    manifest = json.loads(manifest_file.read_text())
    assert manifest["provenance"]["quantization"]["calibration_images"] == 4
    if code == 0:
        int8 = read_bundle(out)  # sha256 verified on read
        ops = {node.op_type for node in onnx.load(int8.model_path).graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_without_eval_data_the_result_is_unverified(tiny_bundle):
    bundle, root = tiny_bundle
    out = root / "int8-unverified"
    assert main([str(bundle.root), "--out", str(out), "--count", "2"]) == 0
    assert json.loads((out / "quantization.json").read_text())["status"] == "unverified"


@pytest.mark.parametrize("args, message", [
    (["{tmp}", "--out", "{tmp}/o"], "not a bundle"),
    (["{bundle}", "--out", "{bundle}"], "must differ"),
    (["{bundle}", "--out", "{tmp}/o", "--count", "0"], "at least 1"),
])
def test_bad_arguments_are_one_line_errors(tiny_bundle, tmp_path, capsys, args, message):
    bundle, _ = tiny_bundle
    argv = [a.format(tmp=tmp_path, bundle=bundle.root) for a in args]
    assert main(argv) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("fp32, int8, limit, expected", [
    (0.50, 0.495, 1.0, ("offered", 0.5)),
    (0.50, 0.48, 1.0, ("refused", 2.0)),
    (0.50, 0.51, 1.0, ("offered", -1.0)),
    (None, 0.4, 1.0, ("unverified", None)),
    (0.0, 0.0, 0.0, ("offered", 0.0)),
])
def test_verdict_table(fp32, int8, limit, expected):
    assert verdict(ap_fp32=fp32, ap_int8=int8, max_drop_points=limit) == expected
