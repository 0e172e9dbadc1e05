"""Class maps: COCO names as the published weights use them, and parsing of ``--classes``.

Example:
    >>> parse_classes("cat, dog")
    {0: 'cat', 1: 'dog'}
    >>> coco91()[1], coco80()[0]
    ('person', 'person')
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from detection.manifest import parse_class_map
from detection.errors import BundleError

from .errors import ExportError


def torchvision_coco_categories() -> list[str]:
    """torchvision's COCO category list (index = graph label; 0 is ``__background__``, gaps are ``N/A``)."""
    from torchvision.models.detection import RetinaNet_ResNet50_FPN_Weights

    return list(RetinaNet_ResNet50_FPN_Weights.COCO_V1.meta["categories"])


def coco91() -> dict[int, str]:
    """COCO category id -> name (ids 1..90, as torchvision's detection models label them).

    Background (0) is left out; the unused ids in the gaps keep their ``N/A`` name so every label the graph
    can emit has an entry.
    """
    return {i: name for i, name in enumerate(torchvision_coco_categories()) if i != 0}


def coco80() -> dict[int, str]:
    """The 80 COCO classes numbered 0..79 (D-FINE / Hugging Face DETR-family label order)."""
    names = [n for n in torchvision_coco_categories() if n not in ("__background__", "N/A")]
    return dict(enumerate(names))


def parse_classes(value: Any, *, coco: Mapping[int, str] | None = None) -> dict[int, str]:
    """``--classes``: a JSON file (id -> name, icevision's name -> id, or a list), a comma list, or ``coco``.

    ``coco`` resolves to ``coco`` (the architecture's own COCO numbering) when given.
    """
    if isinstance(value, Mapping) or isinstance(value, list):
        try:
            return parse_class_map(dict(value) if isinstance(value, Mapping) else list(value))
        except BundleError as exc:
            raise ExportError(f"--classes: {exc.message}") from None
    text = str(value).strip()
    if not text:
        raise ExportError("--classes is empty: pass a class_map.json file, a comma list (cat,dog) or 'coco'")
    if text.lower() == "coco":
        return dict(coco) if coco is not None else coco80()
    path = Path(text)
    if path.suffix.lower() == ".json" or path.is_file():
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ExportError(f"--classes file {path} does not exist") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ExportError(f"--classes file {path} is not valid JSON: {exc}") from None
        try:
            return parse_class_map(data)
        except BundleError as exc:
            raise ExportError(f"--classes file {path}: {exc.message}") from None
    names = [n.strip() for n in text.split(",")]
    if any(not n for n in names):
        raise ExportError(f"--classes {text!r} has an empty name: use a comma list like 'cat,dog'")
    return dict(enumerate(names))
