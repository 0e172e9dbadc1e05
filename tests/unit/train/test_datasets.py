"""Dataset parsers (VOC XML, COCO JSON) and the stratified split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from train.datasets import (DatasetError, ImageRecord, ObjectBox, ParseReport, clip_box, load_coco, load_dataset,
                            load_voc, split_records)


def write_image(path: Path, width: int = 100, height: int = 80) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (120, 30, 200)).save(path)
    return path


def voc_object(name: str, box) -> str:
    x1, y1, x2, y2 = box
    return (f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
            f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>")


def write_voc(root: Path, stem: str, objects: list[tuple[str, tuple]], *, image: bool = True,
              size=(100, 80), raw: str | None = None) -> None:
    if image:
        write_image(root / "images" / f"{stem}.jpg", *size)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    body = raw if raw is not None else (
        f"<annotation><filename>{stem}.jpg</filename><size><width>{size[0]}</width><height>{size[1]}</height>"
        f"</size>{''.join(voc_object(n, b) for n, b in objects)}</annotation>")
    (root / "annotations" / f"{stem}.xml").write_text(body)


def test_voc_reads_boxes_and_classes(tmp_path):
    write_voc(tmp_path, "a", [("milk", (10, 10, 50, 40)), ("can", (60, 5, 90, 70))])
    write_voc(tmp_path, "b", [("can", (0, 0, 20, 20))])
    dataset = load_voc(tmp_path)
    assert dataset.classes == ["can", "milk"]
    assert [len(r.objects) for r in dataset.records] == [2, 1]
    assert dataset.records[0].objects[0] == ObjectBox("milk", (10.0, 10.0, 50.0, 40.0))
    assert (dataset.records[0].width, dataset.records[0].height) == (100, 80)
    assert dataset.class_counts() == {"can": 2, "milk": 1}


def test_voc_empty_annotation_is_kept(tmp_path):
    write_voc(tmp_path, "a", [("milk", (10, 10, 50, 40))])
    write_voc(tmp_path, "empty", [])
    dataset = load_voc(tmp_path)
    assert [len(r.objects) for r in dataset.records] == [1, 0]


def test_voc_only_empty_annotations_need_classes(tmp_path):
    write_voc(tmp_path, "empty", [])
    with pytest.raises(DatasetError, match="no objects"):
        load_voc(tmp_path)
    assert load_voc(tmp_path, classes=["milk"]).classes == ["milk"]


@pytest.mark.parametrize("raw, message", [
    ("<annotation><object>", "malformed XML"),
    ("<notvoc/>", "expected <annotation>"),
    ("<annotation><filename>a.jpg</filename><object><bndbox><xmin>1</xmin></bndbox></object></annotation>",
     "missing <name>"),
    ("<annotation><filename>a.jpg</filename><object><name>x</name></object></annotation>", "missing <bndbox>"),
    ("<annotation><filename>a.jpg</filename><object><name>x</name><bndbox><xmin>one</xmin><ymin>1</ymin>"
     "<xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>", "not a number"),
    ("<annotation><filename>a.jpg</filename><object><name>x</name><bndbox><xmin>50</xmin><ymin>1</ymin>"
     "<xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>", "x2 < x1"),
])
def test_voc_malformed_gives_clear_error_naming_file(tmp_path, raw, message):
    write_voc(tmp_path, "a", [], raw=raw)
    with pytest.raises(DatasetError, match=message) as info:
        load_voc(tmp_path)
    assert "a.xml" in str(info.value)


def test_voc_missing_image(tmp_path):
    write_voc(tmp_path, "a", [("milk", (1, 1, 5, 5))], image=False)
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError, match="image 'a.jpg' not found"):
        load_voc(tmp_path)


def test_voc_missing_folders(tmp_path):
    with pytest.raises(DatasetError, match="annotations"):
        load_voc(tmp_path)


def test_voc_unknown_class_against_given_classes(tmp_path):
    write_voc(tmp_path, "a", [("milk", (1, 1, 5, 5)), ("beer", (1, 1, 9, 9))])
    with pytest.raises(DatasetError, match="'beer' are not in --classes"):
        load_voc(tmp_path, classes=["milk"])


def test_voc_boxes_outside_image_are_clipped_or_dropped(tmp_path):
    write_voc(tmp_path, "a", [("milk", (-10, 5, 60, 200)), ("milk", (150, 10, 180, 40)), ("milk", (5, 5, 20, 20))])
    dataset = load_voc(tmp_path)
    boxes = [o.box for o in dataset.records[0].objects]
    assert boxes == [(0.0, 5.0, 60.0, 80.0), (5.0, 5.0, 20.0, 20.0)]
    assert (dataset.report.clipped, dataset.report.dropped) == (1, 1)
    assert "outside" in dataset.report.warnings[0]


def test_voc_image_size_from_file_wins(tmp_path):
    write_voc(tmp_path, "a", [("milk", (1, 1, 5, 5))], size=(100, 80))
    xml = tmp_path / "annotations" / "a.xml"
    xml.write_text(xml.read_text().replace("<width>100</width>", "<width>640</width>"))
    dataset = load_voc(tmp_path)
    assert dataset.records[0].width == 100
    assert "using the image" in dataset.report.warnings[0]


@pytest.mark.parametrize("box, expected", [
    ((0, 0, 10, 10), (0.0, 0.0, 10.0, 10.0)),
    ((-5, -5, 10, 10), (0.0, 0.0, 10.0, 10.0)),
    ((90, 70, 120, 95), (90.0, 70.0, 100.0, 80.0)),
    ((100, 10, 130, 20), None),   # entirely right of the image
    ((10, 10, 10.5, 30), None),   # thinner than 1 px
])
def test_clip_box_table(box, expected):
    assert clip_box(box, width=100, height=80, where="t", report=ParseReport()) == expected


# ---------------------------------------------------------------- COCO


def write_coco(tmp_path: Path, data) -> Path:
    write_image(tmp_path / "images" / "a.jpg")
    write_image(tmp_path / "images" / "b.jpg")
    path = tmp_path / "instances.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def coco_doc(**overrides):
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
        "categories": [{"id": 3, "name": "milk"}, {"id": 7, "name": "can"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 30, 20]},
            {"id": 2, "image_id": 1, "category_id": 7, "bbox": [90, 70, 40, 40]},
            {"id": 3, "image_id": 1, "category_id": 7, "bbox": [0, 0, 5, 5], "iscrowd": 1},
        ],
    }
    doc.update(overrides)
    return doc


def test_coco_reads_xywh_and_clips(tmp_path):
    dataset = load_coco(write_coco(tmp_path, coco_doc()))
    assert dataset.classes == ["milk", "can"]  # category id order
    first, second = dataset.records
    assert [o.box for o in first.objects] == [(10.0, 10.0, 40.0, 30.0), (90.0, 70.0, 100.0, 80.0)]
    assert second.objects == ()  # image without annotations kept
    assert dataset.report.clipped == 1


def test_load_dataset_dispatches_on_json(tmp_path):
    assert len(load_dataset(write_coco(tmp_path, coco_doc())).records) == 2


@pytest.mark.parametrize("doc, message", [
    ("{not json", "malformed JSON"),
    ([], "expected a JSON object"),
    ({"images": []}, "\"categories\" must be a list"),
    (coco_doc(annotations=[{"id": 9, "image_id": 5, "category_id": 3, "bbox": [0, 0, 1, 1]}]),
     "image_id 5 is not in"),
    (coco_doc(annotations=[{"id": 9, "image_id": 1, "category_id": 99, "bbox": [0, 0, 1, 1]}]),
     "category_id 99 is not in"),
    (coco_doc(annotations=[{"id": 9, "image_id": 1, "category_id": 3, "bbox": [0, 0, 1]}]), "bbox must be"),
    (coco_doc(annotations=[{"id": 9, "image_id": 1, "category_id": 3, "bbox": [5, 5, -3, 2]}]), "x2 < x1"),
    (coco_doc(images=[{"id": 1, "file_name": "missing.jpg"}], annotations=[]), "'missing.jpg' \\(id 1\\) not found"),
    (coco_doc(categories=[{"name": "x"}]), "needs an integer \"id\""),
])
def test_coco_errors(tmp_path, doc, message):
    with pytest.raises(DatasetError, match=message):
        load_coco(write_coco(tmp_path, doc))


def test_coco_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_coco(tmp_path / "nope.json")


def test_corrupt_image_is_a_clear_error(tmp_path):
    write_voc(tmp_path, "a", [("milk", (1, 1, 5, 5))])
    (tmp_path / "images" / "a.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="cannot be read"):
        load_voc(tmp_path)


# ---------------------------------------------------------------- split


def make_records(labels_per_image: list[list[str]]) -> list[ImageRecord]:
    return [ImageRecord(i + 1, Path(f"img{i:03d}.jpg"), 10, 10,
                        tuple(ObjectBox(name, (0, 0, 5, 5)) for name in labels))
            for i, labels in enumerate(labels_per_image)]


def test_split_is_seeded_disjoint_and_complete():
    records = make_records([["a"]] * 30 + [["b"]] * 10 + [[]] * 5)
    train, val = split_records(records, val_fraction=0.2, seed=3)
    assert {r.image_id for r in train} | {r.image_id for r in val} == {r.image_id for r in records}
    assert not {r.image_id for r in train} & {r.image_id for r in val}
    assert split_records(list(reversed(records)), val_fraction=0.2, seed=3) == (train, val)
    assert split_records(records, val_fraction=0.2, seed=4)[1] != val


def test_split_is_stratified_by_rarest_class():
    records = make_records([["common"]] * 40 + [["common", "rare"]] * 5 + [[]] * 10)
    _, val = split_records(records, val_fraction=0.2, seed=0)
    labels = [{o.label for o in r.objects} for r in val]
    assert sum("rare" in s for s in labels) == 1        # round(5 * 0.2)
    assert sum(s == {"common"} for s in labels) == 8    # 40 * 0.2
    assert sum(not s for s in labels) == 2              # empty images: their own stratum


def test_split_gives_every_class_a_val_image_when_it_can():
    records = make_records([["a"]] * 20 + [["b"]] * 2)
    _, val = split_records(records, val_fraction=0.1, seed=0)
    assert {o.label for r in val for o in r.objects} == {"a", "b"}


@pytest.mark.parametrize("records", [[], make_records([["a"]])])
def test_split_small_inputs(records):
    train, val = split_records(records, val_fraction=0.2, seed=0)
    assert len(train) == len(records) and val == []


def test_split_rejects_bad_fraction():
    with pytest.raises(ValueError, match="val_fraction"):
        split_records(make_records([["a"]]), val_fraction=1.0)
