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
from typing import Collection, Mapping

import numpy as np

from . import session as ort_session
from .annotate import draw_detections, jpeg_within
from .bundle import Bundle
from .errors import BadRequest
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
        self.check_classes(classes)
        t0 = time.perf_counter()
        model_input, geometry = self.prepare(array, original_size=original_size)
        t1 = time.perf_counter()
        outputs = self.run_model(model_input)
        t2 = time.perf_counter()
        detections = self.read_outputs(outputs, geometry=geometry, score_threshold=threshold, classes=classes,
                                       max_detections=max_detections)
        t3 = time.perf_counter()
        return detections, {"preprocess": _ms(t0, t1), "inference": _ms(t1, t2), "postprocess": _ms(t2, t3)}

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
        decoded_at = time.perf_counter()
        original = (decoded.original_width, decoded.original_height)
        detections, timings = self.detect_array(decoded.array, original_size=original, threshold=threshold,
                                                classes=classes, max_detections=max_detections)
        body = {
            "detections": [d.to_dict() for d in detections],
            "image": {"width": original[0], "height": original[1]},
            "model": self.model_info,
        }
        if annotate:
            drawn = draw_detections(decoded.array, detections, original_size=original)
            body["annotated_image"] = base64.b64encode(jpeg_within(drawn)).decode("ascii")
        end = time.perf_counter()
        body["timings_ms"] = {"decode": _ms(start, decoded_at), **timings, "total": _ms(start, end)}
        return body


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
