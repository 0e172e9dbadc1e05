"""``python -m export``: a detector -> a verified model bundle (-> S3).

Examples::

    python -m export --arch dfine-s --out dist/dfine-s                       # published COCO weights
    python -m export --arch retinanet_resnet50_fpn_v2 --weights none --input-size 320 --out /tmp/rn
    python -m export --arch retinanet_resnet18_fpn --weights runs/demo/checkpoint.pt --out dist/demo
    python -m export --arch onnx --onnx model.onnx --classes class_map.json --preset icevision --out dist/byo
    python -m export --arch dfine-n --weights none --out dist/n --upload s3://my-models/detectors/

Exit status: 0 ok, 2 bad input, 3 parity gate failed, 4 upload failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lambda_build.sagemaker import PackagingError, build_model_archive

from . import archs
from .api import bundle_name, export_bundle
from .errors import ExportError
from .images import load_parity_images
from .parity import Tolerances


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export",
        description="Export a detector to a model bundle (model.onnx + class_map.json + model.json), prove that "
                    "the Lambda's preprocessing + ONNX Runtime reproduce PyTorch (parity gate), optionally upload.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit status: 0 ok, 2 bad input, 3 parity gate failed, 4 upload failed",
    )
    parser.add_argument("--arch",
                        help=f"one of {', '.join(sorted(archs.ARCHS))}, or 'onnx' (bring your own, with --onnx); "
                             "optional with a train/ checkpoint, which records it")
    parser.add_argument("--weights", default="default",
                        help="'default' (published COCO weights; needs network), 'none' (random init), a train/ "
                             "checkpoint file, or (DETR families) a Hugging Face hub id / save_pretrained directory")
    parser.add_argument("--classes", help="class map: a JSON file (id->name or icevision name->id), a comma list "
                                          "'cat,dog', or 'coco'")
    parser.add_argument("--input-size", help="served tensor size: N or HEIGHTxWIDTH (default: 640 for D-FINE and "
                                             "RetinaNet, the checkpoint's, or the ONNX graph's)")
    parser.add_argument("--out", type=Path, help="bundle directory (default dist/bundles/<name>)")
    parser.add_argument("--name", help="bundle name (S3 folder); default <arch>-<coco|random|checkpoint name>")
    parser.add_argument("--upload", metavar="S3_URI", help="upload to s3://bucket/prefix/<name>/<sha12>/ and point "
                                                           "s3://bucket/prefix/<name>/latest.json at it")
    parser.add_argument("--score-threshold", type=float, help="default threshold in the manifest (0.5)")
    parser.add_argument("--preprocessing", help="JSON object (or .json file) of manifest preprocessing keys to "
                                                "override, e.g. '{\"antialias\": false}'")
    byo = parser.add_argument_group("bring your own ONNX (--arch onnx)")
    byo.add_argument("--onnx", type=Path, help="the ONNX file")
    byo.add_argument("--preset", help="preprocessing/labels preset: icevision, torchvision or hf-detr")
    byo.add_argument("--outputs", help="output names when they cannot be guessed: "
                                       "boxes=NAME,scores=NAME,labels=NAME or logits=NAME,boxes=NAME")
    gate = parser.add_argument_group("parity gate")
    gate.add_argument("--parity-images", nargs="+", type=Path,
                      help="images for the gate (default: photos shipped in installed packages + synthetic scenes)")
    gate.add_argument("--score-tolerance", type=float, default=Tolerances.score)
    gate.add_argument("--iou-tolerance", type=float, default=Tolerances.iou)
    parser.add_argument("--optimize-for-serving", action="store_true",
                        help="also write model.optimized.onnx (ORT's fusions applied ahead of time: faster cold "
                             "start; used only where the Lambda's onnxruntime version and CPU architecture match)")
    parser.add_argument("--batch-axis", action="store_true",
                        help="DETR families: a free batch axis, so uploads and batch runs put several images through "
                             "one model run (INFERENCE_BATCH); session creation gets slower, HTTP gains nothing")
    parser.add_argument("--target", choices=("lambda", "gpu", "inferentia"), default="lambda",
                        help="also build the SageMaker model.tar.gz for Backend=gpu|inferentia into OUT/<target>/ "
                             "(deploy.sh uploads it to <ModelS3Uri><target>/model.tar.gz)")
    parser.add_argument("--sagemaker-wheels", default="download",
                        help="with --target gpu|inferentia: 'download' (vendor wheels, the endpoint has no network), "
                             "'none', or a directory of wheels")
    parser.add_argument("--seed", type=int, default=0, help="seed for random-init weights")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="allow arbitrary pickled objects in the checkpoint (only for files you made)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()

    def say(message: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    try:
        if args.arch is None and not (args.weights not in ("default", "none") and Path(args.weights).is_file()):
            raise ExportError("--arch is required (unless --weights is a train/ checkpoint that records it)")
        arch = args.arch or "auto"
        out = args.out or Path("dist/bundles") / (args.name or (
            Path(args.onnx).stem if arch == "onnx" and args.onnx else bundle_name(arch, args.weights)))
        images = load_parity_images(args.parity_images) if args.parity_images else None
        bundle = export_bundle(
            arch, args.weights, out, input_size=args.input_size, classes=args.classes, parity_images=images,
            preprocessing=args.preprocessing, name=args.name, score_threshold=args.score_threshold,
            tolerances=Tolerances(score=args.score_tolerance, iou=args.iou_tolerance), seed=args.seed,
            trust_checkpoint=args.trust_checkpoint, onnx_path=args.onnx, preset=args.preset, outputs=args.outputs,
            upload=args.upload, optimize=args.optimize_for_serving, batch_axis=args.batch_axis, progress=say,
        )
    except ExportError as exc:
        print(f"export failed: {exc.message}", file=sys.stderr)
        return exc.exit_code
    if args.target != "lambda":
        wheels = None if args.sagemaker_wheels == "none" else args.sagemaker_wheels
        say(f"building the SageMaker model.tar.gz for {args.target}")
        try:
            archive = build_model_archive(bundle.root, args.target, bundle.root / args.target / "model.tar.gz",
                                          wheels=wheels)
        except PackagingError as exc:
            print(f"export failed: {exc}", file=sys.stderr)
            return 2
        print(f"{args.target} model archive: {archive} ({archive.stat().st_size / 1e6:.1f} MB)")
    parity = bundle.manifest.parity or {}
    size_mb = sum(p.stat().st_size for p in bundle.root.iterdir() if p.is_file()) / 1e6
    summary = (f"{bundle.manifest.name}: {bundle.root} ({size_mb:.1f} MB, sha256 {bundle.manifest.model_sha256[:12]})"
               f", parity {'passed' if parity.get('passed') else 'n/a'}")
    if parity.get("mode") != "smoke" and parity:
        summary += (f" ({parity['detections_compared']} detections on {len(parity['images'])} images, max score "
                    f"delta {parity['max_score_delta']:.1e}, min IoU {parity['min_iou']:.4f})")
    print(summary)
    return 0
