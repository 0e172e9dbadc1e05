"""Build the SageMaker ``model.tar.gz`` for a bundle: model + manifest + our entry point and its code.

``python -m lambda_build.sagemaker --bundle DIR --target gpu|inferentia --out model.tar.gz [--wheels ...]``.
The container's wheels are a :class:`lambda_build.targets.Target` fetched by :mod:`lambda_build.wheels`, as the
Lambda zip's are; what runs inside the container is ``sagemaker_entry/``.

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

import argparse
import io
import json
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from detection.bundle import read_bundle
from detection.errors import DetectionError
from detection.manifest import MANIFEST_FILE

from .targets import Target
from .wheels import WheelError, download_wheels as download_target_wheels

REPO_ROOT = Path(__file__).resolve().parents[1]
DETECTION_SOURCE = REPO_ROOT / "lambda_src" / "detection"
ENTRY_POINT = REPO_ROOT / "sagemaker_entry" / "inference.py"
WHEEL_CACHE = REPO_ROOT / ".cache" / "sagemaker-wheels"
MANYLINUX_X86_64 = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


class PackagingError(Exception):
    """A bad bundle, target or wheel directory; the message says what to fix."""


@dataclass(frozen=True)
class Container:
    """A container the archive is built for: its image (the nested template's default), pins and wheel target."""

    image_repository: str
    image_tag: str
    requirements: tuple[str, ...]
    wheels: Target

    @property
    def name(self) -> str:
        return self.wheels.name

    @property
    def python(self) -> str:
        return self.wheels.python


TARGETS = {
    # PyTorch 2.6 inference DLC (CUDA 12.4, cuDNN 9, Python 3.12); ONNX Runtime matches the Lambda's 1.31.1.
    "gpu": Container("pytorch-inference", "2.6.0-gpu-py312-cu124-ubuntu22.04-sagemaker", ("onnxruntime-gpu==1.31.1",),
                     Target("gpu", "3.12", MANYLINUX_X86_64)),
    # Neuron DLC (torch-neuronx 2.1.2, Neuron SDK 2.20.2, Python 3.10): ORT 1.23.2 is the last with cp310
    # wheels (CPU fallback, output names); onnx2torch converts model.onnx for torch_neuronx.trace.
    "inferentia": Container("pytorch-inference-neuronx", "2.1.2-neuronx-py310-sdk2.20.2-ubuntu20.04",
                            ("onnxruntime==1.23.2", "onnx==1.17.0", "onnx2torch==1.5.15"),
                            Target("inferentia", "3.10", MANYLINUX_X86_64)),
}
# Installed without their dependencies: these would pull torch/torchvision, which the Neuron DLC already has.
NO_DEPS = {"onnx2torch"}


def requirements_text(target: Container, *, vendored: bool) -> str:
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


def download_wheels(target: Container, *, cache_dir: Path = WHEEL_CACHE) -> Path:
    """The pinned wheels (and their dependencies, except :data:`NO_DEPS`') for the container's Python; cached."""
    out = cache_dir / f"{target.name}-py{target.python}"
    stamp = out / ".complete"
    if stamp.is_file() and stamp.read_text() == "\n".join(target.requirements):
        return out
    with_deps = [r for r in target.requirements if r.split("==")[0] not in NO_DEPS]
    without_deps = [r for r in target.requirements if r.split("==")[0] in NO_DEPS]
    try:
        for requirements, deps in ((with_deps, True), (without_deps, False)):
            if requirements:
                download_target_wheels(target=target.wheels, requirements=requirements, wheel_dir=out, deps=deps)
    except WheelError as error:
        raise PackagingError(str(error)) from None
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
            # lazy: pulls onnxruntime; only the Neuron precompile (torch) needs it, not packing the archive
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lambda_build.sagemaker",
                                     description="build the SageMaker model.tar.gz for a bundle")
    parser.add_argument("--bundle", required=True, type=Path, help="model bundle directory (python -m export output)")
    parser.add_argument("--target", required=True, choices=sorted(TARGETS))
    parser.add_argument("--out", required=True, type=Path, help="where to write model.tar.gz")
    parser.add_argument("--wheels", default="download",
                        help="'download' (default: pip download the pinned wheels for the container's Python into "
                             ".cache/sagemaker-wheels/, needed because the endpoint has no network), a directory "
                             "of wheels, or 'none' (requirements only: the container needs network access)")
    args = parser.parse_args(argv)
    wheels = None if args.wheels == "none" else args.wheels if args.wheels == "download" else Path(args.wheels)
    try:
        out = build_model_archive(args.bundle, args.target, args.out, wheels=wheels)
    except (PackagingError, DetectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
