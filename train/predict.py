"""Run a PyTorch detector exactly like the Lambda runs its bundle: same NumPy preprocessing, same postprocessing.

``torch_detect`` feeds the network the tensor ``detection.preprocess.preprocess`` makes and hands the raw
outputs to ``detection.postprocess.postprocess`` with the manifest the checkpoint implies
(``serving_manifest``). So checkpoint-vs-bundle differences can only come from the graph itself.

Example:
    >>> m = serving_manifest(arch="retinanet_resnet18_fpn", input_size=(320, 320))
    >>> m.output.format, m.preprocessing.resize
    ('boxes_scores_labels', 'letterbox')
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from detection.image import decode_image
from detection.manifest import Manifest, parse_manifest
from detection.postprocess import Detection, postprocess
from detection.preprocess import preprocess
from zoo import ModelError, family_of, preprocessing_for

from .metrics import EVAL_MAX_DETECTIONS, EVAL_SCORE_THRESHOLD


def serving_manifest(*, arch: str, input_size: Sequence[int], preprocessing: dict | None = None,
                     output_format: str | None = None, name: str = "checkpoint",
                     score_threshold: float = 0.5, max_detections: int = 100, top_k: int = 300) -> Manifest:
    """The manifest a bundle exported from this checkpoint declares (validated by the Lambda's own parser)."""
    family = family_of(arch)
    output = family.output_block()
    if output["format"] == "detr":
        output["top_k"] = top_k
    if output_format is not None and output_format != output["format"]:
        raise ModelError(f"{arch} outputs {output['format']}, not {output_format}")
    return parse_manifest({
        "format_version": 1, "name": name,
        "input": {"name": family.input_name, "height": int(input_size[0]), "width": int(input_size[1])},
        "preprocessing": preprocessing or preprocessing_for(arch),
        "output": output,
        "labels": {"offset": 0, "background_id": None},
        "score_threshold": score_threshold, "max_detections": max_detections,
        "provenance": {"architecture": arch},
    })


def decode_like_lambda(data: bytes, *, manifest: Manifest) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode image bytes as ``detection.pipeline.Detector`` does (EXIF orientation, JPEG draft reduction to
    the model input): ``(array, (original_width, original_height))``."""
    decoded = decode_image(data, draft_size=(manifest.input.width, manifest.input.height),
                           keep_aspect=manifest.preprocessing.resize == "letterbox")
    return decoded.array, (decoded.original_width, decoded.original_height)


def torch_detect(model: torch.nn.Module, images: Sequence, *, arch: str, manifest: Manifest,
                 class_map: dict[int, str], score_threshold: float = EVAL_SCORE_THRESHOLD,
                 max_detections: int = EVAL_MAX_DETECTIONS) -> list[list[Detection]]:
    """Detections (original-image pixels) for a batch of RGB uint8 images, or ``(array, original_size)``
    pairs from ``decode_like_lambda``; ``model`` must be in eval mode."""
    pairs = [item if isinstance(item, tuple) else (item, None) for item in images]
    prepared = [preprocess(image, spec=manifest.preprocessing, input_spec=manifest.input, original_size=size)
                for image, size in pairs]
    if not prepared:
        return []
    batch = torch.from_numpy(np.concatenate([tensor for tensor, _ in prepared]))
    with torch.inference_mode():
        outputs = family_of(arch).raw_outputs(model, batch)
    return [postprocess(out, manifest=manifest, geometry=geometry, class_map=class_map,
                        score_threshold=score_threshold, max_detections=max_detections)
            for out, (_, geometry) in zip(outputs, prepared)]


def detections_as_dicts(detections: Sequence[Detection]) -> list[dict]:
    return [{"label": d.label, "score": d.score, "box": list(d.box)} for d in detections]
