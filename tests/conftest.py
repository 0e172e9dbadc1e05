"""Shared fixtures: known-answer bundles, event fixtures, a real moto server process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.known_answer import build_known_answer_bundle, square_image
from tests.support.moto import aws_env, moto_server

EVENTS_DIR = Path(__file__).parent / "fixtures" / "events"


def load_event(name: str) -> dict:
    """A JSON event fixture from tests/fixtures/events/."""
    return json.loads((EVENTS_DIR / name).read_text())


@pytest.fixture(scope="session")
def known_answer_bundles(tmp_path_factory):
    """Factory: ``known_answer_bundles(output_format=..., resize=..., pad_position=...)`` -> Bundle (cached)."""
    cache = {}

    def make(**kwargs):
        key = tuple(sorted(kwargs.items()))
        if key not in cache:
            cache[key] = build_known_answer_bundle(tmp_path_factory.mktemp("known-answer"), **kwargs)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def known_answer_bundle(known_answer_bundles):
    """The default known-answer bundle: boxes_scores_labels, letterbox, centered padding, ImageNet norm."""
    return known_answer_bundles()


@pytest.fixture(scope="session")
def square_jpeg():
    """The image in the event fixtures: 160x120, white square (40, 30)-(120, 90)."""
    return square_image(width=160, height=120, box=(40, 30, 120, 90))


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory):
    """A real moto server process on 127.0.0.1 for the whole session; dummy credentials in the env."""
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with moto_server(log) as endpoint, aws_env(endpoint):
        yield endpoint
