"""``python -m train``: fit a detector, generate the demo dataset, evaluate, build the cached demo detector.

    python -m train demo-data --out .cache/demo                  # the demo dataset: 2000 images, ~1 min
    python -m train fit --data .cache/demo --arch retinanet_tiny_fpn --epochs 9 --out runs/demo
    python -m train evaluate --checkpoint runs/demo/checkpoint.pt --data .cache/demo
    python -m train demo            # the cached demo checkpoint
    python -m deployer.demo --out models/demo   # its bundle, the one ./deploy.sh ships

``python -m train --data ...`` (no subcommand) means ``fit``.
"""

from __future__ import annotations

import argparse
import json
import sys

from detection.errors import DetectionError
from zoo import ARCHS, ModelError

from .datasets import DatasetError
from .demo import ensure_demo_checkpoint
from .demo_data import generate_dataset
from .engine import TrainConfig, fit
from .evaluate import EndpointError, add_arguments, run as run_evaluate

SUBCOMMANDS = ("fit", "demo-data", "evaluate", "demo")


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().replace("x", ",").split(",")
    try:
        values = [int(p) for p in parts if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"input size {text!r}: give N or HxW, e.g. 320 or 320x480") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) < 32:
        raise argparse.ArgumentTypeError(f"input size {text!r}: give N or HxW with sides >= 32")
    return values[0], values[1]


def _add_fit(sub) -> None:
    p = sub.add_parser("fit", help="train a detector on a VOC folder or COCO JSON")
    p.add_argument("--data", required=True, help="VOC folder (annotations/ + images/) or COCO instances .json")
    p.add_argument("--images", dest="images_dir", help="image folder for COCO JSON (default: next to the JSON)")
    p.add_argument("--arch", default="retinanet_resnet18_fpn", choices=list(ARCHS))
    p.add_argument("--weights", default="none",
                   help="none | default (published weights) | PATH (train checkpoint, state dict, HF dir) | hub id")
    p.add_argument("--classes", help="comma list fixing class names and order (default: sorted names found)")
    p.add_argument("--input-size", type=_size, help="N or HxW (default per arch: 320 small RetinaNet, 640 others)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, help="peak lr (AdamW: 1e-3 RetinaNet, 2e-4 D-FINE; SGD: 0.02)")
    p.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"], help="sgd = Nesterov momentum 0.9")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="keep an exponential moving average of the weights (e.g. 0.998); eval/export use it")
    p.add_argument("--crop-prob", type=float, default=0.5, help="probability of the zoom-in crop augmentation")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/train", help="run folder: checkpoint.pt, best.pt, training.png")
    p.add_argument("--resume", action="store_true", help="continue out/checkpoint.pt up to --epochs")
    p.add_argument("--workers", type=int, default=0, help="data loader processes")
    p.add_argument("--threads", type=int, help="torch intra-op threads")
    p.add_argument("--eval-every", type=int, default=1)
    p.add_argument("--eval-initial", action="store_true", help="also score the starting weights (epoch 0)")
    p.add_argument("--max-train-images", type=int, help="use only the first N training images (quick runs)")
    p.add_argument("--model-kwargs", type=json.loads, default={},
                   help='JSON for the builder, e.g. \'{"fpn_channels": 96}\' (small RetinaNets)')
    p.add_argument("--no-progress", action="store_true")


def _run_fit(args) -> int:
    config = TrainConfig(
        data=args.data, images_dir=args.images_dir, arch=args.arch, weights=args.weights,
        classes=[c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None,
        input_size=args.input_size, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        optimizer=args.optimizer, weight_decay=args.weight_decay, ema_decay=args.ema, crop_prob=args.crop_prob,
        val_fraction=args.val_fraction, seed=args.seed, out=args.out, resume=args.resume, workers=args.workers,
        threads=args.threads, eval_every=args.eval_every, eval_initial=args.eval_initial,
        max_train_images=args.max_train_images, model_kwargs=args.model_kwargs,
        progress=not args.no_progress)
    path = fit(config)
    print(f"checkpoint: {path}  (export: python -m export --weights {path})")
    return 0


def _add_demo_data(sub) -> None:
    p = sub.add_parser("demo-data", help="generate the seeded offline demo dataset (VOC)")
    p.add_argument("--out", default=".cache/demo-data")
    p.add_argument("--images", type=int, default=2000, help="how many scenes (default 2000, the demo detector's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, help="rendering processes (default: all CPUs; same files for any count)")
    p.add_argument("--min-size", type=int, default=320)
    p.add_argument("--max-size", type=int, default=480)


def _run_demo_data(args) -> int:
    print(json.dumps(generate_dataset(args.out, num_images=args.images, seed=args.seed, min_size=args.min_size,
                                      max_size=args.max_size, workers=args.workers)))
    return 0


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="train (once, cached) the demo RetinaNet (python -m deployer.demo exports it)")
    p.add_argument("--cache-dir", help="default ~/.cache/serverless-detection")


def _run_demo(args) -> int:
    print(f"checkpoint: {ensure_demo_checkpoint(cache_dir=args.cache_dir)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["fit", *argv]
    parser = argparse.ArgumentParser(prog="python -m train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_fit(sub)
    _add_demo_data(sub)
    add_arguments(sub.add_parser("evaluate", help="COCO metrics of a checkpoint, bundle or endpoint"))
    _add_demo(sub)
    args = parser.parse_args(argv)
    try:
        if args.command == "fit":
            return _run_fit(args)
        if args.command == "demo-data":
            return _run_demo_data(args)
        if args.command == "evaluate":
            return run_evaluate(args)
        return _run_demo(args)
    except (DatasetError, ModelError, DetectionError, EndpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; continue with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
