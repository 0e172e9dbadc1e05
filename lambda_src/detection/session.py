"""ONNX Runtime session: created once per container with options chosen for Lambda's vCPUs."""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort

from .bundle import Manifest


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
    - full graph optimization (fusions and layout changes; the cost is paid once at cold start);
    - no thread spinning: spinning burns the CPU billed to us between runs and slows the GIL-bound
      pre/post-processing on small Lambdas.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or available_cpus()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def create_session(model_path: str | os.PathLike, *, threads: int | None = None,
                   providers: list[str] | None = None) -> ort.InferenceSession:
    """Open ``model_path`` with ``session_options``; CPU unless ``providers`` says otherwise."""
    return ort.InferenceSession(
        str(model_path),
        sess_options=session_options(threads=threads),
        providers=providers or ["CPUExecutionProvider"],
    )


def run(session: ort.InferenceSession, manifest: Manifest, tensor: np.ndarray) -> dict[str, np.ndarray]:
    """Run the model on one preprocessed tensor; returns the manifest's outputs by name."""
    spec = manifest.output
    names = [spec.boxes, spec.scores, spec.labels] if spec.format == "boxes_scores_labels" else [spec.logits, spec.boxes]
    values = session.run(names, {manifest.input.name: tensor})
    return dict(zip(names, values))
