"""COCO metrics (AP, AP50, AP75, AP small/medium/large, AR100, per class) of what you trained or deployed.

Four sources, scored on the same images and ground truth, matched to the dataset's classes by name:

- ``--checkpoint runs/x/checkpoint.pt``   PyTorch, through the Lambda's NumPy pre/postprocessing;
- ``--bundle DIR|s3://...``               an exported bundle through the Lambda core (``detection.pipeline``);
- ``--endpoint URL``                      a deployed API: ``POST {URL}/detect`` with the raw JPEG/PNG bytes
  (``?threshold=&max_detections=`` in the query string), ``--concurrency`` requests in flight;
- ``--detections run.json``               a COCO detections file (``python -m batch`` writes one per run):
  its images are matched to the ground truth's by file name, its categories by name.

All three use ``--threshold`` (default 0.05) and ``--max-detections`` (default 100), so their APs compare.
The images are the validation split a checkpoint was trained with (same ``--seed``/``--val-fraction``
defaults as ``python -m train fit``), or ``--split all``.

    python -m train.evaluate --checkpoint runs/demo/checkpoint.pt --data .cache/demo --report eval.json
    python -m train.evaluate --bundle dist/demo-bundle --data .cache/demo
    python -m train.evaluate --endpoint http://127.0.0.1:3000 --data .cache/demo --concurrency 4
    python -m train.evaluate --detections detections-run.json --data .cache/demo --split all

Example:
    >>> # report = evaluate(source=BundleSource("dist/bundle"), records=val, classes=classes)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from detection.errors import DetectionError

from .datasets import DatasetError, ImageRecord, load_dataset, split_records
from .metrics import EVAL_MAX_DETECTIONS, EVAL_SCORE_THRESHOLD, coco_metrics, format_table


class EndpointError(RuntimeError):
    """The endpoint answered with an error or something that is not a detection response."""


# ---------------------------------------------------------------- sources: records -> {image_id: [det]}


def detect_checkpoint(path: str | Path, records: Sequence[ImageRecord], *, threshold: float, max_detections: int,
                      batch_size: int = 8, progress: bool = True) -> tuple[dict, dict]:
    """PyTorch checkpoint -> detections (and a description of the model)."""
    try:  # lazy: pulls torch; --bundle and --endpoint run in the deploy venv, which has none
        from .checkpoint import load_checkpoint, model_from_checkpoint
        from .predict import decode_like_lambda, detections_as_dicts, serving_manifest, torch_detect
    except ModuleNotFoundError as error:
        if error.name != "torch":
            raise
        raise ValueError("--checkpoint needs PyTorch, which this environment lacks: run it with .venv/bin/python "
                         "(./setup.sh dev), or score the exported bundle with --bundle") from None

    checkpoint = load_checkpoint(path)
    model = model_from_checkpoint(checkpoint)
    manifest = serving_manifest(arch=checkpoint["arch"], input_size=checkpoint["input_size"],
                                preprocessing=checkpoint["preprocessing"], output_format=checkpoint["output_format"])
    detections = {}
    for start in _progress(range(0, len(records), batch_size), progress, "checkpoint"):
        chunk = records[start:start + batch_size]
        images = [decode_like_lambda(r.path.read_bytes(), manifest=manifest) for r in chunk]
        results = torch_detect(model, images, arch=checkpoint["arch"], manifest=manifest,
                               class_map=checkpoint["class_map"], score_threshold=threshold,
                               max_detections=max_detections)
        for record, dets in zip(chunk, results):
            detections[record.image_id] = detections_as_dicts(dets)
    return detections, {"kind": "checkpoint", "path": str(path), "arch": checkpoint["arch"],
                        "epoch": checkpoint.get("epoch"), "class_map": checkpoint["class_map"]}


def bundle_detector(uri: str | Path):
    """The Lambda core's ``Detector`` for a bundle directory or s3:// URI (the one way to run a bundle)."""
    from detection.pipeline import Detector  # lazy: pulls onnxruntime; --checkpoint and python -m train must not

    return Detector.from_uri(str(uri))


def detect_bundle(uri: str | Path, records: Sequence[ImageRecord], *, threshold: float, max_detections: int,
                  progress: bool = True) -> tuple[dict, dict]:
    """Exported bundle through ``Detector.detect_bytes`` on the image file's bytes, as the Lambda gets them."""
    detector = bundle_detector(uri)
    detections = {}
    for record in _progress(records, progress, "bundle"):
        body = detector.detect_bytes(record.path.read_bytes(), threshold=threshold, max_detections=max_detections)
        detections[record.image_id] = parse_detections(body)
    return detections, {"kind": "bundle", "uri": str(uri), "model": detector.model_info}


def post_image(url: str, data: bytes, *, threshold: float, max_detections: int, timeout: float = 60.0,
               retries: int = 2) -> dict:
    """``POST {url}/detect`` with the raw image; the parsed JSON body. Retries 429/5xx twice with backoff."""
    query = urllib.parse.urlencode({"threshold": threshold, "max_detections": max_detections})
    target = f"{url.rstrip('/')}/detect?{query}"
    content_type = "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
    for attempt in range(retries + 1):
        request = urllib.request.Request(target, data=data, method="POST", headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", "replace")[:300]
            if exc.code in (429, 500, 502, 503, 504) and attempt < retries:
                time.sleep(0.5 * 2 ** attempt)
                continue
            raise EndpointError(f"{target} answered HTTP {exc.code}: {body}") from None
        except urllib.error.URLError as exc:
            if attempt < retries:
                time.sleep(0.5 * 2 ** attempt)
                continue
            raise EndpointError(f"cannot reach {target}: {exc.reason}") from None
        except json.JSONDecodeError:
            raise EndpointError(f"{target} did not return JSON") from None
    raise EndpointError(f"{target}: no answer")  # unreachable: the loop returns or raises


def detect_endpoint(url: str, records: Sequence[ImageRecord], *, threshold: float, max_detections: int,
                    concurrency: int = 4, timeout: float = 60.0, progress: bool = True) -> tuple[dict, dict]:
    """Deployed endpoint over HTTP, ``concurrency`` requests in flight; latency percentiles in the info."""
    def one(record: ImageRecord):
        start = time.perf_counter()
        body = post_image(url, record.path.read_bytes(), threshold=threshold, max_detections=max_detections,
                          timeout=timeout)
        return record.image_id, parse_detections(body), (time.perf_counter() - start) * 1000.0, body.get("model")

    detections, latencies, model = {}, [], None
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for image_id, dets, ms, info in _progress(pool.map(one, records), progress, "endpoint", total=len(records)):
            detections[image_id] = dets
            latencies.append(ms)
            model = model or info
    wall = time.perf_counter() - started
    latencies.sort()
    pick = lambda q: round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1) if latencies else None  # noqa: E731
    return detections, {"kind": "endpoint", "url": url, "concurrency": concurrency, "model": model,
                        "latency_ms": {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99)},
                        "images_per_s": round(len(records) / wall, 2) if wall > 0 else None}


def read_coco_detections(path: str | Path, records: Sequence[ImageRecord], *, threshold: float,
                         max_detections: int, progress: bool = True) -> tuple[dict, dict]:
    """A COCO file with scored annotations -> detections per record (matched by file name; a record the file
    does not have gets none, as an image the run missed)."""
    coco = json.loads(Path(path).read_text())
    names = {c["id"]: c["name"] for c in coco.get("categories", [])}
    by_name: dict[str, int] = {}
    for image in coco.get("images", []):
        name = Path(image["file_name"]).name
        if name in by_name:
            raise ValueError(f"{path}: two images are named {name}; file names must be unique to match ground truth")
        by_name[name] = image["id"]
    found: dict[int, list[dict]] = {}
    for ann in coco.get("annotations", []):
        if ann.get("score", 1.0) < threshold:
            continue
        x, y, w, h = ann["bbox"]
        found.setdefault(ann["image_id"], []).append(
            {"label": names.get(ann["category_id"], str(ann["category_id"])), "score": float(ann.get("score", 1.0)),
             "box": [float(x), float(y), float(x + w), float(y + h)]})
    detections = {}
    for record in records:
        dets = sorted(found.get(by_name.get(record.path.name), []), key=lambda d: -d["score"])
        detections[record.image_id] = dets[:max_detections]
    matched = sum(record.path.name in by_name for record in records)
    return detections, {"kind": "detections", "path": str(path), "model": (coco.get("info") or {}).get("model"),
                        "matched_images": matched}


def parse_detections(body: dict) -> list[dict]:
    """Response body -> ``[{"label", "score", "box": [x1, y1, x2, y2]}]`` (box as a list or x1/y1/x2/y2 keys)."""
    if not isinstance(body, dict) or not isinstance(body.get("detections"), list):
        raise EndpointError(f"response has no \"detections\" list: {str(body)[:200]}")
    out = []
    for det in body["detections"]:
        box = det.get("box")
        if isinstance(box, dict):
            box = [box[k] for k in ("x1", "y1", "x2", "y2")]
        out.append({"label": det["label"], "score": float(det["score"]), "box": [float(v) for v in box]})
    return out


# ---------------------------------------------------------------- evaluation + report


def select_records(data: str, *, split: str, seed: int, val_fraction: float, images_dir: str | None = None,
                   classes: Sequence[str] | None = None):
    dataset = load_dataset(data, classes=classes, images_dir=images_dir)
    if split == "all":
        return dataset, list(dataset.records)
    train, val = split_records(dataset.records, val_fraction=val_fraction, seed=seed)
    return dataset, (val if split == "val" else train)


def evaluate(*, checkpoint: str | None = None, bundle: str | None = None, endpoint: str | None = None,
             detections_file: str | None = None, data: str, split: str = "val", seed: int = 0, val_fraction: float = 0.2,
             images_dir: str | None = None, threshold: float = EVAL_SCORE_THRESHOLD,
             max_detections: int = EVAL_MAX_DETECTIONS, concurrency: int = 4, progress: bool = True) -> dict:
    """One JSON-able report: metrics, per-class AP, the source, the images scored, timing."""
    if sum(x is not None for x in (checkpoint, bundle, endpoint, detections_file)) != 1:
        raise ValueError("give exactly one of --checkpoint, --bundle, --endpoint, --detections")
    dataset, records = select_records(data, split=split, seed=seed, val_fraction=val_fraction,
                                      images_dir=images_dir)
    if not records:
        raise DatasetError(f"the {split} split of {data} is empty")
    start = time.perf_counter()
    kwargs = {"threshold": threshold, "max_detections": max_detections, "progress": progress}
    if checkpoint is not None:
        detections, info = detect_checkpoint(checkpoint, records, **kwargs)
    elif bundle is not None:
        detections, info = detect_bundle(bundle, records, **kwargs)
    elif detections_file is not None:
        detections, info = read_coco_detections(detections_file, records, **kwargs)
    else:
        detections, info = detect_endpoint(endpoint, records, concurrency=concurrency, **kwargs)
    seconds = time.perf_counter() - start
    metrics = coco_metrics(records, dataset.classes, detections)
    return {"source": info, "data": str(data), "split": split, "seed": seed, "val_fraction": val_fraction,
            "images": len(records), "objects": sum(len(r.objects) for r in records),
            "threshold": threshold, "max_detections": max_detections, "seconds": round(seconds, 2),
            "metrics": metrics}


def _progress(iterable, enabled: bool, desc: str, total: int | None = None):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="train checkpoint (.pt)")
    source.add_argument("--bundle", help="exported bundle directory or s3:// URI")
    source.add_argument("--endpoint", help="deployed API base URL; images are POSTed to URL/detect")
    source.add_argument("--detections", help="COCO detections file, e.g. from python -m batch")
    parser.add_argument("--data", required=True, help="VOC folder or COCO .json with the ground truth")
    parser.add_argument("--images", dest="images_dir", help="image folder for COCO JSON")
    parser.add_argument("--split", choices=("val", "train", "all"), default="val")
    parser.add_argument("--seed", type=int, default=0, help="split seed (as in training)")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="as in training")
    parser.add_argument("--threshold", type=float, default=EVAL_SCORE_THRESHOLD)
    parser.add_argument("--max-detections", type=int, default=EVAL_MAX_DETECTIONS)
    parser.add_argument("--concurrency", type=int, default=4, help="endpoint requests in flight")
    parser.add_argument("--report", help="write the JSON report here")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def run(args: argparse.Namespace) -> int:
    report = evaluate(checkpoint=args.checkpoint, bundle=args.bundle, endpoint=args.endpoint,
                      detections_file=args.detections, data=args.data,
                      split=args.split, seed=args.seed, val_fraction=args.val_fraction, images_dir=args.images_dir,
                      threshold=args.threshold, max_detections=args.max_detections, concurrency=args.concurrency,
                      progress=not args.no_progress)
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=2, default=str))
    source = report["source"]
    title = (f"{source['kind']} {source.get('path') or source.get('uri') or source.get('url')}: "
             f"{report['images']} {report['split']} images, {report['objects']} objects, {report['seconds']} s")
    print(format_table(report["metrics"], title=title))
    if source["kind"] == "endpoint":
        print(f"latency ms {source['latency_ms']}  throughput {source['images_per_s']} images/s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__,
                                                   formatter_class=argparse.RawDescriptionHelpFormatter))
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (DatasetError, DetectionError, EndpointError, ValueError) as exc:  # ValueError covers ModelError
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
