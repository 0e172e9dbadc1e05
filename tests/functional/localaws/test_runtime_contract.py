"""How the local runtime reports what Lambda reports: handler errors, init errors, timeouts, crashes, context
and environment — with tiny handler packages (pure Python, so no build is needed) under the real awslambdaric."""

from __future__ import annotations

import json

import pytest

from localaws.lambda_runtime import FunctionPool, LocalFunction, PackageError

ECHO = """
    import os, sys

    def handler(event, context):
        return {"event": event, "request_id": context.aws_request_id, "arn": context.invoked_function_arn,
                "remaining_ms": context.get_remaining_time_in_millis(), "memory": context.memory_limit_in_mb,
                "name": context.function_name, "cwd": os.getcwd(), "model": os.environ.get("MODEL_URI"),
                "handler": os.environ["_HANDLER"], "pid": os.getpid()}
"""


def test_context_environment_and_cwd_are_lambdas(handler_package, tmp_path):
    package = handler_package(ECHO)
    with LocalFunction(package, env={"MODEL_URI": "s3://b/p/"}, function_name="fn", memory_mb=512, timeout_s=7,
                       log_path=tmp_path / "fn.log") as function:
        result = function.invoke(b'{"a": [1, 2]}', request_id="req-42")
    out = result.json()
    assert out["event"] == {"a": [1, 2]} and out["request_id"] == "req-42"
    assert out["arn"] == "arn:aws:lambda:us-east-1:000000000000:function:fn" and out["name"] == "fn"
    assert out["memory"] == "512" and 0 < out["remaining_ms"] <= 7000
    assert out["cwd"] == str(package) and out["model"] == "s3://b/p/" and out["handler"] == "handler.handler"


def test_handler_error_is_unhandled_with_lambdas_payload_and_the_process_lives_on(handler_package, tmp_path):
    package = handler_package("""
        import os

        def handler(event, context):
            if event.get("fail"):
                raise ValueError("boom " + event["fail"])
            return {"pid": os.getpid()}
    """)
    with LocalFunction(package, log_path=tmp_path / "fn.log") as function:
        pid = function.invoke(b"{}").json()["pid"]
        result = function.invoke(b'{"fail": "now"}')
        after = function.invoke(b"{}")
    error = result.json()
    assert result.status_code == 200 and result.function_error == "Unhandled"
    assert error["errorType"] == "ValueError" and error["errorMessage"] == "boom now"
    assert isinstance(error["stackTrace"], list) and any("raise ValueError" in line for line in error["stackTrace"])
    assert "ValueError" in result.log_tail
    assert after.function_error is None and after.json()["pid"] == pid and not after.cold_start


@pytest.mark.parametrize("source, handler, error_type, message", [
    ("raise RuntimeError('no config at import')\n", "handler.handler", "RuntimeError", "no config at import"),
    ("import no_such_module_anywhere\n", "handler.handler", "Runtime.ImportModuleError", "no_such_module_anywhere"),
    ("def handler(event, context):\n    return 1\n", "handler.missing", "Runtime.HandlerNotFound", "missing"),
    ("def handler(event, context)\n    return 1\n", "handler.handler", "Runtime.UserCodeSyntaxError", "Syntax"),
    ("", "nodots", None, None),
])
def test_init_errors_are_reported_like_lambda(handler_package, tmp_path, source, handler, error_type, message):
    package = handler_package(source)
    if error_type is None:
        with pytest.raises(PackageError, match="module.function"):
            LocalFunction(package, handler=handler)
        return
    with LocalFunction(package, handler=handler, log_path=tmp_path / "fn.log") as function:
        result = function.invoke(b"{}")
        assert function.pid is None  # the runtime exits after reporting an init error
    error = result.json()
    assert result.status_code == 200 and result.function_error == "Unhandled"
    assert error["errorType"] == error_type and message in error["errorMessage"]
    assert f"INIT_REPORT Status: error\tError Type: {error_type}" in result.log_tail


def test_timeout_kills_the_environment_and_the_next_invoke_starts_a_new_one(handler_package, tmp_path):
    package = handler_package("""
        import os, time

        def handler(event, context):
            time.sleep(event.get("sleep", 0))
            return {"pid": os.getpid()}
    """)
    with LocalFunction(package, timeout_s=1, log_path=tmp_path / "fn.log") as function:
        first_pid = function.invoke(b"{}").json()["pid"]
        result = function.invoke(b'{"sleep": 30}')
        assert function.pid is None
        again = function.invoke(b"{}")
    error = result.json()
    assert result.function_error == "Unhandled" and error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in error["errorMessage"]
    assert "Task timed out after 1.00 seconds" in result.log_tail
    assert again.cold_start and again.function_error is None and again.json()["pid"] != first_pid


def test_a_crashing_runtime_is_an_exit_error(handler_package, tmp_path):
    package = handler_package("""
        import os

        def handler(event, context):
            os._exit(3)
    """)
    with LocalFunction(package, log_path=tmp_path / "fn.log") as function:
        result = function.invoke(b"{}")
    assert result.function_error == "Unhandled"
    assert result.json()["errorType"] == "Runtime.ExitError" and "exit status 3" in result.json()["errorMessage"]


def test_response_over_6_mb_is_a_function_error(handler_package, tmp_path):
    package = handler_package("""
        def handler(event, context):
            return "x" * (7 * 1024 * 1024)
    """)
    with LocalFunction(package, log_path=tmp_path / "fn.log") as function:
        result = function.invoke(b"{}")
    assert result.function_error == "Unhandled"
    assert result.json()["errorType"] == "Function.ResponseSizeTooLarge"


def test_pool_reuses_warm_environments_and_retires_old_code(handler_package, tmp_path):
    v1 = handler_package("import os\ndef handler(e, c):\n    return {'v': 1, 'pid': os.getpid()}\n", name="v1")
    v2 = handler_package("import os\ndef handler(e, c):\n    return {'v': 2, 'pid': os.getpid()}\n", name="v2")
    made = []

    def factory(package):
        def make():
            made.append(LocalFunction(package, function_name="fn", log_path=tmp_path / "fn.log"))
            return made[-1]
        return make

    with FunctionPool() as pool:
        a = pool.invoke(("fn", "sha-v1"), factory(v1), b"{}").json()
        b = pool.invoke(("fn", "sha-v1"), factory(v1), b"{}").json()
        c = pool.invoke(("fn", "sha-v2"), factory(v2), b"{}").json()
        assert a == b and a["v"] == 1 and len(made) == 2 and c["v"] == 2
        assert made[0].pid is None  # v1's environment was stopped when v2 arrived
    assert made[1].pid is None


@pytest.mark.parametrize("extension, arch, message", [
    ("_core.cpython-312-x86_64-linux-gnu.so", "x86_64", "Python 3.12 x86_64 but this runtime is Python 3.13 x86_64"),
    ("_core.cpython-311-x86_64-linux-gnu.so", "x86_64", "--arch x86_64"),
    ("_core.cpython-313-aarch64-linux-gnu.so", "x86_64", "Python 3.13 arm64 but this runtime is Python 3.13 x86_64"),
])
def test_a_package_for_another_python_or_architecture_is_a_clear_error(tmp_path, extension, arch, message):
    foreign = tmp_path / "foreign"
    (foreign / "numpy").mkdir(parents=True)
    (foreign / "numpy" / extension).write_bytes(b"\0")
    (foreign / "handler.py").write_text("def handler(e, c):\n    return 1\n")
    with pytest.raises(PackageError, match=message):
        LocalFunction(foreign, arch=arch)


def test_missing_package_and_bad_zip_are_clear_errors(tmp_path):
    with pytest.raises(PackageError, match="does not exist"):
        LocalFunction(tmp_path / "nope.zip")
    (tmp_path / "bad.zip").write_text("not a zip")
    with pytest.raises(PackageError, match="not a zip"):
        LocalFunction(tmp_path / "bad.zip", cache_root=tmp_path / "cache")
