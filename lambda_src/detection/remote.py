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

import io
import os
from typing import Mapping

import numpy as np

from .fetch import load_manifest
from .manifest import Manifest
from .errors import BadRequest, DetectionError, EndpointError, EndpointUnavailable  # noqa: F401 (re-exported)
from .image import DEFAULT_MAX_PIXELS
from .pipeline import BaseDetector
from .postprocess import Detection
from .preprocess import Geometry, geometry_for, resize

TENSOR_CONTENT_TYPE = "application/x-npy"
OUTPUTS_CONTENT_TYPE = "application/x-npz"
SHA_KEY = "__model_sha256__"


# ---------------------------------------------------------------- the wire format


def resize_for_model(array: np.ndarray, *, manifest: Manifest,
                     original_size: tuple[int, int] | None = None) -> tuple[np.ndarray, Geometry]:
    """RGB uint8 (H, W, 3) -> the image resized into the model's input box, rounded to uint8, and its geometry.

    This is ``preprocess`` up to (not including) channel order, normalization and padding, which the
    endpoint applies; the only difference from the Lambda backend is rounding the resized pixels to
    integers (at most 0.5 of 255).

    Example:
        >>> from detection.manifest import example_manifest, parse_manifest
        >>> small, g = resize_for_model(np.zeros((480, 640, 3), np.uint8), manifest=parse_manifest(example_manifest()))
        >>> small.shape, small.dtype.name, (g.pad_x, g.pad_y)  # letterbox pads bottom/right by default
        ((480, 640, 3), 'uint8', (0, 0))
    """
    spec = manifest.preprocessing
    geometry = geometry_for(array, spec=spec, input_spec=manifest.input, original_size=original_size)
    height, width = array.shape[:2]
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
    geometry = geometry_for(array, spec=manifest.preprocessing, input_spec=box)
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


class RemoteDetector(BaseDetector):
    """``Detector``'s interface over a SageMaker endpoint serving the same bundle.

    Example:
        >>> # detector = RemoteDetector.from_uri("s3://models/dfine-s/", endpoint_name="det-gpu")
        >>> # detector.detect_bytes(open("photo.jpg", "rb").read(), threshold=0.4)["detections"]
    """

    def __init__(self, manifest: Manifest, class_map: Mapping[int, str], *, endpoint_name: str, client=None,
                 endpoint_url: str | None = None, draft: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS):
        if not endpoint_name:
            raise ValueError("endpoint_name is empty: set ENDPOINT_NAME to the SageMaker endpoint's name")
        super().__init__(manifest, class_map, draft=draft, max_pixels=max_pixels)
        self.endpoint_name = endpoint_name
        self.client = client or sagemaker_runtime_client(endpoint_url=endpoint_url)

    @classmethod
    def from_uri(cls, uri: str | os.PathLike, *, endpoint_name: str, s3_client=None, **kwargs) -> "RemoteDetector":
        manifest, class_map = load_manifest(str(uri), s3_client=s3_client)
        return cls(manifest, class_map, endpoint_name=endpoint_name, **kwargs)

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

    def prepare(self, array: np.ndarray, *, original_size: tuple[int, int] | None
                ) -> tuple[np.ndarray, Geometry]:
        """Resize here; the endpoint normalizes and pads (``inference`` timing = the round trip)."""
        return resize_for_model(array, manifest=self.manifest, original_size=original_size)

    def read_outputs(self, outputs: dict[str, np.ndarray], **kwargs) -> list[Detection]:
        try:
            return super().read_outputs(outputs, **kwargs)
        except (KeyError, ValueError, IndexError) as exc:
            raise EndpointError(f"endpoint {self.endpoint_name} returned outputs this manifest cannot read: {exc}") from None
