"""The function's configuration: every environment variable the Lambda reads, read once and validated.

``Settings.from_env()`` is the only place that looks at ``os.environ``; everything else takes a ``Settings``
(tests build one from a plain dict, no patching). A bad value is a deployment fault: ``ConfigError`` names
every offending variable and what to put there, and at import time Lambda reports it as an init error.

Variables:
    MODEL_URI         s3://bucket/prefix/ or a local directory holding model.json, model.onnx, class_map.json
    SCORE_THRESHOLD   default score threshold (overrides the manifest's), 0..1
    MODEL_CACHE_DIR   where S3 bundles are cached (default /tmp/model-bundles)
    MAX_IMAGE_BYTES   largest accepted image (default 20 MiB; Lambda's payload limit is 6 MB: use S3 above)
    MAX_IMAGE_PIXELS  largest accepted image in pixels (default 50 MP), checked before decoding
    JPEG_DRAFT        1 (default) lets the JPEG decoder reduce big photos to the size the model needs
    ORT_THREADS       ONNX Runtime intra-op threads (default: the vCPUs Lambda gives this memory size)
    INFERENCE_BATCH   S3 jobs: images per model run where the graph takes a batch (export --batch-axis), 1..32,
                      or auto (default): 4 with two or more full vCPUs, else 1 (``images_per_run``)
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE  set by Lambda: the function's memory, which fixes its CPU share
    ENDPOINT_NAME     set by Backend=gpu|inferentia: forward to that SageMaker endpoint (detection.remote)
    INPUT_BUCKET      S3 jobs (upload notifications, Distributed Map batches; detection.s3jobs): the bucket
    INPUT_PREFIX      they read images under, and the prefix in it that results go to:
    OUTPUT_PREFIX     s3://INPUT_BUCKET/INPUT_PREFIX<k> -> s3://INPUT_BUCKET/OUTPUT_PREFIX<k>.json (unset: no jobs)

Example:
    >>> settings = Settings.from_env({"MODEL_URI": "s3://models/demo/", "SCORE_THRESHOLD": "0.4"})
    >>> settings.model_uri, settings.score_threshold, settings.max_image_bytes
    ('s3://models/demo/', 0.4, 20971520)
    >>> Settings.from_env({"ORT_THREADS": "zero"})
    Traceback (most recent call last):
    ...
    detection.errors.ConfigError: invalid environment: ORT_THREADS must be a positive integer, got 'zero'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Mapping, TypeVar

from .errors import ConfigError
from .events import DEFAULT_MAX_IMAGE_BYTES
from .image import DEFAULT_MAX_PIXELS
from .s3jobs import Layout

T = TypeVar("T")

DEFAULT_CACHE_DIR = "/tmp/model-bundles"
MAX_INFERENCE_BATCH = 32  # a batch's tensors and activations share the function's memory
# INFERENCE_BATCH=auto: python -m bench, "Batched inference" (2026-12-02): 4 images per run were 1.05-1.11x the
# images/s of one by one with 2 ORT threads and 0.89-0.96x with 1, for D-FINE-N/S at 640
AUTO_INFERENCE_BATCH = 4
MB_PER_VCPU = 1769  # Lambda: CPU in proportion to memory, one full vCPU per 1,769 MB


@dataclass(frozen=True)
class Settings:
    model_uri: str = ""
    endpoint_name: str = ""
    score_threshold: float | None = None
    model_cache_dir: str = DEFAULT_CACHE_DIR
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    jpeg_draft: bool = True
    ort_threads: int | None = None
    inference_batch: int | None = None  # None: auto
    function_memory_mb: int | None = None
    input_bucket: str = ""
    input_prefix: str = ""
    output_prefix: str = ""

    @property
    def s3_layout(self) -> Layout | None:
        """Where S3 jobs read and write; None when OUTPUT_PREFIX is unset (the function takes no S3 jobs)."""
        if not self.output_prefix:
            return None
        return Layout(input_prefix=self.input_prefix, output_prefix=self.output_prefix,
                      bucket=self.input_bucket or None)

    def images_per_run(self, *, threads: int) -> int:
        """INFERENCE_BATCH, or for auto: ``AUTO_INFERENCE_BATCH`` when ``threads`` ORT threads have two full
        vCPUs under them (on Lambda the memory size says how many; elsewhere each thread has a CPU), else 1.

        Example:
            >>> Settings.from_env({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048"}).images_per_run(threads=2)
            1
            >>> Settings.from_env({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3538"}).images_per_run(threads=2)
            4
        """
        if self.inference_batch is not None:
            return self.inference_batch
        vcpus = threads if self.function_memory_mb is None else min(threads, self.function_memory_mb // MB_PER_VCPU)
        return AUTO_INFERENCE_BATCH if vcpus >= 2 else 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Read and validate ``environ`` (default ``os.environ``); unset or blank variables take defaults."""
        reader = _Reader(os.environ if environ is None else environ)
        settings = cls(
            model_uri=reader.text("MODEL_URI"),
            endpoint_name=reader.text("ENDPOINT_NAME"),
            score_threshold=reader.parse("SCORE_THRESHOLD", _fraction, None),
            model_cache_dir=reader.text("MODEL_CACHE_DIR") or DEFAULT_CACHE_DIR,
            max_image_bytes=reader.parse("MAX_IMAGE_BYTES", _positive_int, DEFAULT_MAX_IMAGE_BYTES),
            max_image_pixels=reader.parse("MAX_IMAGE_PIXELS", _positive_int, DEFAULT_MAX_PIXELS),
            jpeg_draft=reader.parse("JPEG_DRAFT", _flag, True),
            ort_threads=reader.parse("ORT_THREADS", _positive_int, None),
            inference_batch=reader.parse("INFERENCE_BATCH", _batch_size, None),
            function_memory_mb=reader.parse("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", _positive_int, None),
            input_bucket=reader.text("INPUT_BUCKET"),
            input_prefix=reader.text("INPUT_PREFIX"),
            output_prefix=reader.text("OUTPUT_PREFIX"),
        )
        try:
            settings.s3_layout
        except ConfigError as exc:
            reader.problems.append(exc.message)
        if reader.problems:
            raise ConfigError("invalid environment: " + "; ".join(reader.problems))
        return settings


class _Reader:
    """Collects every problem so one failed deploy names all bad variables at once."""

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ
        self.problems: list[str] = []

    def text(self, name: str) -> str:
        return str(self.environ.get(name, "")).strip()

    def parse(self, name: str, convert: Callable[[str], T], default: T) -> T:
        raw = self.text(name)
        if not raw:
            return default
        try:
            return convert(raw)
        except ValueError as exc:
            self.problems.append(f"{name} must be {exc}, got {raw!r}")
            return default


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError("a positive integer")
    return value


def _batch_size(raw: str) -> int | None:
    if raw.lower() == "auto":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_INFERENCE_BATCH:
        raise ValueError(f"auto or an integer from 1 to {MAX_INFERENCE_BATCH}")
    return value


def _fraction(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise ValueError("a number between 0 and 1")
    return value


def _flag(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("1 or 0")
