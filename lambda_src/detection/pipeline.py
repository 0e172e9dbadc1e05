"""One detector: bundle + ONNX Runtime session, and the whole path image bytes -> response body.

Everything that serves a bundle goes through ``Detector``: the Lambda handler, the SageMaker entry point,
export's bring-your-own check, evaluation and the benchmarks.

Example:
    >>> # detector = Detector.from_uri("s3://models/dfine-s/")       # or a local bundle directory
    >>> # body = detector.detect_bytes(open("photo.jpg", "rb").read(), threshold=0.4)
    >>> # body["detections"][0] -> {"label": "person", "class_id": 1, "score": 0.93, "box": [...]}
"""

from __future__ import annotations

import base64
import os
import time
from typing import Collection, Mapping, Sequence

import numpy as np

from . import session as ort_session
from .annotate import draw_detections, jpeg_within
from .bundle import Bundle
from .errors import BadRequest, DetectionError
from .fetch import fetch_bundle
from .image import DEFAULT_MAX_PIXELS, DecodedImage, decode_image
from .manifest import Manifest
from .postprocess import Detection, postprocess
from .preprocess import Geometry, preprocess


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000.0, 2)


class BaseDetector:
    """What every detector shares: the bundle's description, option checks, decoding and the response body.

    Subclasses implement ``detect_array``: ``Detector`` runs ONNX Runtime here, ``remote.RemoteDetector``
    sends the resized image to a SageMaker endpoint. Both answer with the same body.
    """

    def __init__(self, manifest: Manifest, class_map: Mapping[int, str], *, draft: bool = True,
                 max_pixels: int = DEFAULT_MAX_PIXELS):
        self.manifest = manifest
        self.class_map = dict(class_map)
        self.draft = draft
        self.max_pixels = max_pixels
        self._class_names = set(self.class_map.values())

    @property
    def model_info(self) -> dict:
        m = self.manifest
        return {
            "name": m.name,
            "sha256": m.model_sha256,
            "architecture": m.provenance.get("architecture"),
            "input_size": [m.input.height, m.input.width],
            "output_format": m.output.format,
        }

    def check_classes(self, classes: Collection[str] | None) -> None:
        if classes is None:
            return
        unknown = sorted(set(classes) - self._class_names)
        if unknown:
            known = ", ".join(sorted(self._class_names)[:40])
            raise BadRequest(f"unknown class name(s) {', '.join(unknown)}; this model knows: {known}")

    def decode(self, data: bytes) -> DecodedImage:
        """Decode, letting the JPEG decoder shrink big photos to what the model's input needs (``draft``)."""
        spec = self.manifest.input
        return decode_image(data, max_pixels=self.max_pixels,
                            draft_size=(spec.width, spec.height) if self.draft else None,
                            keep_aspect=self.manifest.preprocessing.resize == "letterbox")

    def prepare(self, array: np.ndarray, *, original_size: tuple[int, int] | None
                ) -> tuple[np.ndarray, Geometry]:
        """RGB uint8 (H, W, 3) -> what ``run_model`` takes, and the geometry to map boxes back."""
        raise NotImplementedError

    def run_model(self, model_input: np.ndarray) -> dict[str, np.ndarray]:
        """The model's raw outputs by name."""
        raise NotImplementedError

    def run_models(self, model_inputs: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """The raw outputs of several prepared inputs, in order: one ``run_model`` each unless the model takes
        a batch (``Detector``)."""
        return [self.run_model(model_input) for model_input in model_inputs]

    def read_outputs(self, outputs: dict[str, np.ndarray], **kwargs) -> list[Detection]:
        """``postprocess`` with this bundle's manifest and class map (a hook for error translation)."""
        return postprocess(outputs, manifest=self.manifest, class_map=self.class_map, **kwargs)

    def detect_array(
        self,
        array: np.ndarray,
        *,
        original_size: tuple[int, int] | None = None,
        threshold: float | None = None,
        classes: Collection[str] | None = None,
        max_detections: int | None = None,
    ) -> tuple[list[Detection], dict[str, float]]:
        """RGB uint8 (H, W, 3) -> detections in ``original_size`` pixels, and the step timings in ms
        (``preprocess``, ``inference``, ``postprocess``)."""
        return self.detect_arrays([array], original_sizes=[original_size], threshold=threshold, classes=classes,
                                  max_detections=max_detections)[0]

    def detect_arrays(
        self,
        arrays: Sequence[np.ndarray],
        *,
        original_sizes: Sequence[tuple[int, int] | None] | None = None,
        threshold: float | None = None,
        classes: Collection[str] | None = None,
        max_detections: int | None = None,
    ) -> list[tuple[list[Detection], dict[str, float]]]:
        """``detect_array`` for several images, with one model run where the model takes a batch (the S3 jobs'
        path); each image's ``inference`` timing is its share of the run."""
        self.check_classes(classes)
        original_sizes = original_sizes or [None] * len(arrays)
        prepared, preprocess_ms = [], []
        for array, original_size in zip(arrays, original_sizes):
            t0 = time.perf_counter()
            prepared.append(self.prepare(array, original_size=original_size))
            preprocess_ms.append(_ms(t0, time.perf_counter()))
        t1 = time.perf_counter()
        outputs = self.run_models([model_input for model_input, _ in prepared])
        inference_share = _ms(t1, time.perf_counter()) / max(1, len(arrays))
        results = []
        for (_, geometry), image_outputs, preprocess_time in zip(prepared, outputs, preprocess_ms):
            t2 = time.perf_counter()
            detections = self.read_outputs(image_outputs, geometry=geometry, score_threshold=threshold,
                                           classes=classes, max_detections=max_detections)
            results.append((detections, {"preprocess": preprocess_time, "inference": round(inference_share, 2),
                                         "postprocess": _ms(t2, time.perf_counter())}))
        return results

    def detect_bytes(
        self,
        data: bytes,
        *,
        threshold: float | None = None,
        classes: Collection[str] | None = None,
        max_detections: int | None = None,
        annotate: bool = False,
    ) -> dict:
        """Image bytes -> the response body (see README: detections, image, model, timings_ms)."""
        self.check_classes(classes)
        start = time.perf_counter()
        decoded = self.decode(data)
        decode_ms = _ms(start, time.perf_counter())
        original = (decoded.original_width, decoded.original_height)
        detections, timings = self.detect_array(decoded.array, original_size=original, threshold=threshold,
                                                classes=classes, max_detections=max_detections)
        body = self._body(decoded, detections)
        if annotate:
            drawn = draw_detections(decoded.array, detections, original_size=original)
            body["annotated_image"] = base64.b64encode(jpeg_within(drawn)).decode("ascii")
        body["timings_ms"] = {"decode": decode_ms, **timings, "total": _ms(start, time.perf_counter())}
        return body

    def detect_many(
        self,
        images: Sequence[bytes],
        *,
        batch_size: int = 1,
        threshold: float | None = None,
        classes: Collection[str] | None = None,
        max_detections: int | None = None,
    ) -> list[dict | DetectionError]:
        """One response body (as ``detect_bytes``, without annotation) or the ``DetectionError`` of its image,
        per image, in order. Where the model takes batches (``takes_batches``), up to ``batch_size`` decoded images
        share one model run; if a shared run fails, its images are retried one by one, so each gets its own
        answer."""
        self.check_classes(classes)
        step = max(1, batch_size) if self.takes_batches else 1
        options = dict(threshold=threshold, classes=classes, max_detections=max_detections)
        results: list[dict | DetectionError] = []
        for first in range(0, len(images), step):
            decoded = []  # (index in results, image, decode ms)
            for data in images[first:first + step]:
                start = time.perf_counter()
                try:
                    image = self.decode(data)
                except DetectionError as error:
                    results.append(error)
                    continue
                decoded.append((len(results), image, _ms(start, time.perf_counter())))
                results.append({})  # filled below
            for (slot, image, decode_ms), found in zip(decoded, self._detect_decoded([d[1] for d in decoded],
                                                                                     options)):
                if isinstance(found, DetectionError):
                    results[slot] = found
                    continue
                detections, timings = found
                body = self._body(image, detections)
                body["timings_ms"] = {"decode": decode_ms, **timings,
                                      "total": round(decode_ms + sum(timings.values()), 2)}
                results[slot] = body
        return results

    def _detect_decoded(self, images: list[DecodedImage], options: dict) -> list:
        """``detect_arrays`` on decoded images; a failed shared run is retried image by image, so one bad run
        costs only its own image."""
        try:
            return self.detect_arrays([image.array for image in images], **options,
                                      original_sizes=[(i.original_width, i.original_height) for i in images])
        except DetectionError as error:
            if len(images) == 1:
                return [error]
            return [self._detect_decoded([image], options)[0] for image in images]

    @property
    def takes_batches(self) -> bool:
        """Whether one model run may take several images (``Detector``: an export made with ``--batch-axis``)."""
        return False

    def _body(self, decoded: DecodedImage, detections: list[Detection]) -> dict:
        return {
            "detections": [d.to_dict() for d in detections],
            "image": {"width": decoded.original_width, "height": decoded.original_height},
            "model": self.model_info,
        }


class Detector(BaseDetector):
    """A loaded bundle run by ONNX Runtime in this process."""

    def __init__(self, bundle: Bundle, *, threads: int | None = None, draft: bool = True,
                 max_pixels: int = DEFAULT_MAX_PIXELS, providers: list[str] | None = None):
        super().__init__(bundle.manifest, bundle.class_map, draft=draft, max_pixels=max_pixels)
        self.bundle = bundle
        self.session = ort_session.create_session(bundle.model_path, threads=threads, providers=providers,
                                                    sha256=bundle.manifest.model_sha256)

    @classmethod
    def from_uri(cls, uri: str | os.PathLike, *, cache_dir: str | os.PathLike = "/tmp/model-bundles",
                 **kwargs) -> "Detector":
        return cls(fetch_bundle(str(uri), cache_dir=cache_dir), **kwargs)

    def prepare(self, array: np.ndarray, *, original_size: tuple[int, int] | None
                ) -> tuple[np.ndarray, Geometry]:
        return preprocess(array, spec=self.manifest.preprocessing, input_spec=self.manifest.input,
                          original_size=original_size)

    def run_model(self, model_input: np.ndarray) -> dict[str, np.ndarray]:
        return ort_session.run(self.session, self.manifest, model_input)

    def run_models(self, model_inputs: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """One ``session.run`` over the stacked inputs when the graph has a batch axis (``export --batch-axis``),
        else one run each."""
        if len(model_inputs) < 2 or not self.takes_batches:
            return super().run_models(model_inputs)
        outputs = self.run_model(np.concatenate(model_inputs, axis=0))
        return [{name: value[i:i + 1] for name, value in outputs.items()} for i in range(len(model_inputs))]

    @property
    def takes_batches(self) -> bool:
        """The graph has a batch axis and its export checked it (``provenance.batch_axis``, the parity gate's
        batch check): a bring-your-own graph with a named first axis is still run one image at a time."""
        return bool(self.manifest.provenance.get("batch_axis")) and ort_session.takes_batches(self.session)
