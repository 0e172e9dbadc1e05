"""RF-DETR (zoo/rf_detr.py): exports offline through the parity gate, the handler serves it, train fit trains it."""

from __future__ import annotations

import pytest

import zoo

from .conftest import export_random, fit_one_epoch, serve

pytestmark = pytest.mark.slow
ARCH = "rf-detr-nano"  # the smallest published size
INPUT = 288  # a multiple of patch 16 x 2 windows with 324 patches for its 300 queries (160 has 100)


def test_contract_is_the_published_recipe():
    family = zoo.family_of(ARCH)
    assert family.preprocessing["mean"] == zoo.IMAGENET_MEAN and family.preprocessing["std"] == zoo.IMAGENET_STD
    assert family.preprocessing["resize"] == "stretch" and family.preprocessing["scale"] == pytest.approx(1 / 255)
    assert family.archs[ARCH].default_input_size == (384, 384)
    assert family.hub_id(ARCH) == "Roboflow/rf-detr-nano"
    model = family.from_config(family.config(ARCH, num_labels=80))
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(30.5e6, rel=0.01)  # rfdetr's RF-DETR-N


@pytest.mark.parametrize("side, fits", [(288, True), (384, True), (160, False), (300, False)])
def test_input_size_must_tile_the_windows_and_hold_the_queries(side, fits):
    family = zoo.family_of(ARCH)
    model = family.from_config(family.config(ARCH, num_labels=2))
    if fits:
        family.check_input_size(model, height=side, width=side)
    else:
        with pytest.raises(zoo.ModelError, match="multiples of 32"):
            family.check_input_size(model, height=side, width=side)


def test_exports_serves_and_trains(tmp_path, two_parity_images, four_images, monkeypatch):
    bundle = export_random(ARCH, tmp_path / "bundle", two_parity_images, input_size=INPUT)
    assert bundle.manifest.provenance["architecture"] == ARCH
    serve(bundle, monkeypatch)
    fit_one_epoch(ARCH, four_images, tmp_path / "run", input_size=INPUT)
