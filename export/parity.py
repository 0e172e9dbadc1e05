"""The parity gate: PyTorch eager (torch reference preprocessing) vs ONNX Runtime behind the Lambda's own
NumPy preprocessing and postprocessing (imported from ``lambda_src/detection``, never copied).

For every image both sides decode the same bytes with ``detection.image.decode_image``; the eager side then
runs ``export.reference`` + the PyTorch module, the ONNX side ``detection.pipeline.Detector.detect_array``
(``detection.preprocess`` + ``detection.session`` + ``detection.postprocess``). Detections are matched per class by IoU;
the gate fails when a matched pair's score differs by more than ``score`` or its IoU is below ``iou``, or
when either side has a detection the other lacks (unless its score sits within ``score`` of the threshold,
where a 1e-5 difference may legitimately flip it: those are counted as ``borderline``).

Random weights and synthetic scenes rarely reach the manifest's score threshold, so each image is compared
at ``min(manifest threshold, a cut below the ``min_detections``-th PyTorch score)``, placed in the widest
score gap there: every image contributes detections.

Example:
    >>> iou((0, 0, 10, 10), (0, 0, 10, 5))
    0.5
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from detection.bundle import Bundle
from detection.image import decode_image
from detection.pipeline import Detector

from .errors import ParityError
from .images import ParityImage
from .reference import ReferenceDetection, decode_outputs, reference_preprocess, to_original


@dataclass(frozen=True)
class Tolerances:
    score: float = 1e-4
    iou: float = 0.99
    min_detections: int = 10


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def pick_threshold(scores: Sequence[float], *, base: float, min_detections: int) -> float:
    """``base`` if at least ``min_detections`` scores reach it, else a cut in the widest gap between the
    ``min_detections``-th and ``2 * min_detections``-th best scores.

    Example:
        >>> pick_threshold([0.9, 0.8, 0.3, 0.29], base=0.95, min_detections=2)
        0.55
    """
    ordered = sorted(scores, reverse=True)
    if sum(s >= base for s in ordered) >= min_detections or not ordered:
        return base
    if len(ordered) <= min_detections:
        # all of them; a cut at the lowest score makes it borderline, as the graph's own floor may be near
        return min(base, ordered[-1])
    stop = min(2 * min_detections, len(ordered) - 1)
    gaps = [(ordered[j - 1] - ordered[j], j) for j in range(min_detections, stop + 1)]
    _, j = max(gaps)
    return min(base, (ordered[j - 1] + ordered[j]) / 2)


def _suppression_is_borderline(det, others: Sequence, *, nms_iou: float, eps: float, tol: float,
                               at_least: bool = False) -> bool:
    """Is there a same-class, higher-scored detection in ``others`` whose IoU with ``det`` sits at the graph's
    NMS threshold (``at_least``: at or above it), so float rounding may decide whether ``det`` survives?"""
    for other in others:
        if other.class_id != det.class_id or other.score < det.score - tol:
            continue
        overlap = iou(det.box, other.box)
        if abs(overlap - nms_iou) <= eps or (at_least and overlap >= nms_iou - eps):
            return True
    return False


def match_detections(reference: Sequence, candidate: Sequence, *, threshold: float, tolerances: Tolerances,
                     nms_iou: float | None = None, nms_eps: float = 1e-3) -> dict:
    """Match two detection lists (objects with ``class_id``, ``score``, ``box``); return the image verdict.

    Unmatched detections are ``borderline`` (not failures) when their score is within the score tolerance
    of ``threshold``, or, for graphs with NMS inside (``nms_iou``), when the box that suppressed them on the
    other side overlaps them at the NMS threshold (within ``nms_eps``), and the boxes that such a survivor
    suppresses in turn.
    """
    free = set(range(len(candidate)))
    score_deltas, ious, problems = [], [], []
    lost_reference = []
    for det in reference:
        options = [(iou(det.box, candidate[j].box), j) for j in free if candidate[j].class_id == det.class_id]
        good = [(abs(det.score - candidate[j].score), -overlap, j) for overlap, j in options if overlap >= tolerances.iou]
        if good:
            delta, negative_overlap, j = min(good)
            free.discard(j)
            score_deltas.append(delta)
            ious.append(-negative_overlap)
            if delta > tolerances.score:
                problems.append(f"class {det.class_id} score {det.score:.5f} vs {candidate[j].score:.5f}")
            continue
        lost_reference.append((det, max(options, default=(0.0, None))[0]))
    lost_candidate = [candidate[j] for j in sorted(free)]

    def near_threshold(det) -> bool:
        return abs(det.score - threshold) <= tolerances.score

    def nms_flip(det, other_side) -> bool:
        return nms_iou is not None and _suppression_is_borderline(
            det, other_side, nms_iou=nms_iou, eps=nms_eps, tol=tolerances.score)

    borderline_reference = [d for d, _ in lost_reference if near_threshold(d) or nms_flip(d, candidate)]
    borderline_candidate = [d for d in lost_candidate if near_threshold(d) or nms_flip(d, reference)]

    def cascade(det, other_lost) -> bool:  # suppressed on the other side by a survivor of a borderline flip
        return nms_iou is not None and _suppression_is_borderline(
            det, other_lost, nms_iou=nms_iou, eps=nms_eps, tol=tolerances.score, at_least=True)

    borderline = len(borderline_reference) + len(borderline_candidate)
    for det, best in lost_reference:
        if det in borderline_reference:
            continue
        if cascade(det, borderline_candidate):
            borderline += 1
            continue
        problems.append(f"class {det.class_id} score {det.score:.4f} box {[round(v, 1) for v in det.box]} has no "
                        f"ONNX match (best IoU {best:.3f})")
    for det in lost_candidate:
        if det in borderline_candidate:
            continue
        if cascade(det, borderline_reference):
            borderline += 1
            continue
        problems.append(f"ONNX-only class {det.class_id} score {det.score:.4f} box {[round(v, 1) for v in det.box]}")
    return {
        "threshold": round(threshold, 6),
        "pytorch": len(reference),
        "onnx": len(candidate),
        "matched": len(score_deltas),
        "borderline": borderline,
        "max_score_delta": float(max(score_deltas, default=0.0)),
        "min_iou": float(min(ious, default=1.0)),
        "problems": problems[:5],
        "problem_count": len(problems),
        "passed": not problems,
    }


def eager_detections(prepared, array: np.ndarray) -> list[ReferenceDetection]:
    """All PyTorch detections for one decoded image (no score threshold yet), in original pixels."""
    height, width = prepared.input_size
    tensor, geometry = reference_preprocess(array, preprocessing=prepared.preprocessing, height=height, width=width)
    with torch.no_grad():
        values = prepared.module(tensor)
    outputs = dict(zip(prepared.output_names, values))
    boxes, scores, class_ids = decode_outputs(outputs, output=prepared.output, labels=prepared.labels,
                                              height=height, width=width)
    return to_original(boxes, scores, class_ids, geometry=geometry)


def onnx_detections(detector: Detector, array: np.ndarray, *, threshold: float) -> list:
    """The Lambda's path (``Detector.detect_array``: NumPy preprocessing -> ONNX Runtime -> postprocessing)."""
    detections, _ = detector.detect_array(array, original_size=(array.shape[1], array.shape[0]),
                                          threshold=threshold, max_detections=1_000_000)
    return detections


def batch_check(detector: Detector, singles: Sequence[tuple[np.ndarray, float, list]], *,
                tolerances: Tolerances, nms_iou: float | None) -> dict | None:
    """For a graph that takes batches: the parity images in one run must give what each gave alone (``singles``:
    image, threshold, detections). At least three go in (the first repeated if needed): the export traced two.
    None when the graph takes one image or there is only one."""
    if len(singles) < 2 or not detector.takes_batches:
        return None
    together = list(singles) + list(singles[:max(0, 3 - len(singles))])
    lowest = min(threshold for _, threshold, _ in together)
    try:
        batched = detector.detect_arrays([array for array, _, _ in together],
                                         original_sizes=[(a.shape[1], a.shape[0]) for a, _, _ in together],
                                         threshold=lowest, max_detections=1_000_000)
    except Exception as exc:  # noqa: BLE001 - whatever the runtime raises, the gate reports it and fails
        return {"images": len(together), "passed": False, "max_score_delta": None,
                "problems": [f"the batched run failed: {type(exc).__name__}: {str(exc)[:300]}"]}
    verdicts = [match_detections(alone, [d for d in found if d.score >= threshold], threshold=threshold,
                                 tolerances=tolerances, nms_iou=nms_iou)
                for (_, threshold, alone), (found, _) in zip(together, batched)]
    return {"images": len(together), "passed": all(v["passed"] for v in verdicts),
            "max_score_delta": max(v["max_score_delta"] for v in verdicts),
            "min_iou": min(v["min_iou"] for v in verdicts),
            "problems": [p for v in verdicts for p in v["problems"]][:5]}


def _preprocessing_differences(manifest_block: dict, reference: dict) -> list[str]:
    out = []
    for key, expected in reference.items():
        actual = manifest_block.get(key)
        if isinstance(expected, float) and isinstance(actual, (int, float)):
            same = abs(actual - expected) <= 1e-9
        elif isinstance(expected, list) and isinstance(actual, (list, tuple)):
            same = len(actual) == len(expected) and all(abs(a - e) <= 1e-9 for a, e in zip(actual, expected))
        else:
            same = actual == expected
        if not same:
            out.append(f"{key}={actual!r} (trained with {expected!r})")
    return out


def run_parity_gate(prepared, bundle: Bundle, images: Sequence[ParityImage], *,
                    tolerances: Tolerances = Tolerances(), progress: Callable[[str], None] | None = None) -> dict:
    """Compare eager and ONNX detections on ``images``; return the report or raise ``ParityError``."""
    started = time.perf_counter()
    detector = Detector(bundle)
    results, singles = [], []
    for number, image in enumerate(images, 1):
        decoded = decode_image(image.data)
        array = decoded.array
        reference = eager_detections(prepared, array)
        threshold = pick_threshold([d.score for d in reference], base=bundle.manifest.score_threshold,
                                   min_detections=tolerances.min_detections)
        reference = [d for d in reference if d.score >= threshold]
        candidate = onnx_detections(detector, array, threshold=threshold)
        singles.append((array, threshold, candidate))
        verdict = match_detections(reference, candidate, threshold=threshold, tolerances=tolerances,
                                   nms_iou=prepared.nms_iou)
        results.append({"image": image.name, "width": int(array.shape[1]), "height": int(array.shape[0]), **verdict})
        if progress:
            progress(f"parity {number}/{len(images)} {image.name}: {verdict['matched']}/{verdict['pytorch']} matched, "
                     f"max score delta {verdict['max_score_delta']:.2e}, min IoU {verdict['min_iou']:.4f}")
    batch = batch_check(detector, singles, tolerances=tolerances, nms_iou=prepared.nms_iou)
    if batch is not None and progress:
        progress(f"batch of {batch['images']}: " + (f"max score delta {batch['max_score_delta']:.2e} against one by one"
                                                    if batch["passed"] else batch["problems"][0]))
    manifest_block = bundle.manifest.to_dict()["preprocessing"]
    report = {
        "passed": all(r["passed"] for r in results),
        "images": results,
        "detections_compared": sum(r["matched"] for r in results),
        "max_score_delta": max((r["max_score_delta"] for r in results), default=0.0),
        "min_iou": min((r["min_iou"] for r in results), default=1.0),
        "tolerances": {"score": tolerances.score, "iou": tolerances.iou},
        "reference": "torch eager, torch.nn.functional.interpolate preprocessing (export/reference.py)",
        **({"batch": batch} if batch is not None else {}),
        "seconds": round(time.perf_counter() - started, 2),
    }
    if report["detections_compared"] == 0 and report["passed"]:
        report["passed"] = False
        for r in results:
            r["problems"] = ["no detections on either side: nothing was compared"]
    if report["passed"] and batch is not None and not batch["passed"]:
        report["passed"] = False
        raise ParityError(f"the graph's batch axis changes its detections: a batch of {batch['images']} images "
                          f"differs from one by one ({batch['problems'][0]}); export it without --batch-axis",
                          report=report)
    if not report["passed"]:
        failed = [r for r in results if not r["passed"]]
        worst = failed[0]
        differences = _preprocessing_differences(manifest_block, prepared.preprocessing)
        hint = (f"; manifest preprocessing differs from training: {', '.join(differences)}" if differences
                else "; the graph itself disagrees with PyTorch (export bug or non-deterministic op)")
        raise ParityError(
            f"parity gate failed on {len(failed)} of {len(results)} images; {worst['image']}: "
            f"{worst['problem_count']} problem(s), first: {worst['problems'][0]}{hint}", report=report)
    return report


def smoke_check(bundle: Bundle, images: Sequence[ParityImage], *, progress: Callable[[str], None] | None = None
                ) -> dict:
    """For a bring-your-own graph (no PyTorch model to compare): the bundle runs end to end on every image."""
    started = time.perf_counter()
    results = []
    try:
        detector = Detector(bundle)
    except Exception as exc:  # onnxruntime raises its own exception types for unloadable graphs
        raise ParityError(f"onnxruntime cannot load {bundle.model_path.name}: {str(exc).splitlines()[0][:300]}",
                          report={"passed": False, "mode": "smoke"}) from None
    for image in images:
        array = decode_image(image.data).array
        try:
            detections = onnx_detections(detector, array, threshold=bundle.manifest.score_threshold)
        except Exception as exc:
            raise ParityError(f"the graph fails on {image.name} with the manifest's input and outputs: "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}; check --input-size, "
                              "--outputs and --preset", report={"passed": False, "mode": "smoke",
                                                                "images": results}) from None
        results.append({"image": image.name, "detections": len(detections)})
        if progress:
            progress(f"smoke check {image.name}: {len(detections)} detections")
    return {"passed": True, "mode": "smoke", "reason": "bring-your-own ONNX: no PyTorch model to compare against",
            "images": results, "seconds": round(time.perf_counter() - started, 2)}
