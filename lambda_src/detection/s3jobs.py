"""Detection over S3 objects: every record of an upload notification, every item of a Distributed Map batch.

Both paths end in the same per-image result object (so a batch run and the upload trigger agree):

    s3://<bucket>/<input prefix><relative key>  ->  s3://<bucket>/<output prefix><relative key>.json

holding ``{"source": {"bucket", "key"}, **<the POST /detect body>}`` (detections, image size, model name +
sha256, timings), or ``{"source": ..., "error": {"code", "message", "status"}}`` for an image that cannot be
read (corrupt, unsupported, too large). Rewriting the same key on a redelivered event or a second run makes
results idempotent.

What happens to an object:

- removals (``ObjectRemoved:*``), folder markers, non-image suffixes, keys outside the input prefix and keys
  under the output prefix (recursion) are skipped with a log line;
- an image we cannot decode is a *recorded failure* (error result object + an entry in the summary);
- anything else (S3 refuses a read or write, the model is broken, ...) raises, so Lambda's asynchronous
  retries and the dead-letter queue (uploads) or the Map's retry and tolerance (batches) see it.

Event shapes: S3 notifications (``{"Records": [{"eventSource": "aws:s3", ...}]}``) and the Distributed Map's
ItemBatcher input ``{"Items": [{"Key": ...}, ...], "BatchInput": {"Bucket": ..., "Options": {...},
"SkipExisting": false}}`` (``Options`` as for POST /detect: threshold, classes, max_detections;
``SkipExisting`` true resumes a run: images whose result object exists are skipped).

Example:
    >>> layout = Layout(input_prefix="images/", output_prefix="detections/")
    >>> layout.result_key("images/2026/cat.jpg")
    'detections/2026/cat.jpg.json'
    >>> layout.skip_reason("detections/2026/cat.jpg.json")
    'under the output prefix detections/ (recursion refused)'
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import unquote_plus

from .errors import BadRequest, ConfigError, DetectionError, NotFound
from .events import Options, event_kind, parse_options
from . import store

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
RESULT_SUFFIX = ".json"
IO_THREADS = 4  # S3 reads ahead / writes behind per invocation
PREFETCH_IMAGES = 4  # images read ahead (at least; a batch more): memory max(4, batch) x MAX_IMAGE_BYTES
MESSAGE_CHARS = 200  # failure messages are cut so a 100-image summary stays far below Step Functions' 256 KB

# images bytes -> one response body or one DetectionError per image (one call, so a batched model can run
# several images at once; per-image errors must be returned, not raised)
DetectImages = Callable[[Sequence[bytes], Options], "list[dict | DetectionError]"]
Log = Callable[[dict], None]


class JobFailed(RuntimeError):
    """Some objects of an event failed for a reason worth retrying; raised after the others are done."""


@dataclass(frozen=True)
class Layout:
    """The function's input prefix and output prefix in its input bucket (``INPUT_BUCKET``; None = any)."""

    input_prefix: str
    output_prefix: str
    bucket: str | None = None

    def __post_init__(self) -> None:
        if not self.output_prefix:
            raise ConfigError("OUTPUT_PREFIX is empty: set it to a folder such as detections/")
        if self.output_prefix.startswith(self.input_prefix):
            raise ConfigError(
                f"OUTPUT_PREFIX {self.output_prefix!r} is under INPUT_PREFIX {self.input_prefix!r}: every result "
                f"would trigger another detection; put the results beside the inputs, not under them")
        if self.input_prefix.startswith(self.output_prefix):
            raise ConfigError(f"INPUT_PREFIX {self.input_prefix!r} is under OUTPUT_PREFIX {self.output_prefix!r}: "
                              f"inputs and results must not share a prefix")

    def result_key(self, key: str) -> str:
        return self.output_prefix + key[len(self.input_prefix):] + RESULT_SUFFIX

    def skip_reason(self, key: str) -> str | None:
        """Why ``key`` gets no result object, or None when it should be processed."""
        if key.startswith(self.output_prefix):
            return f"under the output prefix {self.output_prefix} (recursion refused)"
        if not key.startswith(self.input_prefix):
            return f"outside the input prefix {self.input_prefix}"
        if key.endswith("/"):
            return "a folder marker"
        if not key.lower().endswith(IMAGE_SUFFIXES):
            return f"not an image (suffix not one of {', '.join(IMAGE_SUFFIXES)})"
        return None


@dataclass
class Summary:
    """What one invocation did; ``to_dict`` is the compact result a batch child returns."""

    bucket: str
    items: int = 0
    succeeded: int = 0
    failures: list[dict] = field(default_factory=list)
    skips: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"bucket": self.bucket, "items": self.items, "succeeded": self.succeeded,
                "failed": len(self.failures), "skipped": len(self.skips), "failures": self.failures,
                "skips": self.skips}


# ---------------------------------------------------------------- events


def notification_objects(event: Mapping[str, Any], log: Log) -> list[tuple[str, str]]:
    """(bucket, key) of every ObjectCreated record, in order; other records are logged and skipped."""
    objects = []
    for index, record in enumerate(event["Records"]):
        name = str(record.get("eventName", ""))
        try:
            bucket, key = record["s3"]["bucket"]["name"], unquote_plus(record["s3"]["object"]["key"])
        except (KeyError, TypeError):
            raise BadRequest(f"S3 notification record {index} has no bucket name or object key") from None
        if not name.startswith("ObjectCreated:"):
            log({"level": "INFO", "message": "skipped", "bucket": bucket, "key": key,
                 "reason": f"event {name or '(none)'} is not an upload"})
            continue
        objects.append((bucket, key))
    return objects


def batch_objects(event: Mapping[str, Any]) -> tuple[str, list[str], Options, bool]:
    """(bucket, keys, options, skip_existing) of an ItemBatcher input; ``BadRequest`` says what to send."""
    batch_input = event.get("BatchInput")
    if not isinstance(batch_input, dict) or not isinstance(batch_input.get("Bucket"), str):
        raise BadRequest('BatchInput must be {"Bucket": "<input bucket>", "Options": {...}}')
    keys = []
    for index, item in enumerate(event["Items"]):
        key = item.get("Key") if isinstance(item, dict) else None
        if not isinstance(key, str) or not key:
            raise BadRequest(f"Items[{index}] has no Key: use ItemReader s3:listObjectsV2 items")
        keys.append(key)
    options = batch_input.get("Options") or {}
    if not isinstance(options, dict):
        raise BadRequest("BatchInput.Options must be an object of detection options")
    skip_existing = batch_input.get("SkipExisting", False)
    if not isinstance(skip_existing, bool):
        raise BadRequest("BatchInput.SkipExisting must be true or false")
    return batch_input["Bucket"], keys, parse_options(options), skip_existing


# ---------------------------------------------------------------- processing


def _failure(key: str, error: DetectionError) -> dict:
    return {"key": key, "code": error.code, "status": error.status, "message": error.message[:MESSAGE_CHARS]}


def process_objects(bucket: str, keys: Sequence[str], *, layout: Layout, options: Options, s3,
                    detect: DetectImages, max_bytes: int, log: Log, images_per_call: int = 1,
                    skip_existing: bool = False) -> Summary:
    """Write one result object per image key (see the module docstring for what is skipped, recorded, raised).

    Raises ``JobFailed`` after every key was tried when some failed for a reason other than the image itself.
    """
    summary = Summary(bucket=bucket)
    if layout.bucket is not None and bucket != layout.bucket:
        raise BadRequest(f"this function reads s3://{layout.bucket}/{layout.input_prefix} only, not s3://{bucket}/")
    todo = []
    for key in keys:
        summary.items += 1
        reason = layout.skip_reason(key)
        if reason is None and skip_existing and store.exists(bucket, layout.result_key(key), s3=s3):
            reason = "its result exists (resumed run)"
        if reason is not None:
            summary.skips.append({"key": key, "reason": reason})
            log({"level": "INFO", "message": "skipped", "bucket": bucket, "key": key, "reason": reason})
        else:
            todo.append(key)
    errors: list[str] = []
    # Reads run ahead and writes behind on a few threads, so S3 latency overlaps inference instead of adding
    # to each image's billed duration.
    with ThreadPoolExecutor(max_workers=IO_THREADS) as pool:
        pending = iter(todo)
        reads: deque = deque()

        def read_ahead() -> None:
            key = next(pending, None)
            if key is not None:
                reads.append((key, pool.submit(store.read, bucket, key, max_bytes=max_bytes, s3=s3)))

        for _ in range(max(PREFETCH_IMAGES, images_per_call)):  # a whole batch can be on its way
            read_ahead()
        writes = []
        while reads:
            chunk, images = [], []
            while reads and len(chunk) < images_per_call:
                key, future = reads.popleft()
                read_ahead()
                try:
                    images.append(future.result())
                    chunk.append(key)
                except NotFound as error:  # deleted before we ran: nothing to describe any more
                    summary.skips.append({"key": key, "reason": error.message})
                    log({"level": "INFO", "message": "skipped", "bucket": bucket, "key": key, "reason": error.message})
                except DetectionError as error:
                    if error.status >= 500 or error.status == 403:
                        errors.append(f"{key}: {error.code}: {error.message}")
                    else:
                        _record_failure(summary, bucket, key, error, layout=layout, s3=s3, log=log)
            bodies = detect(images, options) if images else []
            for key, body in zip(chunk, bodies):
                if isinstance(body, DetectionError):
                    if body.status >= 500:
                        errors.append(f"{key}: {body.code}: {body.message}")
                    else:
                        _record_failure(summary, bucket, key, body, layout=layout, s3=s3, log=log)
                    continue
                writes.append(pool.submit(store.write_json, bucket, layout.result_key(key),
                                          {"source": {"bucket": bucket, "key": key}, **body}, s3=s3))
                summary.succeeded += 1
        for write in writes:
            write.result()  # a result that could not be written raises (StorageError): retry the event
    if errors:
        raise JobFailed(f"{len(errors)} of {summary.items} object(s) in s3://{bucket} failed: " + "; ".join(errors[:5]))
    return summary


def _record_failure(summary: Summary, bucket: str, key: str, error: DetectionError, *, layout: Layout, s3,
                    log: Log) -> None:
    summary.failures.append(_failure(key, error))
    store.write_json(bucket, layout.result_key(key), {"source": {"bucket": bucket, "key": key},
                                                        "error": {"code": error.code, "message": error.message,
                                                                  "status": error.status}}, s3=s3)
    log({"level": "WARNING", "message": "image failed", "location": f"s3://{bucket}/{key}",
         "error": error.code, "error_message": error.message})


def run_job(event: Mapping[str, Any], *, layout: Layout | None, s3, detect: DetectImages, max_bytes: int,
            log: Log, images_per_call: int = 1) -> dict:
    """Handle an S3 notification or a batch event; returns the summary (a batch child's output).
    ``detect`` gets up to ``images_per_call`` images at a time."""
    if layout is None:
        raise ConfigError("this function has no S3 input configured (OUTPUT_PREFIX is unset): deploy the "
                                 "stack with InputBucketName and OutputPrefix to process uploads or batches")
    if event_kind(event) == "batch":
        bucket, keys, options, skip_existing = batch_objects(event)
        return process_objects(bucket, keys, layout=layout, options=options, s3=s3, detect=detect,
                               max_bytes=max_bytes, log=log, skip_existing=skip_existing,
                               images_per_call=images_per_call).to_dict()
    by_bucket: dict[str, list[str]] = {}
    for bucket, key in notification_objects(event, log):
        by_bucket.setdefault(bucket, []).append(key)
    summaries, failed = [], []
    for bucket, keys in by_bucket.items():
        try:
            summaries.append(process_objects(bucket, keys, layout=layout, options=Options(), s3=s3,
                                             detect=detect, max_bytes=max_bytes, log=log,
                                             images_per_call=images_per_call).to_dict())
        except JobFailed as error:
            failed.append(str(error))
    if failed:
        raise JobFailed("; ".join(failed))
    return {"records": len(event["Records"]), "buckets": summaries}
