"""ONNX Runtime session: created once per container with options chosen for Lambda's vCPUs.

Cold start: graph optimization is most of session creation (~0.7 s of ~0.9 s for D-FINE-S here). A bundle
may carry ``model.optimized.onnx``, written ahead of time by ``optimize_for_serving`` with ORT's
hardware-independent (``extended``) fusions already applied; ``create_session`` opens it instead of
``model.onnx`` when its sidecar ``model.optimized.json`` says it was made from the same model (sha256), by the
same onnxruntime version, on the same CPU architecture. Anything else falls back to ``model.onnx``.

Example:
    >>> # optimize_for_serving("bundles/dfine-s")            # at export/deploy time, on the target arch
    >>> # session = create_session("bundles/dfine-s/model.onnx", sha256=manifest.model_sha256)
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_errors

from .bundle import optimized_paths, optimized_stamp, sha256_file, stamp_suits
from .manifest import Manifest


_UNREADABLE_MODEL = (_ort_errors.Fail, _ort_errors.InvalidProtobuf, _ort_errors.NoSuchFile, _ort_errors.InvalidGraph)


def available_cpus() -> int:
    """CPUs this process may use (Lambda grants vCPUs in proportion to memory: 1769 MB = 1 vCPU)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def session_options(*, threads: int | None = None) -> ort.SessionOptions:
    """Options for a single-request-at-a-time container.

    - intra-op threads = vCPUs (Lambda runs one request per container, so they are all ours);
    - inter-op 1 and sequential execution: detectors are chains of ops, parallel branches buy nothing;
    - full graph optimization (fusions and layout changes; the cost is paid once at cold start, and mostly
      ahead of time when the bundle carries ``model.optimized.onnx``);
    - no thread spinning: spinning burns the CPU billed to us between runs and slows the GIL-bound
      pre/post-processing on small Lambdas (measured: spinning on an oversubscribed 2-core host 1.3x slower);
    - CPU memory arena and memory pattern left on (measured: without the arena warm runs are 1.2x slower).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or available_cpus()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def optimize_for_serving(bundle_or_model: str | os.PathLike) -> Path:
    """Write ``model.optimized.onnx`` (+ its weights file and sidecar) next to the bundle's ``model.onnx``;
    returns its path.

    Run it where the Lambda's onnxruntime version and CPU architecture are (the sidecar records both and
    ``create_session`` ignores a file made elsewhere). Only ``extended`` fusions are saved: the ``all`` level
    adds layout changes tied to the exact CPU, which ORT redoes at load in a fraction of the time.
    """
    path = Path(bundle_or_model)
    model_path = path / "model.onnx" if path.is_dir() else path
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path} does not exist: pass a bundle directory or a model.onnx path")
    optimized, weights, sidecar = optimized_paths(model_path)
    options = session_options(threads=1)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(optimized)
    options.add_session_config_entry("session.optimized_model_external_initializers_file_name", weights.name)
    options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    sidecar.unlink(missing_ok=True)  # never leave a sidecar vouching for a half-written file
    weights.unlink(missing_ok=True)
    ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
    weights.touch()  # a model with no initializer over the threshold gets none written: say so with an empty file
    stamp = optimized_stamp(sha256_file(model_path), onnxruntime_version=ort.__version__)
    sidecar.write_text(json.dumps(stamp, indent=1))
    return optimized


def pre_optimized(model_path: str | os.PathLike, *, sha256: str | None = None) -> Path | None:
    """The usable ``model.optimized.onnx`` for ``model_path``, or None (missing, stale or foreign)."""
    optimized, weights, sidecar = optimized_paths(model_path)
    if not (optimized.is_file() and weights.is_file() and sidecar.is_file()):
        return None
    try:
        text = sidecar.read_text()
    except (OSError, UnicodeDecodeError):
        return None
    source = sha256 or sha256_file(model_path)
    return optimized if stamp_suits(text, source, onnxruntime_version=ort.__version__) else None


def create_session(model_path: str | os.PathLike, *, threads: int | None = None,
                   providers: list[str] | None = None, sha256: str | None = None) -> ort.InferenceSession:
    """Open ``model_path`` with ``session_options``; CPU unless ``providers`` says otherwise.

    On CPU, a matching ``model.optimized.onnx`` (see module docstring) is opened instead; ``sha256`` is
    ``model_path``'s digest when the caller already knows it (the manifest does), saving a re-hash.
    """
    providers = providers or ["CPUExecutionProvider"]
    optimized = pre_optimized(model_path, sha256=sha256) if providers == ["CPUExecutionProvider"] else None
    if optimized is not None:
        try:
            return ort.InferenceSession(str(optimized), sess_options=session_options(threads=threads),
                                        providers=providers)
        except _UNREADABLE_MODEL as exc:  # e.g. its weights file damaged in /tmp: the plain model still serves
            warnings.warn(f"{optimized.name} could not be opened ({type(exc).__name__}: {str(exc)[:200]}); "
                          f"opening {Path(model_path).name}", RuntimeWarning, stacklevel=2)
    return ort.InferenceSession(str(model_path), sess_options=session_options(threads=threads), providers=providers)


def takes_batches(session: ort.InferenceSession) -> bool:
    """Whether one run takes several images: the input's first axis is a named free dimension and every output
    leads with the same one (`export --batch-axis` of a DETR family; graphs with NMS inside output one image's
    detections)."""
    batch = session.get_inputs()[0].shape[0]
    return isinstance(batch, str) and all(out.shape and out.shape[0] == batch for out in session.get_outputs())


def run(session: ort.InferenceSession, manifest: Manifest, tensor: np.ndarray) -> dict[str, np.ndarray]:
    """Run the model on a preprocessed (N, 3, H, W) tensor (N > 1 only if ``takes_batches``); returns the
    manifest's outputs by name."""
    spec = manifest.output
    names = [spec.boxes, spec.scores, spec.labels] if spec.format == "boxes_scores_labels" else [spec.logits, spec.boxes]
    values = session.run(names, {manifest.input.name: tensor})
    return dict(zip(names, values))
