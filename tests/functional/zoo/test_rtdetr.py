"""RT-DETR (zoo/rtdetr.py): exports offline through the parity gate, the handler serves it, train fit trains it."""

from __future__ import annotations

import pytest

import zoo

from .conftest import export_random, fit_one_epoch, serve

pytestmark = pytest.mark.slow
ARCH = "rtdetr-r18"  # the smallest published size


def test_contract_is_the_published_processor():
    family = zoo.family_of(ARCH)
    assert family.preprocessing["resize"] == "stretch" and family.preprocessing["mean"] is None
    assert family.preprocessing["scale"] == pytest.approx(1 / 255)
    assert family.hub_id(ARCH) == "PekingU/rtdetr_r18vd"
    assert set(family.archs) == {"rtdetr-r18", "rtdetr-r34", "rtdetr-r50", "rtdetr-r101"}


def test_exports_serves_and_trains(tmp_path, two_parity_images, four_images, monkeypatch):
    bundle = export_random(ARCH, tmp_path / "bundle", two_parity_images)
    assert bundle.manifest.output.top_k == 300
    serve(bundle, monkeypatch)
    fit_one_epoch(ARCH, four_images, tmp_path / "run")
