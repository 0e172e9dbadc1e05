"""Known-answer detectors: real ONNX graphs whose correct output we can compute by hand.

The graph finds the bounding box of bright pixels in its input tensor (mean over channels > 0.5) and
reports it as one detection of class 1 with score 0.9 — as ``boxes_scores_labels`` (xyxy input pixels) or as
``detr`` (logits + normalized cxcywh). Feed it a white rectangle on black and the right answer is the
rectangle, so every resize/letterbox/pad/rescale mistake shows up as a wrong box.

``batch`` (``detr`` only): ``"axis"`` gives the graph a free first axis (one detection per image of the batch);
``"mixing"`` does too but lets images of one batch see each other's bright pixels (a graph whose batch axis
changes its answers, which batched serving must catch).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from detection.bundle import Bundle, write_bundle
from detection.manifest import IMAGENET_MEAN, IMAGENET_STD

CLASS_MAP = {0: "background", 1: "square", 2: "circle"}


def _const(name: str, value) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value), name))


def build_known_answer_model(*, height: int, width: int, output_format: str, batch: str = "none"
                             ) -> onnx.ModelProto:
    if batch != "none" and output_format != "detr":
        raise ValueError("only the detr known-answer graph has a batch axis")
    nodes = [helper.make_node("ReduceMean", ["images"], ["own_gray"], axes=[1], keepdims=0)]  # (N,H,W)
    if batch == "mixing":
        nodes += [helper.make_node("ReduceMax", ["own_gray"], ["batch_gray"], axes=[0], keepdims=1),  # (1,H,W)
                  helper.make_node("Max", ["own_gray", "batch_gray"], ["gray"])]  # (N,H,W), the batch's union
    else:
        nodes.append(helper.make_node("Identity", ["own_gray"], ["gray"]))
    nodes += [
        _const("half", np.array(0.5, np.float32)),
        helper.make_node("Greater", ["gray", "half"], ["mask_b"]),
        helper.make_node("Cast", ["mask_b"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMax", ["mask"], ["rows"], axes=[2], keepdims=0),              # (1,H)
        helper.make_node("ReduceMax", ["mask"], ["cols"], axes=[1], keepdims=0),              # (1,W)
        helper.make_node("ArgMax", ["cols"], ["x1i"], axis=1, keepdims=1, select_last_index=0),
        helper.make_node("ArgMax", ["cols"], ["x2i"], axis=1, keepdims=1, select_last_index=1),
        helper.make_node("ArgMax", ["rows"], ["y1i"], axis=1, keepdims=1, select_last_index=0),
        helper.make_node("ArgMax", ["rows"], ["y2i"], axis=1, keepdims=1, select_last_index=1),
        _const("one", np.array([[1]], np.int64)),
        helper.make_node("Add", ["x2i", "one"], ["x2e"]),
        helper.make_node("Add", ["y2i", "one"], ["y2e"]),
        helper.make_node("Concat", ["x1i", "y1i", "x2e", "y2e"], ["box_i"], axis=1),          # (1,4)
        helper.make_node("Cast", ["box_i"], ["box"], to=TensorProto.FLOAT),
    ]
    if output_format == "boxes_scores_labels":
        nodes += [
            helper.make_node("Identity", ["box"], ["boxes"]),
            _const("scores", np.array([0.9], np.float32)),
            _const("labels", np.array([1], np.int64)),
        ]
        outputs = [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["n", 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n"]),
            helper.make_tensor_value_info("labels", TensorProto.INT64, ["n"]),
        ]
    else:
        size = np.array([[width, height, width, height]], np.float32)
        nodes += [
            _const("size", size),
            helper.make_node("Div", ["box", "size"], ["nbox"]),                                # x1 y1 x2 y2 (0..1)
            _const("to_cxcywh", np.array([[.5, 0, -1, 0], [0, .5, 0, -1], [.5, 0, 1, 0], [0, .5, 0, 1]], np.float32)),
            helper.make_node("MatMul", ["nbox", "to_cxcywh"], ["cxcywh"]),
            _const("box_shape", np.array([-1, 1, 4], np.int64)),
            helper.make_node("Reshape", ["cxcywh", "box_shape"], ["pred_boxes"]),                # (N,1,4)
            # query 0 is the square (class 1 of 3, background-free logits); score sigmoid(2.197) = 0.9
            _const("one_logits", np.array([[[-9.0, 2.1972246, -9.0]]], np.float32)),
            helper.make_node("Shape", ["images"], ["image_shape"], start=0, end=1),
            _const("query_class", np.array([1, 3], np.int64)),
            helper.make_node("Concat", ["image_shape", "query_class"], ["logits_shape"], axis=0),
            helper.make_node("Expand", ["one_logits", "logits_shape"], ["logits"]),              # (N,1,3)
        ]
        first = "batch" if batch != "none" else 1
        outputs = [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [first, 1, 3]),
            helper.make_tensor_value_info("pred_boxes", TensorProto.FLOAT, [first, 1, 4]),
        ]
    first = "batch" if batch != "none" else 1
    graph = helper.make_graph(
        nodes, "known_answer",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [first, 3, height, width])], outputs,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build_known_answer_bundle(
    out_dir: str | Path,
    *,
    output_format: str = "boxes_scores_labels",
    resize: str = "letterbox",
    pad_position: str = "center",
    height: int = 96,
    width: int = 128,
    imagenet: bool = True,
    antialias: bool = False,
    batch: str = "none",
    declare_batch: bool | None = None,
) -> Bundle:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / "model.onnx"
    onnx.save(build_known_answer_model(height=height, width=width, output_format=output_format, batch=batch),
              model_path)
    if output_format == "boxes_scores_labels":
        output = {"format": output_format, "boxes": "boxes", "scores": "scores", "labels": "labels"}
        labels = {"offset": 0, "background_id": 0}
    else:
        output = {"format": "detr", "logits": "logits", "boxes": "pred_boxes", "top_k": 10}
        labels = {"offset": 0, "background_id": None}
    manifest = {
        "name": f"known-answer-{output_format}-{resize}-{pad_position}",
        "input": {"name": "images", "height": height, "width": width},
        "preprocessing": {
            "resize": resize, "interpolation": "bilinear", "antialias": antialias,
            "pad_position": pad_position, "pad_value": 0.0 if imagenet else -1.0, "scale": 1 / 255,
            "mean": list(IMAGENET_MEAN) if imagenet else None, "std": list(IMAGENET_STD) if imagenet else None,
        },
        "output": output,
        "labels": labels,
        "score_threshold": 0.5,
        # as export records it; declare_batch=False is a bring-your-own graph with a batch axis nobody checked
        "provenance": {"architecture": "known-answer", "weights": "none",
                       "batch_axis": batch != "none" if declare_batch is None else declare_batch},
    }
    class_map = CLASS_MAP if output_format == "boxes_scores_labels" else {0: "background", 1: "square", 2: "circle"}
    return write_bundle(out, manifest=manifest, class_map=class_map, model_path=model_path)


def square_image(*, width: int, height: int, box: tuple[int, int, int, int], fmt: str = "JPEG",
                 exif_orientation: int | None = None) -> bytes:
    """A black image with a white rectangle ``box`` (x1, y1, x2, y2, exclusive ends), encoded."""
    from PIL import Image

    array = np.zeros((height, width, 3), np.uint8)
    x1, y1, x2, y2 = box
    array[y1:y2, x1:x2] = 255
    image = Image.fromarray(array)
    buffer = io.BytesIO()
    kwargs = {"quality": 95} if fmt == "JPEG" else {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()
