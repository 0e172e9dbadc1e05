"""Detection datasets: Pascal VOC XML and COCO JSON -> one record format; seeded, class-stratified split.

Records hold boxes as ``(x1, y1, x2, y2)`` floats in pixel-edge coordinates of the image as stored on disk.
VOC coordinates are read as-is (no 1-based shift), as icevision and most exporters do; COCO ``bbox`` is
``[x, y, w, h]``.

Box policy (documented, tested):

- a box reaching outside the image is **clipped** to it (counted in ``ParseReport.clipped``);
- a box with no area left after clipping (entirely outside, or thinner than ``min_box_size`` px) is
  **dropped** with a warning (``ParseReport.dropped``);
- a box with ``x2 < x1`` or ``y2 < y1``, or a non-numeric coordinate, is an **error** naming the file;
- images with no objects are kept (they teach the detector what background looks like).

The image size always comes from the image file's header (EXIF orientation ignored, as VOC tools do); a
size in the XML that disagrees is reported as a warning.

Example:
    >>> from tempfile import mkdtemp
    >>> from train.demo_data import generate_dataset
    >>> root = mkdtemp(); _ = generate_dataset(root, num_images=3, seed=1)
    >>> dataset = load_voc(root)
    >>> len(dataset.records), dataset.classes[:2]
    (3, ['cereal_box', 'milk_carton'])
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class DatasetError(ValueError):
    """The dataset cannot be read; the message names the file and what to fix."""


@dataclass(frozen=True)
class ObjectBox:
    label: str
    box: tuple[float, float, float, float]
    difficult: bool = False


@dataclass(frozen=True)
class ImageRecord:
    image_id: int
    path: Path
    width: int
    height: int
    objects: tuple[ObjectBox, ...] = ()


@dataclass
class ParseReport:
    clipped: int = 0
    dropped: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class Dataset:
    records: list[ImageRecord]
    classes: list[str]
    report: ParseReport = field(default_factory=ParseReport)

    def class_counts(self) -> dict[str, int]:
        counts = Counter(obj.label for record in self.records for obj in record.objects)
        return {name: counts.get(name, 0) for name in self.classes}


# ---------------------------------------------------------------- shared helpers


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the file header; a clear error if it is missing or not an image."""
    try:
        with Image.open(path) as image:
            return image.size
    except FileNotFoundError:
        raise DatasetError(f"image {path} does not exist") from None
    except (OSError, Image.UnidentifiedImageError) as exc:
        raise DatasetError(f"image {path} cannot be read: {exc}") from None


def clip_box(box: Sequence[float], *, width: int, height: int, where: str, report: ParseReport,
             min_box_size: float = 1.0) -> tuple[float, float, float, float] | None:
    """Clip ``box`` to the image; ``None`` if nothing (or less than ``min_box_size`` px) is left.

    Example:
        >>> clip_box((-5, 10, 50, 300), width=100, height=200, where="x", report=ParseReport())
        (0.0, 10.0, 50.0, 200.0)
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise DatasetError(f"{where}: box {list(box)} has a non-finite coordinate")
    if x2 < x1 or y2 < y1:
        raise DatasetError(f"{where}: box {list(box)} has x2 < x1 or y2 < y1 (expected xmin, ymin, xmax, ymax)")
    clipped = (min(max(x1, 0.0), float(width)), min(max(y1, 0.0), float(height)),
               min(max(x2, 0.0), float(width)), min(max(y2, 0.0), float(height)))
    if clipped[2] - clipped[0] < min_box_size or clipped[3] - clipped[1] < min_box_size:
        report.dropped += 1
        report.warnings.append(f"{where}: box {list(box)} lies outside the {width}x{height} image; dropped")
        return None
    if clipped != (x1, y1, x2, y2):
        report.clipped += 1
    return clipped


def _check_classes(found: Iterable[str], classes: Sequence[str] | None, source: str) -> list[str]:
    found = sorted(set(found))
    if classes is None:
        return found
    unknown = [name for name in found if name not in classes]
    if unknown:
        raise DatasetError(
            f"{source}: class(es) {', '.join(map(repr, unknown))} are not in --classes "
            f"({', '.join(classes)}); add them or fix the annotations")
    return list(classes)


# ---------------------------------------------------------------- Pascal VOC


def _xml_text(node: ET.Element, tag: str, where: str, *, required: bool = True) -> str | None:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        if required:
            raise DatasetError(f"{where}: missing <{tag}>")
        return None
    return child.text.strip()


def _xml_number(node: ET.Element, tag: str, where: str) -> float:
    text = _xml_text(node, tag, where)
    try:
        return float(text)
    except ValueError:
        raise DatasetError(f"{where}: <{tag}> is {text!r}, not a number") from None


def _find_image(images_dir: Path, xml_path: Path, filename: str | None) -> Path:
    if filename:
        candidate = images_dir / Path(filename).name
        if candidate.is_file():
            return candidate
    for suffix in IMAGE_SUFFIXES:  # <filename> missing or stale: fall back to the XML's stem
        for variant in (suffix, suffix.upper()):
            candidate = images_dir / (xml_path.stem + variant)
            if candidate.is_file():
                return candidate
    named = f"{filename!r} " if filename else ""
    raise DatasetError(f"{xml_path}: image {named}not found in {images_dir} (also tried {xml_path.stem}.*)")


def parse_voc_file(xml_path: Path, *, images_dir: Path, image_id: int, report: ParseReport,
                   min_box_size: float = 1.0) -> ImageRecord:
    """One VOC XML file -> ``ImageRecord`` (boxes clipped per the module policy)."""
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as exc:
        raise DatasetError(f"{xml_path}: malformed XML ({exc})") from None
    if root.tag != "annotation":
        raise DatasetError(f"{xml_path}: root element is <{root.tag}>, expected <annotation> (Pascal VOC)")
    path = _find_image(images_dir, xml_path, _xml_text(root, "filename", str(xml_path), required=False))
    width, height = image_size(path)
    size = root.find("size")
    if size is not None and size.find("width") is not None and size.find("height") is not None:
        declared = (_xml_number(size, "width", str(xml_path)), _xml_number(size, "height", str(xml_path)))
        if declared != (width, height):
            report.warnings.append(f"{xml_path}: <size> says {declared[0]:g}x{declared[1]:g}, "
                                   f"the image is {width}x{height}; using the image")
    objects = []
    for index, node in enumerate(root.findall("object")):
        where = f"{xml_path} object {index}"
        label = _xml_text(node, "name", where)
        bndbox = node.find("bndbox")
        if bndbox is None:
            raise DatasetError(f"{where}: missing <bndbox>")
        raw = tuple(_xml_number(bndbox, tag, where) for tag in ("xmin", "ymin", "xmax", "ymax"))
        box = clip_box(raw, width=width, height=height, where=where, report=report, min_box_size=min_box_size)
        if box is not None:
            difficult = (_xml_text(node, "difficult", where, required=False) or "0") == "1"
            objects.append(ObjectBox(label=label, box=box, difficult=difficult))
    return ImageRecord(image_id=image_id, path=path, width=width, height=height, objects=tuple(objects))


def load_voc(root: str | Path, *, classes: Sequence[str] | None = None, annotations_dir: str = "annotations",
             images_dir: str = "images", min_box_size: float = 1.0) -> Dataset:
    """Read ``root/annotations/*.xml`` + ``root/images/`` (icevision's fridge layout).

    ``classes`` fixes the class list and order (unknown names are an error); by default the sorted set of
    names found.
    """
    root = Path(root)
    ann_dir, img_dir = root / annotations_dir, root / images_dir
    for directory, what in ((ann_dir, "annotations"), (img_dir, "images")):
        if not directory.is_dir():
            raise DatasetError(f"{directory} does not exist: a VOC dataset needs {annotations_dir}/ and {images_dir}/")
    xml_files = sorted(ann_dir.glob("*.xml"))
    if not xml_files:
        raise DatasetError(f"{ann_dir} holds no *.xml annotation files")
    report = ParseReport()
    records = [parse_voc_file(path, images_dir=img_dir, image_id=i + 1, report=report, min_box_size=min_box_size)
               for i, path in enumerate(xml_files)]
    names = _check_classes((o.label for r in records for o in r.objects), classes, str(ann_dir))
    if not names:
        raise DatasetError(f"{ann_dir}: no objects in any annotation and no --classes given; nothing to learn")
    return Dataset(records=records, classes=names, report=report)


# ---------------------------------------------------------------- COCO JSON


def _coco_list(data: dict, key: str, source: Path, *, required: bool = True) -> list:
    value = data.get(key, None if required else [])
    if not isinstance(value, list):
        raise DatasetError(f"{source}: \"{key}\" must be a list" + (" (is it COCO instances JSON?)" if value is None else ""))
    return value


def load_coco(annotation_file: str | Path, *, images_dir: str | Path | None = None,
              classes: Sequence[str] | None = None, min_box_size: float = 1.0) -> Dataset:
    """Read COCO instances JSON; image ``file_name`` is resolved under ``images_dir`` (default: the JSON's
    folder, then its ``images/`` subfolder). Crowd annotations (``iscrowd: 1``) are skipped."""
    source = Path(annotation_file)
    try:
        data = json.loads(source.read_text())
    except FileNotFoundError:
        raise DatasetError(f"COCO annotation file {source} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{source}: malformed JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{source}: expected a JSON object with images, annotations, categories")
    categories = {}
    for cat in _coco_list(data, "categories", source):
        try:
            categories[int(cat["id"])] = str(cat["name"])
        except (KeyError, TypeError, ValueError):
            raise DatasetError(f"{source}: category {cat!r} needs an integer \"id\" and a \"name\"") from None
    base_dirs = [Path(images_dir)] if images_dir else [source.parent, source.parent / "images"]
    images = {}
    for entry in _coco_list(data, "images", source):
        try:
            image_id, file_name = int(entry["id"]), str(entry["file_name"])
        except (KeyError, TypeError, ValueError):
            raise DatasetError(f"{source}: image {entry!r} needs an integer \"id\" and a \"file_name\"") from None
        path = next((d / file_name for d in base_dirs if (d / file_name).is_file()), None)
        if path is None:
            raise DatasetError(f"{source}: image {file_name!r} (id {image_id}) not found in "
                               f"{', '.join(map(str, base_dirs))}; pass --images DIR")
        images[image_id] = path
    report = ParseReport()
    sizes = {image_id: image_size(path) for image_id, path in images.items()}
    objects: dict[int, list[ObjectBox]] = {image_id: [] for image_id in images}
    for index, ann in enumerate(_coco_list(data, "annotations", source, required=False)):
        where = f"{source} annotation {ann.get('id', index) if isinstance(ann, dict) else index}"
        if not isinstance(ann, dict) or "image_id" not in ann or "bbox" not in ann or "category_id" not in ann:
            raise DatasetError(f"{where}: needs image_id, category_id and bbox")
        if ann["image_id"] not in images:
            raise DatasetError(f"{where}: image_id {ann['image_id']!r} is not in \"images\"")
        if ann["category_id"] not in categories:
            raise DatasetError(f"{where}: category_id {ann['category_id']!r} is not in \"categories\"")
        if ann.get("iscrowd", 0):
            continue
        bbox = ann["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(isinstance(v, (int, float)) for v in bbox):
            raise DatasetError(f"{where}: bbox must be [x, y, width, height] numbers, got {bbox!r}")
        x, y, w, h = bbox
        width, height = sizes[ann["image_id"]]
        box = clip_box((x, y, x + w, y + h), width=width, height=height, where=where, report=report,
                       min_box_size=min_box_size)
        if box is not None:
            objects[ann["image_id"]].append(ObjectBox(label=categories[ann["category_id"]], box=box))
    records = [ImageRecord(image_id=i, path=images[i], width=sizes[i][0], height=sizes[i][1],
                           objects=tuple(objects[i])) for i in sorted(images)]
    names = _check_classes(categories.values(), classes, str(source)) if classes else \
        [categories[k] for k in sorted(categories)]
    if not names:
        raise DatasetError(f"{source}: no categories")
    return Dataset(records=records, classes=names, report=report)


def load_dataset(path: str | Path, *, classes: Sequence[str] | None = None, images_dir: str | Path | None = None,
                 ) -> Dataset:
    """A VOC folder or a COCO ``.json`` file, by what ``path`` is."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return load_coco(path, images_dir=images_dir, classes=classes)
    if path.is_dir():
        return load_voc(path, classes=classes)
    raise DatasetError(f"{path}: give a VOC folder (annotations/ + images/) or a COCO instances .json file")


# ---------------------------------------------------------------- split


def split_records(records: Sequence[ImageRecord], *, val_fraction: float = 0.2, seed: int = 0,
                  ) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """Seeded train/val split, stratified by class.

    Each image is put in the stratum of its rarest class (by object count over the dataset; empty images form
    their own stratum); every stratum contributes ``round(n * val_fraction)`` images to val (at least one
    when it has two or more, so every class appears in val when it can). Deterministic for a seed and
    independent of the input order.

    Example:
        >>> recs = [ImageRecord(i, Path(f"{i}.jpg"), 10, 10, (ObjectBox("a", (0, 0, 5, 5)),)) for i in range(10)]
        >>> train, val = split_records(recs, val_fraction=0.2, seed=0)
        >>> len(train), len(val)
        (8, 2)
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    frequency = Counter(o.label for r in records for o in r.objects)
    strata: dict[str, list[ImageRecord]] = {}
    for record in sorted(records, key=lambda r: (str(r.path), r.image_id)):
        labels = {o.label for o in record.objects}
        key = min(labels, key=lambda name: (frequency[name], name)) if labels else ""
        strata.setdefault(key, []).append(record)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for key in sorted(strata):
        members = strata[key]
        order = rng.permutation(len(members))
        n_val = int(round(len(members) * val_fraction))
        if val_fraction > 0 and n_val == 0 and len(members) >= 2:
            n_val = 1
        val += [members[i] for i in order[:n_val]]
        train += [members[i] for i in order[n_val:]]
    key = lambda r: r.image_id  # noqa: E731 - stable output order
    return sorted(train, key=key), sorted(val, key=key)
