"""The demo bundle: ``train``'s cached demo detector exported through the parity gate, for deploys with no
bundle and no reachable published weights.

``ensure_demo_bundle()`` trains the demo checkpoint once (``train.demo.ensure_demo_checkpoint``), exports it
with ``export.api.export_bundle`` (parity gate on demo scenes) and caches the bundle next to it; concurrent
callers serialize on a file lock and ``bundle.done`` is written last, so a half-written bundle is never used.
Building it needs torch (train + export): ``./deploy.sh --train-demo`` runs it in the PyTorch environment,
``python -m deployer.demo --out models/demo`` rebuilds the bundle the repository ships.

Example:
    >>> # bundle_dir = ensure_demo_bundle()   # -> detection.pipeline.Detector.from_uri(bundle_dir)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Callable

DEMO_BUNDLE_NAME = "demo-retinanet"


def ensure_demo_bundle(cache_dir: str | os.PathLike | None = None, *, dataset: dict | None = None,
                       recipe: dict | None = None, log: Callable[[str], None] = print) -> Path:
    """The demo checkpoint exported to a verified bundle directory (cached)."""
    # lazy: train and export pull torch, which the deploy venv (where deployer's modules are imported) lacks
    from export.api import export_bundle
    from export.images import ParityImage
    from train.demo import dataset_key_params, ensure_demo_checkpoint, ensure_demo_dataset, locked

    checkpoint = ensure_demo_checkpoint(cache_dir, dataset=dataset, recipe=recipe, log=log)
    out = checkpoint.parent / "bundle"
    with locked(checkpoint.parent.parent / f"{checkpoint.parent.name}.bundle.lock"):
        done = checkpoint.parent / "bundle.done"
        if (out / "model.json").is_file() and done.is_file():
            return out
        data = ensure_demo_dataset(cache_dir, dataset=dataset)
        scenes = sorted((data / "images").glob("*.jpg"))[-4:]  # demo scenes: the detector finds objects there
        images = [ParityImage(path.name, path.read_bytes()) for path in scenes]
        export_bundle("auto", weights=str(checkpoint), out_dir=out, name=DEMO_BUNDLE_NAME, parity_images=images,
                      provenance={"training_data": dataset_key_params(dataset)}, progress=log)
        done.write_text("ok\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployer.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", help="default ~/.cache/serverless-detection")
    parser.add_argument("--out", type=Path, help="copy the bundle into this folder (replacing a bundle there), "
                                                 "e.g. models/demo, the one ./deploy.sh ships")
    args = parser.parse_args(argv)
    if args.out and args.out.is_dir() and any(args.out.iterdir()) and not (args.out / "model.json").is_file():
        print(f"error: --out {args.out}: not empty and not a bundle folder; pick a new or bundle folder",
              file=sys.stderr)
        return 2
    bundle = ensure_demo_bundle(args.cache_dir)
    if args.out:
        shutil.rmtree(args.out, ignore_errors=True)
        shutil.copytree(bundle, args.out)
        bundle = args.out
    print(f"bundle: {bundle}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
