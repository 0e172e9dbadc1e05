"""The cached demo detector: trained once per recipe, reused afterwards, retrained when the recipe changes."""

from __future__ import annotations

import json

import pytest

from train.demo import DEMO_RECIPE, demo_dir, ensure_demo_checkpoint, recipe_key

TINY_DATA = {"num_images": 12, "seed": 2, "min_size": 80, "max_size": 96}
TINY_RECIPE = {**DEMO_RECIPE, "input_size": [64, 64], "epochs": 1, "model_kwargs": {"fpn_channels": 16}}
pytestmark = pytest.mark.slow


def test_recipe_key_changes_with_the_recipe():
    assert recipe_key(TINY_DATA, TINY_RECIPE) == recipe_key(dict(TINY_DATA), dict(TINY_RECIPE))
    assert recipe_key(TINY_DATA, TINY_RECIPE) != recipe_key(TINY_DATA, {**TINY_RECIPE, "epochs": 2})
    assert recipe_key(TINY_DATA, TINY_RECIPE) != recipe_key({**TINY_DATA, "seed": 3}, TINY_RECIPE)


def test_demo_checkpoint_is_trained_once_then_cached(tmp_path):
    messages = []
    first = ensure_demo_checkpoint(tmp_path, dataset=TINY_DATA, recipe=TINY_RECIPE, log=messages.append)
    assert first.is_file() and first.parent == demo_dir(tmp_path, dataset=TINY_DATA, recipe=TINY_RECIPE)
    assert any("training the demo detector" in m for m in messages)
    done = json.loads((first.parent / "done.json").read_text())
    assert done["final"]["epoch"] == 1
    stamp = first.stat().st_mtime_ns
    messages.clear()
    again = ensure_demo_checkpoint(tmp_path, dataset=TINY_DATA, recipe=TINY_RECIPE, log=messages.append)
    assert again == first and again.stat().st_mtime_ns == stamp and messages == []
