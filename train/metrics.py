"""COCO box metrics (faster-coco-eval) for detections matched to dataset classes **by name**.

Ground truth gets COCO category ids ``1..K`` in the dataset's class order, whatever ids the model uses, so a
checkpoint, a bundle and an endpoint are scored identically. VOC ``difficult`` objects become ``iscrowd``
regions (neither rewarded nor penalised).

Example:
    >>> from pathlib import Path
    >>> from train.datasets import ImageRecord, ObjectBox
    >>> records = [ImageRecord(1, Path("a.jpg"), 100, 100, (ObjectBox("cat", (10, 10, 60, 60)),))]
    >>> dets = {1: [{"label": "cat", "score": 0.9, "box": [10, 10, 60, 60]}]}
    >>> round(coco_metrics(records, ["cat"], dets)["AP50"], 3)
    1.0
"""

from __future__ import annotations

import contextlib
import io
from typing import Mapping, Sequence

import numpy as np

EVAL_SCORE_THRESHOLD = 0.05  # torchvision's RetinaNet default; low enough for COCO AP
EVAL_MAX_DETECTIONS = 100  # COCO AR100 / AP use at most 100 per image
METRIC_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100",
                "AR_small", "AR_medium", "AR_large")


def coco_ground_truth(records: Sequence, classes: Sequence[str]) -> dict:
    """COCO instances dict for ``records`` (``train.datasets.ImageRecord``)."""
    category = {name: i + 1 for i, name in enumerate(classes)}
    images, annotations = [], []
    for record in records:
        images.append({"id": record.image_id, "width": record.width, "height": record.height,
                       "file_name": record.path.name})
        for obj in record.objects:
            x1, y1, x2, y2 = obj.box
            annotations.append({"id": len(annotations) + 1, "image_id": record.image_id,
                                "category_id": category[obj.label], "bbox": [x1, y1, x2 - x1, y2 - y1],
                                "area": (x2 - x1) * (y2 - y1), "iscrowd": int(obj.difficult)})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": i, "name": name} for name, i in category.items()]}


def coco_detections(detections: Mapping[int, Sequence[Mapping]], classes: Sequence[str]) -> list[dict]:
    """``{image_id: [{"label", "score", "box": [x1, y1, x2, y2]}]}`` -> COCO results; unknown labels dropped."""
    category = {name: i + 1 for i, name in enumerate(classes)}
    results = []
    for image_id, items in detections.items():
        for det in items:
            if det["label"] not in category:
                continue
            x1, y1, x2, y2 = (float(v) for v in det["box"])
            results.append({"image_id": int(image_id), "category_id": category[det["label"]],
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(det["score"])})
    return results


def _empty_report(classes: Sequence[str]) -> dict:
    report = {name: 0.0 for name in METRIC_NAMES}
    report["per_class"] = {name: {"AP": 0.0, "AP50": 0.0} for name in classes}
    return report


def coco_metrics(records: Sequence, classes: Sequence[str], detections: Mapping[int, Sequence[Mapping]]) -> dict:
    """AP, AP50, AP75, AP small/medium/large, AR1/10/100 (+ per-class AP and AP50). Metrics with no ground
    truth to measure (e.g. no small objects) are reported as ``-1``, as pycocotools does."""
    from faster_coco_eval import COCO, COCOeval_faster

    results = coco_detections(detections, classes)
    if not results:
        return _empty_report(classes)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(coco_ground_truth(records, classes))
        dt = gt.loadRes(results)
        evaluator = COCOeval_faster(gt, dt, iouType="bbox", print_function=lambda *a, **k: None)
        evaluator.run()
    stats = [float(v) for v in evaluator.stats[:len(METRIC_NAMES)]]
    report: dict = dict(zip(METRIC_NAMES, stats))
    precision = evaluator.eval["precision"]  # [iou, recall, class, area, maxdets]
    per_class = {}
    for k, name in enumerate(classes):
        all_ious = precision[:, :, k, 0, -1]
        at50 = precision[0, :, k, 0, -1]
        per_class[name] = {
            "AP": float(np.mean(all_ious[all_ious > -1])) if (all_ious > -1).any() else -1.0,
            "AP50": float(np.mean(at50[at50 > -1])) if (at50 > -1).any() else -1.0,
        }
    report["per_class"] = per_class
    return report


def format_table(report: Mapping, *, title: str = "") -> str:
    """Summary line + per-class table, for the terminal."""
    lines = [title] if title else []
    lines.append("  ".join(f"{name}={report[name]:.3f}" for name in
                           ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR100")))
    width = max([len("class")] + [len(n) for n in report.get("per_class", {})])
    lines.append(f"{'class':<{width}}  {'AP':>6}  {'AP50':>6}")
    for name, row in report.get("per_class", {}).items():
        lines.append(f"{name:<{width}}  {row['AP']:>6.3f}  {row['AP50']:>6.3f}")
    return "\n".join(lines)
