"""SageMaker endpoint entry point (bring-your-own-model handler functions), the same code as the Lambda.

The archive built by ``python -m lambda_build.sagemaker`` holds this file as ``code/inference.py`` next to
``code/detection/`` (copied from lambda_src), and the bundle (model.onnx, model.json, class_map.json) at its
root, which SageMaker unpacks to /opt/ml/model. The DLC's inference toolkit calls, per request::

    input_fn(body, content_type) -> predict_fn(data, model) -> output_fn(prediction, accept)

Requests:

- ``application/x-npy``: a uint8 (h, w, 3) image already resized for the model (what the Lambda sends, see
  ``detection.remote``) -> ``application/x-npz``: the model's raw outputs + its sha256;
- ``image/jpeg``, ``image/png``, ... or ``application/x-image``: image bytes -> the Lambda's JSON response;
- ``application/json``: ``{"image": "<base64>", "threshold": .., "classes": .., "max_detections": ..,
  "annotate": ..}`` -> the Lambda's JSON response.

Example (what the toolkit does):
    >>> # model = model_fn("/opt/ml/model")
    >>> # body, content_type = output_fn(predict_fn(input_fn(jpeg, "image/jpeg"), model), "application/json")
"""

from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detection import session as ort_session
from detection.bundle import read_bundle
from detection.errors import BadRequest, DetectionError, UnsupportedMediaType
from detection.events import DEFAULT_MAX_IMAGE_BYTES, Options, decode_base64, parse_options
from detection.pipeline import Detector
from detection.preprocess import preprocess
from detection.remote import (OUTPUTS_CONTENT_TYPE, TENSOR_CONTENT_TYPE, check_model_image, decode_array,
                              encode_outputs)

LOG = logging.getLogger("sagemaker_entry")
JSON_CONTENT_TYPE = "application/json"
IMAGE_CONTENT_TYPES = ("application/x-image", "application/octet-stream")
NEURON_MODEL_FILE = "model.neuron.pt"


@dataclass(frozen=True)
class TensorRequest:
    """A Lambda-resized uint8 image: answer with raw outputs."""

    image: np.ndarray


@dataclass(frozen=True)
class ImageRequest:
    """Image bytes + options: answer with the full response body."""

    data: bytes
    options: Options


# ---------------------------------------------------------------- accelerators


def choose_providers(available: list[str], *, requested: str | None = None,
                     trt_cache_dir: str = "/tmp/trt-cache") -> list:
    """ONNX Runtime providers, best first: TensorRT (fp16, engine cache), CUDA, then CPU.

    ``requested`` (env ``ORT_PROVIDERS``, e.g. ``"cuda,cpu"``) narrows the choice; asking for one this
    build lacks is an error rather than a silent CPU fallback.

    Example:
        >>> choose_providers(["CUDAExecutionProvider", "CPUExecutionProvider"])
        ['CUDAExecutionProvider', 'CPUExecutionProvider']
        >>> choose_providers(["CPUExecutionProvider"], requested="cpu")
        ['CPUExecutionProvider']
    """
    names = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}
    if requested:
        wanted = [w.strip().lower() for w in requested.split(",") if w.strip()]
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise ValueError(f"ORT_PROVIDERS: unknown provider(s) {unknown}; use tensorrt, cuda, cpu")
        missing = [names[w] for w in wanted if names[w] not in available]
        if missing:
            raise ValueError(f"ORT_PROVIDERS asks for {missing}, this onnxruntime has only {available}")
    else:
        wanted = [w for w in ("tensorrt", "cuda") if names[w] in available] + ["cpu"]
    providers: list = []
    for key in wanted:
        if key == "tensorrt":
            providers.append((names[key], {"trt_fp16_enable": True, "trt_engine_cache_enable": True,
                                           "trt_engine_cache_path": trt_cache_dir}))
        else:
            providers.append(names[key])
    if "CPUExecutionProvider" not in [p if isinstance(p, str) else p[0] for p in providers]:
        providers.append("CPUExecutionProvider")
    return providers


class NeuronSession:
    """A torch-neuronx compiled module behind ONNX Runtime's ``session.run(names, feeds)``."""

    def __init__(self, module, *, output_names: list[str], input_name: str):
        self.module = module
        self.output_names = output_names
        self.input_name = input_name

    def run(self, names, feeds):
        import torch

        with torch.no_grad():
            values = self.module(torch.from_numpy(np.ascontiguousarray(feeds[self.input_name])))
        values = values if isinstance(values, (list, tuple)) else [values]
        by_name = {name: value.cpu().numpy() for name, value in zip(self.output_names, values)}
        return [by_name[name] for name in names]


def onnx_output_names(model_path: Path) -> list[str]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
    return [o.name for o in session.get_outputs()]


def trace_onnx_for_neuron(model_path: Path, *, manifest, tracer=None):
    """model.onnx -> torch module (onnx2torch) -> compiled for Neuron (``torch_neuronx.trace``).

    ``tracer`` defaults to ``torch_neuronx.trace``; ``torch.jit.trace`` runs the same conversion on CPU.
    Graphs with NMS inside (torchvision RetinaNet exports) may not compile for Neuron: the DETR-style
    outputs of D-FINE/RT-DETR (top-k on the Lambda) are the ones that fit.
    """
    import torch
    from onnx2torch import convert

    if tracer is None:
        import torch_neuronx

        tracer = torch_neuronx.trace
    module = convert(str(model_path)).eval()
    example = torch.zeros((1, 3, manifest.input.height, manifest.input.width), dtype=torch.float32)
    with torch.no_grad():
        return tracer(module, example)


def neuron_session(model_dir: Path, detector: Detector, *, compiled_dir: Path) -> NeuronSession:
    """Load the traced model (``model.neuron.pt``), or trace model.onnx now (first start: minutes)."""
    import torch
    import torch_neuronx  # noqa: F401  (registers the Neuron ops torch.jit.load needs)

    names = onnx_output_names(detector.bundle.model_path)
    traced = model_dir / NEURON_MODEL_FILE
    cached = compiled_dir / f"{detector.manifest.model_sha256 or 'model'}.neuron.pt"
    for path in (traced, cached):
        if path.is_file():
            return NeuronSession(torch.jit.load(str(path)), output_names=names, input_name=detector.manifest.input.name)
    LOG.warning("no %s in the artifact: compiling %s for Neuron now", NEURON_MODEL_FILE, detector.manifest.model_file)
    module = trace_onnx_for_neuron(detector.bundle.model_path, manifest=detector.manifest)
    compiled_dir.mkdir(parents=True, exist_ok=True)
    torch.jit.save(module, str(cached))
    return NeuronSession(module, output_names=names, input_name=detector.manifest.input.name)


# ---------------------------------------------------------------- the four handler functions


def model_fn(model_dir: str) -> Detector:
    """Load the bundle SageMaker unpacked into ``model_dir`` on the best available accelerator."""
    import onnxruntime as ort

    root = Path(model_dir)
    bundle = read_bundle(root)
    backend = os.environ.get("DETECTION_BACKEND", "gpu")
    providers = choose_providers(ort.get_available_providers(), requested=os.environ.get("ORT_PROVIDERS") or None)
    if backend == "inferentia":
        providers = ["CPUExecutionProvider"]
    threads = int(os.environ["ORT_THREADS"]) if os.environ.get("ORT_THREADS") else None
    detector = Detector(bundle, providers=providers, threads=threads,
                        draft=os.environ.get("JPEG_DRAFT", "1") != "0")
    if backend == "inferentia":
        detector.session = neuron_session(root, detector, compiled_dir=Path(os.environ.get("NEURON_CACHE_DIR", "/tmp/neuron")))
    LOG.info("loaded %s (%s) with %s", bundle.manifest.name, bundle.manifest.model_sha256,
             getattr(detector.session, "get_providers", lambda: ["neuron"])())
    return detector


def _base_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def input_fn(request_body: Any, request_content_type: str) -> TensorRequest | ImageRequest:
    """Parse one request body by its content type (see the module docstring)."""
    content_type = _base_type(request_content_type)
    body = request_body.encode("utf-8") if isinstance(request_body, str) else bytes(request_body or b"")
    if content_type == TENSOR_CONTENT_TYPE:
        return TensorRequest(image=decode_array(body))
    if content_type == JSON_CONTENT_TYPE:
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise BadRequest(f"body is not valid JSON: {exc}") from None
        if not isinstance(payload, dict) or "image" not in payload:
            raise BadRequest('send {"image": "<base64>", ...options} as application/json')
        max_bytes = int(os.environ.get("MAX_IMAGE_BYTES", DEFAULT_MAX_IMAGE_BYTES))
        return ImageRequest(data=decode_base64(payload["image"], max_bytes=max_bytes),
                            options=parse_options({k: v for k, v in payload.items() if k != "image"}))
    if content_type.startswith("image/") or content_type in IMAGE_CONTENT_TYPES:
        return ImageRequest(data=body, options=Options())
    raise UnsupportedMediaType(
        f"content type {request_content_type!r} is not supported; send {TENSOR_CONTENT_TYPE}, "
        f"{JSON_CONTENT_TYPE}, application/x-image or image/*"
    )


def predict_fn(data: TensorRequest | ImageRequest, model: Detector) -> dict:
    """Run the model: raw outputs for a tensor request, the full response body for an image request."""
    if isinstance(data, TensorRequest):
        check_model_image(data.image, manifest=model.manifest)
        tensor, _ = preprocess(data.image, spec=model.manifest.preprocessing, input_spec=model.manifest.input)
        return {"outputs": ort_session.run(model.session, model.manifest, tensor),
                "model_sha256": model.manifest.model_sha256}
    options = data.options
    return {"body": model.detect_bytes(data.data, threshold=options.threshold, classes=options.classes,
                                       max_detections=options.max_detections, annotate=options.annotate)}


def output_fn(prediction: dict, accept: str | None) -> tuple[bytes, str]:
    """Serialize: ``(body, content type)``, which the toolkit sends back as is."""
    wanted = _base_type(accept)
    if "outputs" in prediction:
        if wanted not in ("", "*/*", OUTPUTS_CONTENT_TYPE):
            raise UnsupportedMediaType(f"raw model outputs are served as {OUTPUTS_CONTENT_TYPE}, not {accept!r}")
        return encode_outputs(prediction["outputs"], model_sha256=prediction["model_sha256"]), OUTPUTS_CONTENT_TYPE
    if wanted not in ("", "*/*", JSON_CONTENT_TYPE):
        raise UnsupportedMediaType(f"detections are served as {JSON_CONTENT_TYPE}, not {accept!r}")
    return json.dumps(prediction["body"], separators=(",", ":")).encode("utf-8"), JSON_CONTENT_TYPE


# ---------------------------------------------------------------- errors the toolkit turns into statuses


def toolkit_error(exc: DetectionError) -> Exception:
    """Our error as the inference toolkit's, so the caller gets its status (400/413/415) and message
    rather than a bare 500; outside a DLC (tests, local serving) the error itself."""
    try:
        from sagemaker_inference.errors import BaseInferenceToolkitError
    except ImportError:
        return exc
    body = json.dumps(exc.to_dict())
    return BaseInferenceToolkitError(exc.status, exc.message, body)


def _with_status(function):
    @functools.wraps(function)  # keeps the signature the toolkit inspects
    def wrapped(*args):
        try:
            return function(*args)
        except DetectionError as exc:
            raise toolkit_error(exc) from exc

    return wrapped


# The toolkit counts parameters (a trailing ``context`` is optional): keep exactly these signatures.
input_fn = _with_status(input_fn)  # noqa: F811
predict_fn = _with_status(predict_fn)  # noqa: F811
output_fn = _with_status(output_fn)  # noqa: F811
