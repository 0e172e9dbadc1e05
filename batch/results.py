"""A finished batch run, read back: the ResultWriter manifest -> counts, failures, and one COCO detections file.

Each child's COMPACT record holds its input (``{"Items": [{"Key": ...}], "BatchInput": ...}``) and, when it
succeeded, the function's summary (``items``, ``succeeded``, ``failures`` with codes, ``skips``); a failed child
has ``Error``/``Cause`` and all its images count as failed. Images that succeeded have a result object at the
stack's key mapping; ``coco_detections`` merges them into one COCO file (images named by their key relative to
the run's prefix, as ``python -m train.evaluate --detections`` matches them to ground truth).

Example:
    >>> counts = RunCounts.from_records(succeeded=[{"Input": {"Items": [{"Key": "in/a.jpg"}, {"Key": "in/b.txt"}]},
    ...     "Output": {"succeeded": 1, "failed": 0, "skipped": 1, "failures": [], "skips": [{"key": "in/b.txt",
    ...     "reason": "not an image"}]}}], failed=[])
    >>> counts.images_succeeded, counts.skipped, counts.done_keys
    (1, 1, ['in/a.jpg'])
"""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunCounts:
    listed: int = 0
    images_succeeded: int = 0
    recorded_failures: list[dict] = field(default_factory=list)  # per image: key, code, message
    skipped: int = 0
    failed_batches: list[dict] = field(default_factory=list)  # per child: items, error, cause
    done_keys: list[str] = field(default_factory=list)

    @classmethod
    def from_records(cls, *, succeeded: list[dict], failed: list[dict]) -> "RunCounts":
        counts = cls()
        for record in succeeded:
            keys = [item["Key"] for item in record["Input"]["Items"]]
            summary = record.get("Output") or {}
            counts.listed += len(keys)
            counts.images_succeeded += summary.get("succeeded", 0)
            counts.skipped += summary.get("skipped", 0)
            counts.recorded_failures += summary.get("failures", [])
            not_done = {f["key"] for f in summary.get("failures", [])} | {s["key"] for s in summary.get("skips", [])}
            counts.done_keys += [key for key in keys if key not in not_done]
        for record in failed:
            items = (record.get("Input") or {}).get("Items") or []
            counts.listed += len(items)
            counts.failed_batches.append({"items": len(items), "first_key": items[0]["Key"] if items else None,
                                          "error": record.get("Error"), "cause": (record.get("Cause") or "")[:300]})
        return counts

    @property
    def images_in_failed_batches(self) -> int:
        return sum(batch["items"] for batch in self.failed_batches)

    def failure_codes(self) -> dict[str, int]:
        return dict(Counter(failure["code"] for failure in self.recorded_failures))

    def describe(self) -> str:
        codes = ", ".join(f"{code} x{n}" for code, n in sorted(self.failure_codes().items())) or "none"
        text = (f"{self.listed} objects listed: {self.images_succeeded} images with results, "
                f"{len(self.recorded_failures)} failed images recorded ({codes}), {self.skipped} skipped")
        if self.failed_batches:
            errors = Counter(batch["error"] for batch in self.failed_batches)
            text += (f", {len(self.failed_batches)} failed batches ({self.images_in_failed_batches} images: "
                     + ", ".join(f"{e} x{n}" for e, n in errors.items()) + "; rerun with --resume)")
        return text


def read_json(s3: Any, bucket: str, key: str) -> Any:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def read_run(s3: Any, *, bucket: str, manifest_key: str) -> RunCounts:
    """Counts of a finished run from its ResultWriter manifest and result files."""
    manifest = read_json(s3, bucket, manifest_key)
    files = manifest["ResultFiles"]
    succeeded = [record for entry in files.get("SUCCEEDED", []) for record in read_json(s3, bucket, entry["Key"])]
    failed = [record for entry in files.get("FAILED", []) for record in read_json(s3, bucket, entry["Key"])]
    return RunCounts.from_records(succeeded=succeeded, failed=failed)


def coco_detections(results: list[tuple[str, dict]], *, source: str) -> dict:
    """``[(file name, result object)]`` -> a COCO file: images, categories (the model's classes), and one
    annotation per detection with its score (bbox ``[x, y, width, height]``).

    Example:
        >>> coco = coco_detections([("a.jpg", {"image": {"width": 4, "height": 3}, "model": {"name": "m"},
        ...     "detections": [{"label": "cat", "class_id": 2, "score": 0.9, "box": [1, 1, 3, 2]}]})], source="s3://b/in/")
        >>> coco["annotations"][0]["bbox"], coco["categories"]
        ([1, 1, 2, 1], [{'id': 2, 'name': 'cat'}])
    """
    images, annotations, categories, model = [], [], {}, None
    for image_id, (file_name, result) in enumerate(sorted(results, key=lambda pair: pair[0]), start=1):
        images.append({"id": image_id, "file_name": file_name, "width": result["image"]["width"],
                       "height": result["image"]["height"]})
        model = model or result.get("model")
        for det in result["detections"]:
            x1, y1, x2, y2 = det["box"]
            categories[det["class_id"]] = det["label"]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": det["class_id"],
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                "score": det["score"], "iscrowd": 0})
    return {"info": {"description": "detections of a batch run", "source": source, "model": model},
            "images": images, "annotations": annotations,
            "categories": [{"id": cid, "name": name} for cid, name in sorted(categories.items())]}


def fetch_results(s3: Any, *, bucket: str, keys: list[str], result_key, workers: int = 8) -> list[tuple[str, dict]]:
    """(key, result object) for every key (``result_key`` maps an image key to its result's key)."""
    def one(key: str) -> tuple[str, dict]:
        return key, read_json(s3, bucket, result_key(key))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, keys))
