"""Pre-optimized models (``optimize_for_serving``): used only when the sidecar vouches for them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detection.session import create_session, optimize_for_serving, optimized_paths, pre_optimized
from tests.support.known_answer import build_known_answer_bundle


@pytest.fixture()
def bundle(tmp_path):
    return build_known_answer_bundle(tmp_path / "bundle", height=32, width=48)


def _tensor():
    tensor = np.zeros((1, 3, 32, 48), np.float32)
    tensor[:, :, 8:20, 10:30] = 1.0
    return tensor


def test_optimized_model_is_written_used_and_gives_the_same_outputs(bundle):
    optimized = optimize_for_serving(bundle.root)
    assert optimized == optimized_paths(bundle.model_path)[0] and optimized.stat().st_size > 0
    assert pre_optimized(bundle.model_path, sha256=bundle.manifest.model_sha256) == optimized
    session = create_session(bundle.model_path, threads=1, sha256=bundle.manifest.model_sha256)
    assert session._model_path == str(optimized)
    plain = create_session(bundle.model_path, threads=1, sha256="0" * 64)  # stale digest: falls back
    assert plain._model_path == str(bundle.model_path)
    feed = {"images": _tensor()}
    for got, expected in zip(session.run(None, feed), plain.run(None, feed)):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("spoil", ["no sidecar", "bad json", "other version", "other machine", "other model",
                                   "no optimized file", "no weights file", "embedded weights (older stamp)"])
def test_anything_doubtful_falls_back_to_model_onnx(bundle, spoil):
    optimized = optimize_for_serving(bundle.model_path)
    _, weights, sidecar = optimized_paths(bundle.model_path)
    stamp = json.loads(sidecar.read_text())
    if spoil == "no sidecar":
        sidecar.unlink()
    elif spoil == "bad json":
        sidecar.write_text("{not json")
    elif spoil == "no optimized file":
        optimized.unlink()
    elif spoil == "no weights file":
        weights.unlink()
    elif spoil == "embedded weights (older stamp)":
        sidecar.write_text(json.dumps({k: v for k, v in stamp.items() if k != "external_weights"}))
    else:
        key = {"other version": "onnxruntime", "other machine": "machine", "other model": "source_sha256"}[spoil]
        sidecar.write_text(json.dumps({**stamp, key: "something else"}))
    assert pre_optimized(bundle.model_path) is None
    assert create_session(bundle.model_path, threads=1)._model_path == str(bundle.model_path)


def test_optimize_for_serving_names_a_missing_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.onnx"):
        optimize_for_serving(tmp_path)


def conv_model(tmp_path):
    """A conv with 51 KiB of weights (the known-answer graphs have none over the external-data threshold)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(0).standard_normal((480, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["y"], ["out"])],
        "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 480, 16, 16])],
        initializer=[numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    return path


def test_weights_go_to_their_own_file_and_the_outputs_stay_the_same(tmp_path):
    """The optimized graph keeps only its structure, the weights file the rest."""
    path = conv_model(tmp_path)
    optimized = optimize_for_serving(path)
    _, weights, _ = optimized_paths(path)
    assert weights.stat().st_size >= 480 * 3 * 3 * 3 * 4 and optimized.stat().st_size < 4096
    x = {"x": np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)}
    fast = create_session(path, threads=1)
    assert fast._model_path == str(optimized)
    plain = create_session(path, threads=1, sha256="0" * 64)
    np.testing.assert_allclose(fast.run(None, x)[0], plain.run(None, x)[0], rtol=1e-5, atol=1e-5)


def test_a_damaged_weights_file_falls_back_to_model_onnx_with_a_warning(tmp_path):
    path = conv_model(tmp_path)
    optimize_for_serving(path)
    _, weights, _ = optimized_paths(path)
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated in /tmp after it was fetched
    assert pre_optimized(path) is not None  # the files are all there: only opening them tells
    with pytest.warns(RuntimeWarning, match="model.optimized.onnx could not be opened"):
        session = create_session(path, threads=1)
    assert session._model_path == str(path)
