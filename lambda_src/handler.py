"""AWS Lambda entry point (``handler.handler``): event -> image -> detections -> response.

Configuration comes from the environment, read once into ``detection.settings.Settings`` (the variables and
their defaults are listed there). ``Service`` holds one container's state (settings, the detector loaded
once; S3 reads go through ``detection.store``); tests build their own ``Service(Settings.from_env({...}))``.
"""

from __future__ import annotations

import json
import random
import sys
import time
import traceback

from detection.fetch import BundlePrefetch
from detection.settings import Settings

SETTINGS = Settings.from_env()
# Cold start: the bundle download (S3, hashed on the way) runs in a thread from here, overlapping the imports
# below (onnxruntime, the pipeline) and boto3's own; the detector waits for it (measured by bench: cold start
# with the fetch).
PREFETCH = (BundlePrefetch(SETTINGS.model_uri, cache_dir=SETTINGS.model_cache_dir)
            if SETTINGS.model_uri and not SETTINGS.endpoint_name else None)

import numpy as np  # noqa: E402

from detection import s3jobs, store  # noqa: E402
from detection.errors import DetectionError, InternalError  # noqa: E402
from detection.events import JOB_KINDS, Options, Request, answers_http, event_kind, parse_event  # noqa: E402
from detection.fetch import confirm_intact, fetch_bundle  # noqa: E402
from detection.pipeline import BaseDetector, Detector  # noqa: E402
from detection.remote import RemoteDetector, sagemaker_runtime_client  # noqa: E402
from detection.response import respond  # noqa: E402
from detection.telemetry import request_record  # noqa: E402
from snapshot_restore_py import register_after_restore, register_before_snapshot  # noqa: E402 (Lambda's runtime)


# An unexpected error's record keeps its innermost frames and stays, message included, inside the 4 KB of log that
# Invoke's LogType=Tail returns (Python 3.13 tracebacks add caret lines: frames alone do not bound the size).
TRACE_FRAMES = 8
TRACE_CHARS = 2000
ERROR_MESSAGE_CHARS = 1000


def _log(record: dict) -> None:
    sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class Service:
    """One container: ``handle(event, context)`` answers every event shape; the model loads on first use
    (at import when MODEL_URI is set: Lambda's init phase)."""

    def __init__(self, settings: Settings, *, prefetch: BundlePrefetch | None = None):
        self.settings = settings
        self._prefetch = prefetch  # the bundle already on its way (module import), else fetched on first use
        self._detector: BaseDetector | None = None
        self._cold_start = True  # until the first request of this container

    def detector(self) -> BaseDetector:
        if self._detector is None:
            s = self.settings
            if not s.model_uri:
                raise RuntimeError("MODEL_URI is not set: point it at s3://bucket/prefix/ or a bundle directory")
            if s.endpoint_name:  # Backend=gpu|inferentia: same interface and response, the model runs there
                self._detector = RemoteDetector.from_uri(s.model_uri, endpoint_name=s.endpoint_name,
                                                         draft=s.jpeg_draft, max_pixels=s.max_image_pixels)
            else:
                prefetch, self._prefetch = self._prefetch, None
                bundle = (prefetch.result() if prefetch is not None and prefetch.uri == s.model_uri
                          else fetch_bundle(s.model_uri, cache_dir=s.model_cache_dir))
                self._detector = Detector(bundle, threads=s.ort_threads, draft=s.jpeg_draft,
                                          max_pixels=s.max_image_pixels)
        return self._detector

    # -- SnapStart (template SnapStart=true): the runtime calls these around the snapshot of the init phase

    def before_snapshot(self) -> None:
        """Load the model and run it once, so every environment restored from the snapshot starts warm
        (ONNX Runtime allocates its buffers on the first run)."""
        if not self.settings.model_uri:
            return
        detector = self.detector()
        if isinstance(detector, Detector):
            spec = detector.manifest.input
            detector.detect_array(np.full((spec.height, spec.width, 3), 114, np.uint8))
        _log({"level": "INFO", "message": "before_snapshot", "model": detector.model_info})

    def after_restore(self) -> None:
        """What a restored snapshot needs: fresh clients (connections and credentials were captured in the
        snapshot), fresh randomness (every restored copy would repeat the same sequence), and the bundle in
        /tmp confirmed intact (a stat against the marker written when it was verified, a re-hash without one);
        a damaged bundle is dropped so this environment loads it again on its next request."""
        store.reset_client()
        random.seed()
        np.random.seed()
        detector, intact = self._detector, None
        if isinstance(detector, RemoteDetector):
            detector.client = sagemaker_runtime_client()
        elif isinstance(detector, Detector):
            intact = confirm_intact(detector.bundle, cache_dir=self.settings.model_cache_dir)
            if not intact:
                self._detector = None
        _log({"level": "INFO" if intact is not False else "WARNING", "message": "after_restore",
              "bundle_intact": intact})

    def detect(self, request: Request) -> dict:
        detector = self.detector()
        image = (request.image if request.image is not None
                 else store.read(request.s3_bucket, request.s3_key, max_bytes=self.settings.max_image_bytes))
        options = request.options
        return detector.detect_bytes(
            image,
            threshold=options.threshold if options.threshold is not None else self.settings.score_threshold,
            classes=options.classes,
            max_detections=options.max_detections,
            annotate=options.annotate,
        )

    def detect_images(self, images, options: Options) -> list:
        """One response body or one DetectionError per image (the S3 jobs' detection step); options that no
        image could satisfy (an unknown class) raise: the whole batch is wrong."""
        threshold = options.threshold if options.threshold is not None else self.settings.score_threshold
        return self.detector().detect_many(images, batch_size=self.images_per_run(), threshold=threshold,
                                           classes=options.classes, max_detections=options.max_detections)

    def images_per_run(self) -> int:
        """INFERENCE_BATCH for this function's model and vCPUs: 1 unless the model takes batches."""
        detector = self.detector()
        if not detector.takes_batches:
            return 1
        return self.settings.images_per_run(threads=detector.session.get_session_options().intra_op_num_threads)

    def handle_job(self, event: dict, kind: str, request_id: str | None) -> dict:
        """Upload notifications and batches: failures raise (Lambda retries them; the Map counts them)."""
        start = time.perf_counter()
        record = {"level": "INFO", "request_id": request_id, "message": kind, "event_kind": kind}

        def log(line: dict) -> None:
            _log({"request_id": request_id, **line})

        try:
            summary = s3jobs.run_job(event, layout=self.settings.s3_layout, s3=store.client(),
                                     detect=self.detect_images, max_bytes=self.settings.max_image_bytes, log=log,
                                     images_per_call=self.images_per_run() if self.settings.s3_layout else 1)
        except Exception as exc:
            record.update(level="ERROR", error_code=type(exc).__name__, error_message=str(exc)[:1000],
                          duration_ms=round((time.perf_counter() - start) * 1000, 2))
            _log(record)
            raise
        counts = summary if kind == "batch" else {"records": summary["records"]}
        record.update({k: v for k, v in counts.items() if isinstance(v, int)},
                      duration_ms=round((time.perf_counter() - start) * 1000, 2))
        _log(record)
        return summary

    def handle(self, event, context) -> dict:
        request_id = getattr(context, "aws_request_id", None)
        kind = event_kind(event)
        if kind in JOB_KINDS:
            self._cold_start = False
            return self.handle_job(event, kind, request_id)
        start = time.perf_counter()
        cold_start, self._cold_start = self._cold_start, False
        fields: dict = {"event_kind": None}
        http = answers_http(event)
        try:
            request = parse_event(event, max_bytes=self.settings.max_image_bytes)
            fields.update(event_kind=request.kind, image_bytes=len(request.image) if request.image else None)
            body = self.detect(request)
            status = 200
            fields.update(image=body["image"], detections=len(body["detections"]), timings_ms=body["timings_ms"])
        except DetectionError as exc:
            status, body = exc.status, exc.to_dict()
            fields.update(error_code=exc.code, error_message=exc.message)
        except Exception as exc:  # our fault: log the trace with the request id, tell the caller only that much
            error = InternalError.for_request(request_id)
            status, body = error.status, error.to_dict()
            fields.update(error_code=type(exc).__name__, error_message=str(exc)[:ERROR_MESSAGE_CHARS],
                          trace=traceback.format_exc(limit=-TRACE_FRAMES)[-TRACE_CHARS:])
        model = self._detector.model_info if self._detector is not None else None
        _log(request_record(request_id=request_id, function_name=getattr(context, "function_name", None),
                            cold_start=cold_start, model=model, status=status, duration_ms=round((time.perf_counter() - start) * 1000, 2), **fields))
        return respond(http=http, status=status, body=body)


SERVICE = Service(SETTINGS, prefetch=PREFETCH)


def handler(event, context):
    return SERVICE.handle(event, context)


register_before_snapshot(SERVICE.before_snapshot)
register_after_restore(SERVICE.after_restore)


if SERVICE.settings.model_uri:
    SERVICE.detector()
