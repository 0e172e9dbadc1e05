"""Detection on a SageMaker endpoint (Backend=gpu|inferentia), same interface and response as ``Detector``.

The Lambda keeps the NumPy half of the pipeline and the endpoint runs only the model:

    Lambda:   decode -> resize to the model's input box -> uint8 (h, w, 3)  --application/x-npy-->
    endpoint: normalize + pad (``preprocess``, no resize needed) -> session  --application/x-npz-->
    Lambda:   postprocess (threshold, classes, max_detections, boxes to original pixels) -> response

Why the tensor and not the image bytes (measured, see sagemaker_entry/README and ``python -m
sagemaker_entry measure``): the request is bounded by the model's input size (640x640 -> 1.2 MB) whatever
the photo (a 20 MB S3 image would break InvokeEndpoint's 6 MB limit, and the endpoint's network isolation
keeps it from reading S3 itself); decode/resize, the CPU-heavy part, scales out with Lambda instead of
queueing on the accelerator instance's 4 vCPUs; and every request option is applied by the same code as on
the Lambda backend. The endpoint also accepts plain images (``sagemaker_entry.inference``) for direct use.

Example:
    >>> import numpy as np
    >>> outputs = decode_outputs(encode_outputs({"boxes": np.zeros((1, 4), np.float32)}, model_sha256="ab"))
    >>> outputs[0]["boxes"].shape, outputs[1]
    ((1, 4), 'ab')
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
from pathlib import Path
from typing import Collection, Mapping

import numpy as np

from .annotate import draw_detections
from .bundle import (CLASS_MAP_FILE, LATEST_POINTER_FILE, MANIFEST_FILE, Manifest, _s3_get, parse_class_map,
                     parse_manifest, split_s3_uri)
from .errors import BadRequest, BundleError, DetectionError
from .image import DEFAULT_MAX_PIXELS, decode_image, encode_jpeg
from .postprocess import postprocess
from .preprocess import Geometry, plan_geometry, resize

TENSOR_CONTENT_TYPE = "application/x-npy"
OUTPUTS_CONTENT_TYPE = "application/x-npz"
SHA_KEY = "__model_sha256__"


class EndpointError(DetectionError):
    """The endpoint answered with an error or with something we cannot read: a deployment fault (502)."""

    status = 502
    code = "EndpointError"


class EndpointUnavailable(DetectionError):
    """The endpoint is missing, starting, throttled or over capacity: retry later (503)."""

    status = 503
    code = "EndpointUnavailable"


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000.0, 2)


# ---------------------------------------------------------------- the wire format


def resize_for_model(array: np.ndarray, *, manifest: Manifest,
                     original_size: tuple[int, int] | None = None) -> tuple[np.ndarray, Geometry]:
    """RGB uint8 (H, W, 3) -> the image resized into the model's input box, rounded to uint8, and its geometry.

    This is ``preprocess`` up to (not including) channel order, normalization and padding, which the
    endpoint applies; the only difference from the Lambda backend is rounding the resized pixels to
    integers (at most 0.5 of 255).

    Example:
        >>> from detection.bundle import parse_manifest, example_manifest
        >>> small, g = resize_for_model(np.zeros((480, 640, 3), np.uint8), manifest=parse_manifest(example_manifest()))
        >>> small.shape, small.dtype.name, g.pad_y
        ((480, 640, 3), 'uint8', 80)
    """
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {array.shape}")
    spec, box = manifest.preprocessing, manifest.input
    height, width = array.shape[:2]
    geometry = plan_geometry(
        source_width=width, source_height=height, input_width=box.width, input_height=box.height,
        resize=spec.resize, pad_position=spec.pad_position,
        original_width=original_size[0] if original_size else None,
        original_height=original_size[1] if original_size else None,
    )
    if (geometry.resized_width, geometry.resized_height) == (width, height) and array.dtype == np.uint8:
        return np.ascontiguousarray(array), geometry
    resized = resize(array, width=geometry.resized_width, height=geometry.resized_height,
                     interpolation=spec.interpolation, antialias=spec.antialias)
    return np.clip(np.rint(resized), 0, 255).astype(np.uint8), geometry


def check_model_image(array: np.ndarray, *, manifest: Manifest) -> None:
    """Refuse (400) an array the endpoint cannot feed without resizing: wrong dtype, shape or size."""
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise BadRequest(f"expected a uint8 (h, w, 3) RGB array, got {array.dtype} {array.shape}")
    height, width = array.shape[:2]
    box = manifest.input
    if not (0 < width <= box.width and 0 < height <= box.height):
        raise BadRequest(f"array is {width}x{height}; this model takes at most {box.width}x{box.height}")
    geometry = plan_geometry(source_width=width, source_height=height, input_width=box.width,
                             input_height=box.height, resize=manifest.preprocessing.resize,
                             pad_position=manifest.preprocessing.pad_position)
    if (geometry.resized_width, geometry.resized_height) != (width, height):
        raise BadRequest(
            f"array is {width}x{height}, not already resized for this model's {box.width}x{box.height} "
            f"{manifest.preprocessing.resize} input (use detection.remote.resize_for_model)"
        )


def encode_array(array: np.ndarray) -> bytes:
    """One array as .npy bytes (no pickle)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def decode_array(data: bytes) -> np.ndarray:
    """.npy bytes -> array; anything else (including pickled objects) is a 400."""
    try:
        return np.load(io.BytesIO(bytes(data)), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BadRequest(f"body is not a .npy array ({TENSOR_CONTENT_TYPE}): {exc}") from None


def encode_outputs(outputs: Mapping[str, np.ndarray], *, model_sha256: str | None) -> bytes:
    """Model outputs (name -> array) and the model's sha256 as uncompressed .npz bytes."""
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(value) for name, value in outputs.items()},
             **{SHA_KEY: np.array(model_sha256 or "")})
    return buffer.getvalue()


def decode_outputs(data: bytes) -> tuple[dict[str, np.ndarray], str]:
    """.npz bytes -> (outputs by name, model sha256)."""
    try:
        with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as archive:
            outputs = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError) as exc:
        raise EndpointError(f"endpoint answered with something that is not {OUTPUTS_CONTENT_TYPE}: {exc}") from None
    sha = outputs.pop(SHA_KEY, np.array(""))
    return outputs, str(sha)


# ---------------------------------------------------------------- manifest without the model


def _read_local_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(f"bundle at {path.parent} has no {path.name} ({what})") from None
    except ValueError as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from None


def load_manifest(uri: str, *, s3_client=None) -> tuple[Manifest, dict[int, str]]:
    """The manifest and class map of the bundle at ``uri`` (directory or s3:// prefix), not its model file:
    the endpoint holds the model, the Lambda needs only what describes it.
    """
    if not uri.startswith("s3://"):
        root = Path(uri)
        manifest = parse_manifest(_read_local_json(root / MANIFEST_FILE, "the manifest"))
        return manifest, parse_class_map(_read_local_json(root / manifest.class_map_file, "the class map"))
    if s3_client is None:
        import boto3

        s3_client = boto3.client("s3")
    bucket, prefix = split_s3_uri(uri)
    prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    raw = _s3_get(s3_client, bucket, prefix + MANIFEST_FILE)
    if raw is None:
        pointer = _s3_get(s3_client, bucket, prefix + LATEST_POINTER_FILE)
        if pointer is None:
            raise BundleError(f"no {MANIFEST_FILE} or {LATEST_POINTER_FILE} under {uri}")
        try:
            bucket, prefix = split_s3_uri(json.loads(pointer)["uri"])
        except (ValueError, KeyError, TypeError):
            raise BundleError(f"{uri}{LATEST_POINTER_FILE} is not {{\"uri\": \"s3://...\"}}") from None
        prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        raw = _s3_get(s3_client, bucket, prefix + MANIFEST_FILE)
        if raw is None:
            raise BundleError(f"s3://{bucket}/{prefix} (from {LATEST_POINTER_FILE}) has no {MANIFEST_FILE}")
    try:
        manifest = parse_manifest(json.loads(raw))
        class_raw = _s3_get(s3_client, bucket, prefix + manifest.class_map_file)
        if class_raw is None:
            raise BundleError(f"s3://{bucket}/{prefix}{manifest.class_map_file} is missing from the bundle")
        return manifest, parse_class_map(json.loads(class_raw))
    except ValueError as exc:
        raise BundleError(f"bundle under s3://{bucket}/{prefix} holds invalid JSON: {exc}") from None


# ---------------------------------------------------------------- the detector


def sagemaker_runtime_client(*, endpoint_url: str | None = None, read_timeout: float = 60.0):
    """boto3 ``sagemaker-runtime`` client; ``endpoint_url`` (or AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME) for tests."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=read_timeout)
    return boto3.client("sagemaker-runtime", endpoint_url=endpoint_url, config=config)


def _endpoint_failure(exc, endpoint_name: str) -> DetectionError:
    error = exc.response.get("Error", {})
    code, message = error.get("Code", ""), error.get("Message", str(exc))
    if code == "ModelError":
        original = exc.response.get("OriginalStatusCode") or error.get("OriginalStatusCode")
        return EndpointError(f"endpoint {endpoint_name} failed (status {original}): {exc.response.get('OriginalMessage') or message}")
    if code in ("ValidationError", "ModelNotReadyException", "ServiceUnavailable", "ThrottlingException",
                "InternalDependencyException", "InternalFailure"):
        return EndpointUnavailable(f"endpoint {endpoint_name} is not available ({code}): {message}")
    return EndpointError(f"endpoint {endpoint_name}: {code or type(exc).__name__}: {message}")


class RemoteDetector:
    """``Detector``'s interface over a SageMaker endpoint serving the same bundle.

    Example:
        >>> # detector = RemoteDetector.from_uri("s3://models/dfine-s/", endpoint_name="det-gpu")
        >>> # detector.detect_bytes(open("photo.jpg", "rb").read(), threshold=0.4)["detections"]
    """

    def __init__(self, manifest: Manifest, class_map: Mapping[int, str], *, endpoint_name: str, client=None,
                 endpoint_url: str | None = None, draft: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS):
        if not endpoint_name:
            raise ValueError("endpoint_name is empty: set ENDPOINT_NAME to the SageMaker endpoint's name")
        self.manifest = manifest
        self.class_map = dict(class_map)
        self.endpoint_name = endpoint_name
        self.client = client or sagemaker_runtime_client(endpoint_url=endpoint_url)
        self.draft = draft
        self.max_pixels = max_pixels
        self._class_names = set(self.class_map.values())

    @classmethod
    def from_uri(cls, uri: str | os.PathLike, *, endpoint_name: str, s3_client=None, **kwargs) -> "RemoteDetector":
        manifest, class_map = load_manifest(str(uri), s3_client=s3_client)
        return cls(manifest, class_map, endpoint_name=endpoint_name, **kwargs)

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

    def run_model(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Send one ``resize_for_model`` image; return the model's raw outputs (checked to be our model's)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.invoke_endpoint(
                EndpointName=self.endpoint_name, ContentType=TENSOR_CONTENT_TYPE, Accept=OUTPUTS_CONTENT_TYPE,
                Body=encode_array(image),
            )
            payload = response["Body"].read()
        except ClientError as exc:
            raise _endpoint_failure(exc, self.endpoint_name) from None
        except BotoCoreError as exc:  # connection refused / timed out
            raise EndpointUnavailable(f"endpoint {self.endpoint_name} did not answer: {exc}") from None
        outputs, sha = decode_outputs(payload)
        if self.manifest.model_sha256 and sha != self.manifest.model_sha256:
            raise EndpointError(
                f"endpoint {self.endpoint_name} serves model {sha[:12] or '?'}..., MODEL_URI describes "
                f"{self.manifest.model_sha256[:12]}...: redeploy the endpoint with this bundle's model.tar.gz"
            )
        return outputs

    def detect_bytes(
        self,
        data: bytes,
        *,
        threshold: float | None = None,
        classes: Collection[str] | None = None,
        max_detections: int | None = None,
        annotate: bool = False,
    ) -> dict:
        """Image bytes -> the same response body as ``Detector.detect_bytes`` (``inference`` = the round trip)."""
        self.check_classes(classes)
        spec = self.manifest.input
        start = time.perf_counter()
        decoded = decode_image(data, max_pixels=self.max_pixels, draft_size=(spec.width, spec.height) if self.draft else None,
                               keep_aspect=self.manifest.preprocessing.resize == "letterbox")
        t_decoded = time.perf_counter()
        original = (decoded.original_width, decoded.original_height)
        image, geometry = resize_for_model(decoded.array, manifest=self.manifest, original_size=original)
        t_resized = time.perf_counter()
        outputs = self.run_model(image)
        t_inferred = time.perf_counter()
        try:
            detections = postprocess(outputs, manifest=self.manifest, geometry=geometry, class_map=self.class_map,
                                     score_threshold=threshold, classes=classes, max_detections=max_detections)
        except (KeyError, ValueError, IndexError) as exc:
            raise EndpointError(f"endpoint {self.endpoint_name} returned outputs this manifest cannot read: {exc}") from None
        t_post = time.perf_counter()
        body = {
            "detections": [d.to_dict() for d in detections],
            "image": {"width": original[0], "height": original[1]},
            "model": self.model_info,
        }
        if annotate:
            drawn = draw_detections(decoded.array, detections, original_size=original)
            body["annotated_image"] = base64.b64encode(encode_jpeg(drawn)).decode("ascii")
        end = time.perf_counter()
        body["timings_ms"] = {"decode": _ms(start, t_decoded), "preprocess": _ms(t_decoded, t_resized),
                              "inference": _ms(t_resized, t_inferred), "postprocess": _ms(t_inferred, t_post),
                              "total": _ms(start, end)}
        return body
