"""SnapStart in the local runtime around a real invoke of the built package: the runtime (awslambdaric with
AWS_LAMBDA_INITIALIZATION_TYPE=snap-start) runs init, the handler's before-snapshot hook, asks to be restored,
runs the after-restore hook, then the invocation; a failing restore hook fails the invoke, as on Lambda."""

from __future__ import annotations

import json
import shutil

from localaws.lambda_runtime import LocalFunction
from tests.support.lambda_package import link_package
from tests.functional.lambda_package.test_built_package import SQUARE_DETECTION, detections, load_event


def _messages(log_text: str) -> list[str]:
    messages = []
    for line in log_text.splitlines():
        if line.startswith("{"):
            try:
                messages.append(json.loads(line).get("message"))
            except ValueError:
                continue
    return messages


def test_hooks_run_in_lambdas_order_around_a_real_invoke(aws_package, known_answer_bundle, tmp_path):
    log = tmp_path / "fn.log"
    env = {"MODEL_URI": str(known_answer_bundle.root), "MODEL_CACHE_DIR": str(tmp_path / "cache")}
    with LocalFunction(aws_package.zip_path, env=env, snap_start=True, log_path=log) as function:
        result = function.invoke(json.dumps(load_event("direct.json")))
        assert result.function_error is None and detections(result.json()) == SQUARE_DETECTION
        assert function.lifecycle == ["snapshot", "restore", "invoke"]
    messages = [m for m in _messages(log.read_text()) if m in ("before_snapshot", "after_restore", "detect")]
    assert messages == ["before_snapshot", "after_restore", "detect"]
    restored = next(json.loads(line) for line in log.read_text().splitlines() if '"after_restore"' in line)
    assert restored["bundle_intact"] is True  # the local bundle was verified at init, confirmed by its marker


def test_on_demand_init_runs_no_hooks(aws_package, known_answer_bundle, tmp_path):
    log = tmp_path / "fn.log"
    with LocalFunction(aws_package.zip_path, env={"MODEL_URI": str(known_answer_bundle.root)},
                       log_path=log) as function:
        assert function.invoke(json.dumps(load_event("direct.json"))).function_error is None
        assert function.lifecycle == ["invoke"]
    assert not {"before_snapshot", "after_restore"} & set(_messages(log.read_text()))


def test_a_bundle_damaged_in_the_snapshot_is_dropped_and_reloaded(aws_package, known_answer_bundle, tmp_path):
    """The after-restore hook finds the model file changed since it was verified: it drops the detector, and
    the request loads the bundle again (here the damage is caught by that reload: a 500 naming sha256)."""
    probe = """
        import os
        import shutil

        from snapshot_restore_py import register_after_restore

        # into the function's own /tmp (private to its sandbox), the only place it may write
        shutil.copytree(os.path.join(os.path.dirname(__file__), "bundle-src"), "/tmp/bundle")


        def damage():
            with open("/tmp/bundle/model.onnx", "ab") as model:
                model.write(b"0")


        register_after_restore(damage)  # registered before the handler's hook, so it runs first
        import handler as real  # noqa: E402

        handler = real.handler
    """
    package = link_package(aws_package.package_dir, tmp_path / "probe-pkg", {"probe.py": probe})
    shutil.copytree(known_answer_bundle.root, package / "bundle-src")
    log = tmp_path / "fn.log"
    with LocalFunction(package, handler="probe.handler", env={"MODEL_URI": "/tmp/bundle"}, snap_start=True,
                       log_path=log) as function:
        result = function.invoke(json.dumps(load_event("direct.json")))
    restored = next(json.loads(line) for line in log.read_text().splitlines() if '"after_restore"' in line)
    assert restored["bundle_intact"] is False and restored["level"] == "WARNING"
    body = result.json()
    assert body["error"]["status"] == 500 and "sha256" in log.read_text()


def test_a_failing_restore_hook_fails_the_invoke(aws_package, known_answer_bundle, tmp_path):
    probe = """
        import handler as real
        from snapshot_restore_py import register_after_restore


        def broken():
            raise RuntimeError("cannot reconnect")


        register_after_restore(broken)
        handler = real.handler
    """
    package = link_package(aws_package.package_dir, tmp_path / "probe-pkg", {"probe.py": probe})
    with LocalFunction(package, handler="probe.handler", env={"MODEL_URI": str(known_answer_bundle.root)},
                       snap_start=True, log_path=tmp_path / "fn.log") as function:
        result = function.invoke(json.dumps(load_event("direct.json")))
        assert function.lifecycle == ["snapshot", "restore"]
    assert result.function_error == "Unhandled" and "cannot reconnect" in result.json()["errorMessage"]
