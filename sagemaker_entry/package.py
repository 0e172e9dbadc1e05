"""Build the SageMaker ``model.tar.gz`` for a bundle: model + manifest + our entry point and its code.

Layout (SageMaker unpacks it to /opt/ml/model; the DLC runs ``code/inference.py``)::

    model.onnx  model.json  class_map.json      the bundle, unchanged (model_sha256 still matches)
    model.neuron.pt                             inferentia, when torch-neuronx was importable here
    code/inference.py                           sagemaker_entry/inference.py
    code/detection/*.py                         lambda_src/detection (the Lambda's own code)
    code/requirements.txt                       pinned for the container's Python, installed at start
    code/wheels/*.whl                           those wheels: the endpoint has no network (isolation)
    code/build.json                             target, container image, Python, whether precompiled

Example:
    >>> # build_model_archive("dist/bundles/dfine-s", "gpu", "dist/sagemaker/gpu/model.tar.gz")
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from detection.bundle import read_bundle
from detection.manifest import MANIFEST_FILE

REPO_ROOT = Path(__file__).resolve().parents[1]
DETECTION_SOURCE = REPO_ROOT / "lambda_src" / "detection"
ENTRY_POINT = Path(__file__).resolve().parent / "inference.py"
WHEEL_CACHE = REPO_ROOT / ".cache" / "sagemaker-wheels"


class PackagingError(Exception):
    """A bad bundle, target or wheel directory; the message says what to fix."""


@dataclass(frozen=True)
class Target:
    """A container the archive is built for: its image (the nested template's default) and Python."""

    name: str
    image_repository: str
    image_tag: str
    python: str
    requirements: tuple[str, ...]
    platforms: tuple[str, ...] = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


TARGETS = {
    # PyTorch 2.6 inference DLC (CUDA 12.4, cuDNN 9, Python 3.12); ONNX Runtime matches the Lambda's 1.31.1.
    "gpu": Target("gpu", "pytorch-inference", "2.6.0-gpu-py312-cu124-ubuntu22.04-sagemaker", "3.12",
                  ("onnxruntime-gpu==1.31.1",)),
    # Neuron DLC (torch-neuronx 2.1.2, Neuron SDK 2.20.2, Python 3.10): ORT 1.23.2 is the last with cp310
    # wheels (CPU fallback, output names); onnx2torch converts model.onnx for torch_neuronx.trace.
    "inferentia": Target("inferentia", "pytorch-inference-neuronx", "2.1.2-neuronx-py310-sdk2.20.2-ubuntu20.04",
                         "3.10", ("onnxruntime==1.23.2", "onnx==1.17.0", "onnx2torch==1.5.15")),
}
# Installed without their dependencies: these would pull torch/torchvision, which the Neuron DLC already has.
NO_DEPS = {"onnx2torch"}


def requirements_text(target: Target, *, vendored: bool) -> str:
    """code/requirements.txt: pinned; with ``vendored`` pip installs only from code/wheels (no network).

    Example:
        >>> print(requirements_text(TARGETS["gpu"], vendored=False).splitlines()[-1])
        onnxruntime-gpu==1.31.1
    """
    header = [f"# for {target.image_repository}:{target.image_tag} (Python {target.python})"]
    if vendored:
        # pip resolves a relative --find-links against this file's folder when that folder exists.
        header += ["--no-index", "--find-links wheels"]
    return "\n".join([*header, *target.requirements]) + "\n"


def download_wheels(target: Target, *, cache_dir: Path = WHEEL_CACHE) -> Path:
    """pip download the pinned wheels (and their dependencies) for the container's Python; cached."""
    out = cache_dir / f"{target.name}-py{target.python}"
    stamp = out / ".complete"
    if stamp.is_file() and stamp.read_text() == "\n".join(target.requirements):
        return out
    out.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", str(out),
            "--python-version", target.python, "--implementation", "cp"]
    for platform in target.platforms:
        base += ["--platform", platform]
    with_deps = [r for r in target.requirements if r.split("==")[0] not in NO_DEPS]
    without_deps = [r for r in target.requirements if r.split("==")[0] in NO_DEPS]
    for requirements, extra in ((with_deps, []), (without_deps, ["--no-deps"])):
        if not requirements:
            continue
        result = subprocess.run([*base, *extra, *requirements], capture_output=True, text=True)
        if result.returncode != 0:
            raise PackagingError(f"pip download {' '.join(requirements)} for Python {target.python} failed: "
                                 f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}")
    stamp.write_text("\n".join(target.requirements))
    return out


def neuron_sdk_available() -> bool:
    try:
        import torch_neuronx  # noqa: F401
    except ImportError:
        return False
    return True


def _add_file(tar: tarfile.TarFile, arcname: str, data: bytes) -> None:
    info = tarfile.TarInfo(arcname)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def _add_path(tar: tarfile.TarFile, path: Path, arcname: str) -> None:
    _add_file(tar, arcname, path.read_bytes())


def build_model_archive(bundle_dir: str | Path, target: str, out_path: str | Path, *,
                        wheels: str | Path | None = "download", neuron_trace: bool | None = None) -> Path:
    """Write ``out_path`` (model.tar.gz) for ``target`` (gpu | inferentia) and return its path.

    ``wheels``: "download" (pip download into .cache/sagemaker-wheels, once), a directory of wheels, or
    None (requirements only: the container must reach PyPI, i.e. no network isolation).
    ``neuron_trace`` (inferentia): trace now (default when torch-neuronx is importable) or compile at
    endpoint start.
    """
    if target not in TARGETS:
        raise PackagingError(f"unknown target {target!r}; use one of {', '.join(TARGETS)}")
    spec = TARGETS[target]
    bundle = read_bundle(Path(bundle_dir))
    out = Path(out_path)
    if out.name.endswith(".tar.gz") is False:
        raise PackagingError(f"--out must end in .tar.gz (SageMaker's ModelDataUrl), got {out}")
    wheel_dir: Path | None = None
    if wheels == "download":
        wheel_dir = download_wheels(spec)
    elif wheels is not None:
        wheel_dir = Path(wheels)
        if not wheel_dir.is_dir() or not any(wheel_dir.glob("*.whl")):
            raise PackagingError(f"wheel directory {wheel_dir} has no .whl files")
    precompile = neuron_sdk_available() if neuron_trace is None else neuron_trace
    if target != "inferentia":
        precompile = False
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        neuron_file = None
        if precompile:
            import torch

            sys.path.insert(0, str(ENTRY_POINT.parent))
            from sagemaker_entry.inference import NEURON_MODEL_FILE, trace_onnx_for_neuron

            neuron_file = Path(scratch) / NEURON_MODEL_FILE
            torch.jit.save(trace_onnx_for_neuron(bundle.model_path, manifest=bundle.manifest), str(neuron_file))
        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, "w:gz") as tar:
            for name in (bundle.manifest.model_file, MANIFEST_FILE, bundle.manifest.class_map_file):
                _add_path(tar, bundle.root / name, name)
            if neuron_file is not None:
                _add_path(tar, neuron_file, neuron_file.name)
            _add_path(tar, ENTRY_POINT, "code/inference.py")
            for source in sorted(DETECTION_SOURCE.glob("*.py")):
                _add_path(tar, source, f"code/detection/{source.name}")
            _add_file(tar, "code/requirements.txt", requirements_text(spec, vendored=wheel_dir is not None).encode())
            for wheel in sorted(wheel_dir.glob("*.whl")) if wheel_dir else []:
                _add_path(tar, wheel, f"code/wheels/{wheel.name}")
            build = {"target": target, "image": f"{spec.image_repository}:{spec.image_tag}", "python": spec.python,
                     "model_sha256": bundle.manifest.model_sha256, "neuron_precompiled": neuron_file is not None,
                     "wheels_vendored": wheel_dir is not None}
            _add_file(tar, "code/build.json", (json.dumps(build, indent=2) + "\n").encode())
        partial.replace(out)
    return out
