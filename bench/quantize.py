"""INT8 static quantization of a bundle, calibrated on real images, offered only if AP holds.

``python -m bench.quantize BUNDLE --out DIR [--eval-data .cache/demo] [--calibration IMAGES] [--max-ap-drop 1]``

Calibration runs the Lambda's own decode + preprocess (so ranges match what the served model sees) over the
training split of ``--eval-data`` (or ``--calibration`` images, or the sample photos), then ONNX Runtime's
QDQ static quantization: per-channel int8 weights, uint8 activations, Conv/Gemm/MatMul only (attention
softmax, grid sampling and box decoding stay float), MinMax ranges. The int8 bundle is written next to a
``quantization.json`` verdict: AP of both bundles on the validation split (``train.evaluate``), the drop in
points and the speed-up. It is *offered* only when the drop is at most ``--max-ap-drop`` points; without
evaluation data it is ``unverified`` and must not be deployed as a replacement.

Example:
    >>> verdict(ap_fp32=0.512, ap_int8=0.505, max_drop_points=1.0)
    ('offered', 0.7)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from detection.bundle import read_bundle, write_bundle
from detection.image import decode_image
from detection.preprocess import preprocess
from detection.session import create_session
from train.evaluate import evaluate, select_records

from .images import source_photos
from .models import BenchError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def verdict(*, ap_fp32: float | None, ap_int8: float | None, max_drop_points: float) -> tuple[str, float | None]:
    """``("offered" | "refused" | "unverified", drop in AP points)``; AP values are COCO fractions (0..1)."""
    if ap_fp32 is None or ap_int8 is None:
        return "unverified", None
    drop = round((ap_fp32 - ap_int8) * 100.0, 3)
    return ("offered" if drop <= max_drop_points else "refused"), drop


def calibration_images(*, eval_data: Path | None, calibration: Path | None, count: int) -> list[bytes]:
    """Encoded images to calibrate on: ``calibration`` files, else the train split of ``eval_data``, else the
    sample photos (``bench.images``)."""
    if calibration is not None:
        files = sorted(p for p in calibration.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:count]
        if not files:
            raise BenchError(f"--calibration {calibration}: no JPEG/PNG/WebP/BMP images there")
        return [p.read_bytes() for p in files]
    if eval_data is not None:
        _, records = select_records(str(eval_data), split="train", seed=0, val_fraction=0.2)
        return [record.path.read_bytes() for record in records[:count]]
    import io

    from PIL import Image

    out = []
    for photo in list(source_photos().values())[:count]:
        buffer = io.BytesIO()
        Image.fromarray(photo).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def calibration_tensors(bundle, images: list[bytes]) -> list[np.ndarray]:
    manifest = bundle.manifest
    tensors = []
    for data in images:
        decoded = decode_image(data)
        tensors.append(preprocess(decoded.array, spec=manifest.preprocessing, input_spec=manifest.input)[0])
    return tensors


def quantize_model(*, model_path: Path, out_path: Path, input_name: str, tensors: list[np.ndarray]) -> None:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._feeds = iter({input_name: tensor} for tensor in tensors)

        def get_next(self):
            return next(self._feeds, None)

    with tempfile.TemporaryDirectory(prefix="quantize-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(model_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(out_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv", "Gemm", "MatMul"], calibrate_method=CalibrationMethod.MinMax)


def speedup(fp32_model: Path, int8_model: Path, feed: dict, *, runs: int = 6) -> dict:
    """Alternating single-thread ``session.run`` of both models on the same tensor."""
    sessions = {"fp32": create_session(fp32_model, threads=1), "int8": create_session(int8_model, threads=1)}
    times: dict[str, list[float]] = {"fp32": [], "int8": []}
    for name, session in sessions.items():
        session.run(None, feed)
    for i in range(runs):
        for name in (("fp32", "int8") if i % 2 == 0 else ("int8", "fp32")):
            start = time.perf_counter()
            sessions[name].run(None, feed)
            times[name].append(time.perf_counter() - start)
    ratio = float(np.median(np.asarray(times["fp32"]) / np.asarray(times["int8"])))
    return {"fp32_p50_ms": round(float(np.median(times["fp32"])) * 1e3, 2),
            "int8_p50_ms": round(float(np.median(times["int8"])) * 1e3, 2), "int8_speedup": round(ratio, 3)}


def evaluate_ap(bundle_dir: Path, eval_data: Path) -> float:
    report = evaluate(bundle=str(bundle_dir), data=str(eval_data), split="val", progress=False)
    return float(report["metrics"]["AP"])


def quantize_bundle(bundle_dir: Path, out_dir: Path, *, eval_data: Path | None = None, calibration: Path | None = None,
                    count: int = 32, max_drop_points: float = 1.0, log=print) -> dict:
    """Write the int8 bundle and ``quantization.json`` into ``out_dir``; returns the verdict record."""
    bundle = read_bundle(bundle_dir)
    images = calibration_images(eval_data=eval_data, calibration=calibration, count=count)
    log(f"calibrating on {len(images)} images ...")
    tensors = calibration_tensors(bundle, images)
    out_dir.mkdir(parents=True, exist_ok=True)
    int8_path = out_dir / "model.int8.onnx"
    quantize_model(model_path=bundle.model_path, out_path=int8_path, input_name=bundle.manifest.input.name,
                   tensors=tensors)
    manifest = json.loads((bundle.root / "model.json").read_text())
    manifest.pop("model_sha256", None)
    manifest["name"] = f"{manifest['name']}-int8"
    manifest.setdefault("provenance", {})["quantization"] = {
        "method": "onnxruntime quantize_static QDQ", "weights": "int8 per-channel", "activations": "uint8",
        "ops": ["Conv", "Gemm", "MatMul"], "calibration": "MinMax", "calibration_images": len(images)}
    manifest.pop("parity", None)  # the export parity gate was for the float model
    write_bundle(out_dir, manifest=manifest, class_map=bundle.class_map, model_path=int8_path)
    int8_path.unlink()
    log("timing fp32 vs int8 ...")
    speed = speedup(bundle.model_path, out_dir / "model.onnx", {bundle.manifest.input.name: tensors[0]})
    ap_fp32 = ap_int8 = None
    if eval_data is not None:
        log("evaluating AP of both bundles on the validation split ...")
        ap_fp32, ap_int8 = evaluate_ap(bundle.root, eval_data), evaluate_ap(out_dir, eval_data)
    status, drop = verdict(ap_fp32=ap_fp32, ap_int8=ap_int8, max_drop_points=max_drop_points)
    record = {"status": status, "ap_drop_points": drop, "max_ap_drop_points": max_drop_points,
              "ap_fp32": ap_fp32, "ap_int8": ap_int8, "eval_data": str(eval_data) if eval_data else None,
              "source_bundle": str(bundle.root), **speed}
    (out_dir / "quantization.json").write_text(json.dumps(record, indent=1))
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quantize", description=__doc__.split("\n")[0])
    parser.add_argument("bundle", type=Path, help="exported bundle directory")
    parser.add_argument("--out", type=Path, required=True, help="where the int8 bundle goes")
    parser.add_argument("--eval-data", type=Path, help="VOC/COCO dataset: calibrate on train, score AP on val")
    parser.add_argument("--calibration", type=Path, help="folder of calibration images (overrides eval-data's)")
    parser.add_argument("--count", type=int, default=32, help="calibration images (default 32)")
    parser.add_argument("--max-ap-drop", type=float, default=1.0, help="AP points the int8 bundle may lose")
    args = parser.parse_args(argv)
    if not (args.bundle / "model.json").is_file():
        print(f"bench.quantize: error: {args.bundle} is not a bundle (no model.json)", file=sys.stderr)
        return 1
    if args.count < 1:
        print("bench.quantize: error: --count must be at least 1", file=sys.stderr)
        return 1
    if args.out.resolve() == args.bundle.resolve():
        print("bench.quantize: error: --out must differ from the source bundle", file=sys.stderr)
        return 1
    try:
        record = quantize_bundle(args.bundle, args.out, eval_data=args.eval_data, calibration=args.calibration,
                                 count=args.count, max_drop_points=args.max_ap_drop,
                                 log=lambda m: print(m, file=sys.stderr))
    except BenchError as error:
        print(f"bench.quantize: error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(record, indent=1))
    if record["status"] == "refused":
        shutil.move(str(args.out / "model.json"), str(args.out / "model.refused.json"))
        print(f"int8 loses {record['ap_drop_points']} AP points (> {args.max_ap_drop}): not offered; "
              f"{args.out}/model.json renamed to model.refused.json so nothing deploys it", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
