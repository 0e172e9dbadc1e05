"""The zoo's registry: every family file is found, names agree, and each contract passes the Lambda's parser."""

from __future__ import annotations

import pytest

import zoo
from detection.bundle import parse_manifest
from train.predict import serving_manifest
from zoo.detr import DetrFamily


def test_every_family_module_is_found_and_names_agree():
    assert {"retinanet", "dfine"} <= set(zoo.FAMILIES)
    for name, family in zoo.FAMILIES.items():
        assert family.name == name and family.archs
        assert all(spec.name == arch and spec.family == name for arch, spec in family.archs.items())
    assert len(zoo.ARCHS) == sum(len(f.archs) for f in zoo.FAMILIES.values())  # no name in two families


@pytest.mark.parametrize("arch", sorted(zoo.ARCHS))
def test_each_arch_has_a_valid_serving_contract(arch):
    family = zoo.family_of(arch)
    manifest = serving_manifest(arch=arch, input_size=family.archs[arch].default_input_size)
    assert manifest.input.name == family.input_name
    assert manifest.output.format == family.output_block()["format"]
    assert parse_manifest(manifest.to_dict()).preprocessing == manifest.preprocessing
    if isinstance(family, DetrFamily):
        assert "/" in family.hub_id(arch)  # published weights for users with the hub


def test_unknown_arch_is_one_clear_error():
    with pytest.raises(zoo.ModelError, match="unknown --arch 'yolo'; choose one of retinanet|unknown --arch 'yolo'"):
        zoo.arch_spec("yolo")
