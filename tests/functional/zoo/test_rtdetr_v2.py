"""RT-DETR v2 (zoo/rtdetr_v2.py): exports offline through the parity gate, the handler serves it, train fit trains it."""

from __future__ import annotations

import pytest

import zoo

from .conftest import export_random, fit_one_epoch, serve

pytestmark = pytest.mark.slow
ARCH = "rtdetr-v2-r18"  # the smallest published size


def test_contract_is_the_published_processor():
    family = zoo.family_of(ARCH)
    assert family.preprocessing == zoo.family_of("rtdetr-r18").preprocessing  # the same image processor
    assert family.hub_id(ARCH) == "PekingU/rtdetr_v2_r18vd"
    assert type(family.config(ARCH, num_labels=2)).__name__ == "RTDetrV2Config"


def test_exports_serves_and_trains(tmp_path, two_parity_images, four_images, monkeypatch):
    bundle = export_random(ARCH, tmp_path / "bundle", two_parity_images)
    assert bundle.manifest.provenance["architecture"] == ARCH
    serve(bundle, monkeypatch)
    fit_one_epoch(ARCH, four_images, tmp_path / "run")
