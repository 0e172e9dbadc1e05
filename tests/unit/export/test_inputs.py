"""Parsing of export's inputs: sizes, names, class maps, graph output layouts, checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from export.api import bundle_name, parse_input_size
from export.archs.retinanet import normalize_class_map
from export.byo import guess_outputs, parse_outputs
from export.checkpoint import load_checkpoint
from export.classes import coco80, coco91, parse_classes
from export.errors import ExportError


@pytest.mark.parametrize("value, expected", [
    (None, None), (640, (640, 640)), ("640", (640, 640)), ("480x640", (480, 640)), ("480,640", (480, 640)),
    ((320, 480), (320, 480)), (" 512X512 ", (512, 512)),
])
def test_parse_input_size(value, expected):
    assert parse_input_size(value) == expected


@pytest.mark.parametrize("value", ["", "abc", "0", "16", "640x", "1x2x3", 99999, (640,)])
def test_parse_input_size_rejects(value):
    with pytest.raises(ExportError, match="--input-size"):
        parse_input_size(value)


@pytest.mark.parametrize("arch, weights, expected", [
    ("dfine-s", "default", "dfine-s-coco"), ("dfine-n", "none", "dfine-n-random"),
    ("retinanet_resnet18_fpn", "runs/Demo Run/best.pt", "retinanet_resnet18_fpn-best"),
    ("dfine-s", "ustc-community/dfine-small-obj365", "dfine-s-dfine-small-obj365"),
])
def test_bundle_name(arch, weights, expected):
    assert bundle_name(arch, weights) == expected


def test_parse_classes_forms(tmp_path):
    icevision = tmp_path / "class_map.json"
    icevision.write_text(json.dumps({"background": 0, "milk": 1, "eggs": 2}))
    assert parse_classes(str(icevision)) == {0: "background", 1: "milk", 2: "eggs"}
    listing = tmp_path / "names.json"
    listing.write_text(json.dumps(["a", "b"]))
    assert parse_classes(str(listing)) == {0: "a", 1: "b"}
    assert parse_classes("cat, dog") == {0: "cat", 1: "dog"}
    assert parse_classes("coco") == coco80()
    assert parse_classes({"3": "x"}) == {3: "x"}


@pytest.mark.parametrize("value, message", [
    ("", "--classes is empty"), ("cat,,dog", "empty name"), ("missing.json", "does not exist"),
    ([], "non-empty"),
])
def test_parse_classes_rejects(value, message):
    with pytest.raises(ExportError, match=message):
        parse_classes(value)


def test_coco_numbering():
    assert len(coco80()) == 80 and coco80()[79] == "toothbrush"
    assert coco91()[1] == "person" and coco91()[90] == "toothbrush" and 0 not in coco91()


@pytest.mark.parametrize("given, expected", [
    ({1: "cat"}, {1: "cat"}),
    ({0: "cat", 1: "dog"}, {1: "cat", 2: "dog"}),
    ({0: "background", 1: "dog"}, {1: "dog"}),
    ({0: "__background__", 2: "dog"}, {2: "dog"}),
])
def test_retinanet_class_maps_start_at_one(given, expected):
    assert normalize_class_map(given) == expected


def test_retinanet_background_only_is_rejected():
    with pytest.raises(ExportError, match="only the background"):
        normalize_class_map({0: "background"})


def _out(name, dtype, shape):
    return {"name": name, "dtype": dtype, "shape": shape}


@pytest.mark.parametrize("outputs, expected", [
    ([_out("boxes", "float32", [None, 4]), _out("scores", "float32", [None]), _out("labels", "int64", [None])],
     {"format": "boxes_scores_labels", "boxes": "boxes", "scores": "scores", "labels": "labels"}),
    ([_out("Boxes", "float32", [None, 4]), _out("Scores", "float32", [None]), _out("Labels", "int64", [None])],
     {"format": "boxes_scores_labels", "boxes": "Boxes", "scores": "Scores", "labels": "Labels"}),
    ([_out("3012", "float32", [None]), _out("3013", "int64", [None]), _out("3011", "float32", [None, 4])],
     {"format": "boxes_scores_labels", "boxes": "3011", "scores": "3012", "labels": "3013"}),
    ([_out("logits", "float32", [1, 300, 80]), _out("pred_boxes", "float32", [1, 300, 4])],
     {"format": "detr", "logits": "logits", "boxes": "pred_boxes"}),
])
def test_guess_outputs(outputs, expected):
    assert guess_outputs(outputs) == expected


@pytest.mark.parametrize("outputs", [
    [],
    [_out("a", "float32", [1, 4]), _out("b", "float32", [1, 4]), _out("c", "int64", [1])],
    [_out("x", "float32", [1, 10])],
])
def test_guess_outputs_unknown_layout(outputs):
    with pytest.raises(ExportError, match="pass --outputs boxes=NAME,scores=NAME,labels=NAME"):
        guess_outputs(outputs)


def test_parse_outputs():
    assert parse_outputs("logits=l, boxes=b") == {"logits": "l", "boxes": "b"}
    assert parse_outputs(None) is None
    with pytest.raises(ExportError, match="--outputs"):
        parse_outputs("boxes")
    with pytest.raises(ExportError, match="--outputs"):
        parse_outputs("masks=m")


def test_checkpoint_train_format(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save({"format": "serverless-detection/train-checkpoint@1", "arch": "retinanet_resnet18_fpn",
                "num_classes": 2, "class_map": {0: "cat", 1: "dog"}, "input_size": [320, 256],
                "preprocessing": {"resize": "letterbox"}, "output_format": "boxes_scores_labels",
                "model_kwargs": {"fpn_channels": 64}, "state_dict": {"w": torch.zeros(1)}, "epoch": 3}, path)
    ckpt = load_checkpoint(path)
    assert (ckpt.arch, ckpt.num_classes, ckpt.input_size) == ("retinanet_resnet18_fpn", 2, (320, 256))
    assert ckpt.class_map == {0: "cat", 1: "dog"} and ckpt.model_kwargs == {"fpn_channels": 64}
    with pytest.raises(ExportError, match="trained as retinanet_resnet18_fpn"):
        load_checkpoint(path, arch="dfine-n")


def test_checkpoint_bare_state_dict(tmp_path):
    path = tmp_path / "bare.pt"
    torch.save({"a.weight": torch.ones(2)}, path)
    ckpt = load_checkpoint(path, arch="dfine-n")
    assert ckpt.arch == "dfine-n" and ckpt.class_map is None and set(ckpt.state_dict) == {"a.weight"}


@pytest.mark.parametrize("payload, message", [
    ([1, 2], "holds a list"),
    ({"epoch": 3}, "has no weights"),
    ({"state_dict": {"w": torch.zeros(1)}, "input_size": "big"}, "input_size must be"),
])
def test_checkpoint_rejects(tmp_path, payload, message):
    path = tmp_path / "bad.pt"
    torch.save(payload, path)
    with pytest.raises(ExportError, match=message):
        load_checkpoint(path)


def test_checkpoint_missing_and_not_torch(tmp_path):
    with pytest.raises(ExportError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ExportError, match="not a torch.save file"):
        load_checkpoint(junk)


@pytest.mark.parametrize("kwargs, message", [
    ({"weights": "runs/missing.pt"}, "no such file or directory"),
    ({"weights": "none", "preprocessing": '{"foo": 1}'}, "unknown key"),
    ({"weights": "none", "preprocessing": "[1, 2]"}, "must be a JSON object"),
    ({"weights": "none", "preprocessing": "{nope"}, "must be a JSON object"),
    ({"weights": "none", "input_size": "0x0"}, "--input-size"),
])
def test_bad_arguments_fail_before_any_work(tmp_path, kwargs, message):
    from export.api import export_bundle

    with pytest.raises(ExportError, match=message):
        export_bundle("dfine-n", out_dir=tmp_path, parity_images=[], **kwargs)
    assert not (tmp_path / "model.onnx").exists()


def test_batch_axis_on_a_graph_with_nms_inside_is_refused_before_export(tmp_path):
    from export.api import export_bundle

    with pytest.raises(ExportError, match="--batch-axis: a retinanet_tiny_fpn graph outputs one image's detections"):
        export_bundle("retinanet_tiny_fpn", "none", tmp_path, parity_images=[], batch_axis=True)
    assert not (tmp_path / "model.onnx").exists()
