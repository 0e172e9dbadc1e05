"""Python API of the export stage (what ``python -m export`` calls; also used by tests, train and deploy).

Example:
    >>> # bundle = export_bundle("dfine-s", weights="none", out_dir="dist/dfine-s")
    >>> # bundle.manifest.parity["passed"], bundle.model_path
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from detection.bundle import Bundle, write_bundle
from detection.manifest import MANIFEST_FILE, Preprocessing
from detection.errors import BundleError
import zoo
from detection.session import optimize_for_serving

from . import archs
from .byo import byo_manifest
from .checkpoint import load_checkpoint
from .classes import parse_classes
from .errors import ExportError, ParityError
from .images import ParityImage, default_parity_images
from .onnx_io import OPSET, export_onnx
from .parity import Tolerances, run_parity_gate, smoke_check
from .upload import upload_bundle

PARITY_FAILED_FILE = "parity_failed.json"
Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for package in ("torch", "torchvision", "transformers", "onnx", "onnxruntime", "numpy"):
        try:
            out[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return out


def parse_input_size(value: Any) -> tuple[int, int] | None:
    """``640`` / ``"640"`` -> (640, 640); ``"480x640"`` / ``"480,640"`` / ``(480, 640)`` -> (height, width).

    Example:
        >>> parse_input_size("480x640"), parse_input_size(320), parse_input_size(None)
        ((480, 640), (320, 320), None)
    """
    if value is None:
        return None
    if isinstance(value, int):
        parts = [value, value]
    elif isinstance(value, (tuple, list)):
        parts = list(value)
    else:
        text = str(value).strip().lower().replace(",", "x")
        try:
            parts = [int(p) for p in text.split("x")]
        except ValueError:
            raise ExportError(f"--input-size {value!r}: expected N or HEIGHTxWIDTH, e.g. 640 or 480x640") from None
        if len(parts) == 1:
            parts = parts * 2
    if len(parts) != 2 or any(not isinstance(p, int) or p < 32 or p > 4096 for p in parts):
        raise ExportError(f"--input-size {value!r}: expected N or HEIGHTxWIDTH with sides in 32..4096")
    return int(parts[0]), int(parts[1])


def bundle_name(arch: str, weights: str) -> str:
    """A name usable in S3 keys: ``dfine-s`` + ``coco`` | ``random`` | checkpoint stem | hub repo name."""
    if weights == "default":
        tag = "coco"
    elif weights == "none":
        tag = "random"
    else:
        tag = Path(weights.rstrip("/")).stem or "custom"
    if arch in (None, "auto"):
        return re.sub(r"[^a-z0-9._-]+", "-", tag.lower()).strip("-")
    return re.sub(r"[^a-z0-9._-]+", "-", f"{arch}-{tag}".lower()).strip("-")


def _resolve_classes(classes: Any) -> dict[int, str] | None:
    if classes is None:
        return None
    if isinstance(classes, str) and classes.strip().lower() == "coco":
        return None  # each architecture's own COCO numbering
    return parse_classes(classes)


def _overrides(preprocessing: Mapping | str | None) -> dict:
    if preprocessing is None:
        return {}
    if isinstance(preprocessing, Mapping):
        return dict(preprocessing)
    text = str(preprocessing)
    path = Path(text)
    try:
        data = json.loads(path.read_text() if path.is_file() else text)
    except ValueError as exc:
        raise ExportError(f"--preprocessing must be a JSON object or a .json file: {exc}") from None
    if not isinstance(data, dict):
        raise ExportError("--preprocessing must be a JSON object like '{\"antialias\": false}'")
    unknown = sorted(set(data) - set(Preprocessing.__dataclass_fields__))
    if unknown:
        raise ExportError(f"--preprocessing: unknown key(s) {', '.join(unknown)}; manifest preprocessing keys are "
                          f"{', '.join(Preprocessing.__dataclass_fields__)}")
    return data


_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".tar")


def _check_weights(weights: str) -> None:
    """A path-looking ``--weights`` that does not exist is a typo, not a hub id: say so before any download."""
    if weights in ("default", "none") or Path(weights).exists():
        return
    if weights.lower().endswith(_CHECKPOINT_SUFFIXES) or weights.startswith((".", "/", "~")) or weights.count("/") > 1:
        raise ExportError(f"--weights {weights}: no such file or directory (pass default, none, a train/ checkpoint "
                          "or a Hugging Face hub id like ustc-community/dfine-small-coco)")


def training_record(checkpoint) -> dict:
    """What a ``train/`` checkpoint says about how it was made, for the provenance (empty for other weights)."""
    if checkpoint is None or checkpoint.recipe is None:
        return {}
    metrics = checkpoint.metrics or {}
    return {"training": {"recipe": checkpoint.recipe, "epoch": checkpoint.extra.get("epoch"),
                         "val": {name: metrics[name] for name in ("AP", "AP50", "AP75") if name in metrics}}}


def _write(out_dir: Path, manifest: dict, class_map: Mapping[int, str]) -> Bundle:
    try:
        return write_bundle(out_dir, manifest=manifest, class_map=class_map)
    except BundleError as exc:
        raise ExportError(f"the bundle would be invalid: {exc.message}") from None


def _gate(check: Callable[[], dict], out_dir: Path) -> dict:
    """Run the gate; on failure leave no manifest behind (nothing deployable) and keep the report."""
    (out_dir / PARITY_FAILED_FILE).unlink(missing_ok=True)
    try:
        return check()
    except ParityError as exc:
        (out_dir / MANIFEST_FILE).unlink(missing_ok=True)
        (out_dir / PARITY_FAILED_FILE).write_text(json.dumps({"error": exc.message, **exc.report}, indent=2))
        raise


def export_bundle(
    arch: str,
    weights: str = "default",
    out_dir: str | Path = "dist/bundle",
    *,
    input_size: Any = None,
    classes: Any = None,
    parity_images: Sequence[ParityImage] | None = None,
    preprocessing: Mapping | str | None = None,
    name: str | None = None,
    score_threshold: float | None = None,
    tolerances: Tolerances = Tolerances(),
    seed: int = 0,
    trust_checkpoint: bool = False,
    onnx_path: str | Path | None = None,
    preset: str | None = None,
    outputs: Mapping[str, str] | str | None = None,
    upload: str | None = None,
    optimize: bool = False,
    batch_axis: bool = False,
    provenance: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> Bundle:
    """Export ``arch`` with ``weights`` to a verified bundle in ``out_dir``; optionally upload it.

    ``arch``: an architecture of the zoo (``zoo.ARCHS``: ``retinanet_resnet50_fpn[_v2]``, ``dfine-n|s|m|l|x``,
    the small RetinaNets, ...), or ``onnx`` (bring-your-own: ``onnx_path``, ``classes``, ``preset``, see ``export.byo``).
    ``weights``: ``default`` (published COCO weights), ``none`` (random init), a ``train/`` checkpoint file,
    a Hugging Face hub id or ``save_pretrained`` directory (DETR families).
    ``preprocessing``: manifest preprocessing keys to override (JSON object, file or dict); the parity gate
    then checks the overridden manifest against how the model was trained.
    ``batch_axis``: give the graph a free first axis so S3 jobs run several images at once (DETR families only;
    it makes session creation slower: see README, batched inference).
    ``provenance``: extra entries for the manifest's provenance (e.g. the data a checkpoint was trained on); a
    ``train/`` checkpoint's recipe, epoch and val metrics are recorded there on their own (``training``).
    Raises ``ExportError`` (bad input), ``ParityError`` (gate failed: no model.json is left in ``out_dir``,
    ``parity_failed.json`` holds the report), ``UploadError``.
    """
    say = progress or _quiet
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    size = parse_input_size(input_size)
    images = list(parity_images) if parity_images is not None else default_parity_images()
    overrides = _overrides(preprocessing)
    if arch == "onnx":
        if onnx_path is None:
            raise ExportError("--arch onnx needs --onnx model.onnx")
        started = time.perf_counter()
        manifest, class_map = byo_manifest(onnx_path, classes=classes, preset=preset, input_size=size,
                                           outputs=outputs, preprocessing=overrides, name=name,
                                           score_threshold=score_threshold)
        manifest["provenance"] = {"architecture": "onnx", "weights": str(Path(onnx_path).resolve()),
                                  "preset": preset, "versions": versions(),
                                  "export_seconds": round(time.perf_counter() - started, 2), **(provenance or {})}
        shutil.copyfile(onnx_path, out / "model.onnx")
        bundle = _write(out, manifest, class_map)
        say(f"bring-your-own graph: {manifest['output']['format']} outputs, input {size or 'from graph'}")
        report = _gate(lambda: smoke_check(bundle, images, progress=say), out)
    else:
        _check_weights(weights)
        checkpoint = None
        if weights not in ("default", "none") and Path(weights).is_file():
            checkpoint = load_checkpoint(weights, arch=arch if arch != "auto" else None, trust=trust_checkpoint)
            arch = checkpoint.arch or arch
            if arch in (None, "auto"):
                raise ExportError(f"checkpoint {weights} does not record its architecture: pass --arch")
        say(f"building {arch} (weights {weights})")
        prepared = archs.prepare(arch, weights=weights, classes=_resolve_classes(classes), input_size=size,
                                 seed=seed, checkpoint=checkpoint)
        if batch_axis:
            if not zoo.family_of(prepared.arch).batch_axis:
                raise ExportError(f"--batch-axis: a {prepared.arch} graph outputs one image's detections (NMS "
                                  "inside); export it without --batch-axis")
            prepared = replace(prepared, batch_axis=True)
        height, width = prepared.input_size
        say(f"exporting ONNX (TorchScript exporter, opset {OPSET}, input {'N' if batch_axis else 1}x3x{height}x{width})...")
        started = time.perf_counter()
        export_onnx(prepared, out / "model.onnx", seed=seed)
        seconds = time.perf_counter() - started
        say(f"exported in {seconds:.1f} s ({(out / 'model.onnx').stat().st_size / 1e6:.1f} MB)")
        manifest = {
            "name": name or bundle_name(arch, weights),
            "input": {"name": prepared.input_name, "height": height, "width": width, "dtype": "float32",
                      "layout": "NCHW"},
            "preprocessing": {**prepared.preprocessing, **overrides},
            "output": prepared.output,
            "labels": prepared.labels,
            "score_threshold": prepared.score_threshold if score_threshold is None else score_threshold,
            "max_detections": prepared.max_detections,
            "provenance": {"architecture": arch, "weights": prepared.weights, "versions": versions(),
                           "opset": OPSET, "export_seconds": round(seconds, 2), "batch_axis": prepared.batch_axis,
                           **prepared.notes,
                           **training_record(checkpoint), **(provenance or {})},
        }
        bundle = _write(out, manifest, prepared.class_map)
        say(f"parity gate on {len(images)} images (score tolerance {tolerances.score:g}, IoU >= {tolerances.iou:g})")
        report = _gate(lambda: run_parity_gate(prepared, bundle, images, tolerances=tolerances, progress=say), out)
    manifest = bundle.manifest.to_dict()
    manifest["parity"] = report
    bundle = _write(out, manifest, bundle.class_map)
    say(f"bundle written to {out} (model sha256 {bundle.manifest.model_sha256[:12]})")
    if optimize:
        optimized = optimize_for_serving(bundle.root)
        say(f"pre-optimized model for serving: {optimized.name} (used when the Lambda's onnxruntime and CPU "
            "architecture match this machine's)")
    if upload:
        uri = upload_bundle(bundle, upload, progress=say)
        say(f"uploaded to {uri}")
    return bundle
