"""DEIMv2 (zoo/deimv2.py): exports offline through the parity gate, the handler serves it, train fit trains it."""

from __future__ import annotations

import pytest

import zoo

from .conftest import export_random, fit_one_epoch, serve

pytestmark = pytest.mark.slow
ARCH = "deimv2-n"  # the smallest size on a 640 input
INPUT = 320  # strides 16/32 only: 320 gives 500 feature positions for its 300 queries (160 gives 125)


def test_contract_is_the_published_recipe():
    family = zoo.family_of(ARCH)
    assert family.preprocessing == zoo.family_of("dfine-n").preprocessing  # x/255, no mean/std, stretch
    assert family.hub_id(ARCH) == "Intellindust/DEIMv2_HGNetv2_N_COCO"
    config = family.config(ARCH, num_labels=80)
    assert type(config).__name__ == "Deimv2Config"
    assert sum(p.numel() for p in family.from_config(config).parameters()) == pytest.approx(3.6e6, rel=0.02)


def test_too_small_an_input_is_refused_with_the_reason():
    family = zoo.family_of(ARCH)
    with pytest.raises(zoo.ModelError, match="125 positions for 300 queries"):
        family.check_input_size(family.from_config(family.config(ARCH, num_labels=2)), height=160, width=160)


def test_exports_serves_and_trains(tmp_path, two_parity_images, four_images, monkeypatch):
    bundle = export_random(ARCH, tmp_path / "bundle", two_parity_images, input_size=INPUT)
    assert bundle.manifest.provenance["architecture"] == ARCH
    serve(bundle, monkeypatch)
    fit_one_epoch(ARCH, four_images, tmp_path / "run", input_size=INPUT)
