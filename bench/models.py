"""Which models the benchmark runs, and where their bundles come from.

Every architecture is exported once per input size with random-init weights (``weights="none"``, seed 0)
through ``export.api.export_bundle`` (the same call ``python -m export`` makes, parity gate included) and
cached under ``.cache/bench/bundles``; the PyTorch baseline is rebuilt from the same recipe and seed, and the
benchmark checks that both give the same outputs before timing them.

Example:
    >>> parse_model_spec("dfine-s@384")
    ModelSpec(arch='dfine-s', size=384, bundle=None)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import zoo
from export import archs
from export.api import export_bundle
from export.images import default_parity_images
from export.onnx_io import describe_graph

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO_ROOT / ".cache" / "bench"
DEFAULT_ARCHS = ("dfine-n", "dfine-s", "retinanet_resnet50_fpn_v2")
DEFAULT_SIZES = (640, 384)
QUICK_ARCHS = ("dfine-n",)
QUICK_SIZES = (384,)
SEED = 0


class BenchError(RuntimeError):
    """The benchmark cannot run as asked; the message says what to fix."""


@dataclass(frozen=True)
class ModelSpec:
    arch: str               # export architecture name, or "bundle" for a given bundle directory
    size: int | None        # square input size; None: whatever the bundle says
    bundle: Path | None = None

    @property
    def key(self) -> str:
        if self.bundle is not None:
            return f"bundle:{self.bundle.name}"
        return f"{self.arch}@{self.size}"


def parse_model_spec(text: str) -> ModelSpec:
    """``arch@size`` (``dfine-s@640``) or ``arch`` (640)."""
    arch, _, size = text.partition("@")
    if not arch:
        raise BenchError(f"empty architecture in {text!r}: use e.g. dfine-s@640")
    try:
        value = int(size) if size else 640
    except ValueError:
        raise BenchError(f"input size in {text!r} must be an integer, e.g. dfine-s@640") from None
    if value < 32 or value % 32:
        raise BenchError(f"input size {value} in {text!r} must be a multiple of 32, at least 32")
    return ModelSpec(arch=arch, size=value)


def model_specs(archs: list[str] | None, sizes: list[int] | None, *, quick: bool) -> list[ModelSpec]:
    """The cross product of architectures and sizes (``arch@size`` entries keep their own size)."""
    archs = list(archs or (QUICK_ARCHS if quick else DEFAULT_ARCHS))
    sizes = list(sizes or (QUICK_SIZES if quick else DEFAULT_SIZES))
    specs = []
    for arch in archs:
        if "@" in arch:
            specs.append(parse_model_spec(arch))
        else:
            specs.extend(parse_model_spec(f"{arch}@{size}") for size in sizes)
    return specs


def bundle_dir(spec: ModelSpec, *, cache_dir: Path = DEFAULT_CACHE, batch_axis: bool = False) -> Path:
    if spec.bundle is not None:
        return spec.bundle
    return cache_dir / "bundles" / f"{spec.arch}-{spec.size}{'-batch' if batch_axis else ''}"


def ensure_bundle(spec: ModelSpec, *, cache_dir: Path = DEFAULT_CACHE, batch_axis: bool = False, log=print) -> Path:
    """The bundle directory for ``spec``, exported on first use (minutes for RetinaNet on 2 cores); with
    ``batch_axis`` the export that takes several images per run (``export --batch-axis``)."""
    out = bundle_dir(spec, cache_dir=cache_dir, batch_axis=batch_axis)
    if (out / "model.json").exists() and (spec.bundle is not None or has_batch_axis(out) == batch_axis):
        return out
    if spec.bundle is not None:
        raise BenchError(f"{out} is not a model bundle (no model.json): pass a directory written by export")
    log(f"exporting {spec.key}{' with a batch axis' if batch_axis else ''} (random init, seed {SEED}) to {out} ...")
    export_bundle(spec.arch, "none", out, input_size=spec.size, seed=SEED, batch_axis=batch_axis,
                  parity_images=default_parity_images(photos=1)[:2], progress=lambda m: log(f"  {m}"))
    return out


def has_batch_axis(bundle: Path) -> bool:
    """Whether the bundle's graph takes a batch (a cached export may predate, or differ from, what is asked)."""
    return not isinstance(describe_graph(bundle / "model.onnx")["inputs"][0]["shape"][0], int)


def batchable(spec: ModelSpec) -> bool:
    return spec.bundle is None and zoo.family_of(spec.arch).batch_axis


def eager_model(spec: ModelSpec):
    """The PyTorch module with the bundle's weights (same builder and seed), or None for a given bundle."""
    if spec.bundle is not None:
        return None
    prepared = archs.prepare(spec.arch, weights="none", input_size=(spec.size, spec.size), seed=SEED)
    return prepared.module.eval()
