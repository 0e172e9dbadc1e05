"""Lambda's sandbox, locally: the zip unpacked read-only at the task root (a write beside the code fails), a
private /tmp per environment capped at the ephemeral storage, Lambda's environment variables, and MemorySize
enforced and reported like Lambda's out-of-memory kill — under the real awslambdaric and the Lambda Python."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from localaws.lambda_runtime import LocalFunction

PROBE = """
    import errno, os, sys

    def attempt(path, size=1):
        try:
            with open(path, "wb") as handle:
                handle.write(b"x" * size)
            return "ok"
        except OSError as error:
            return errno.errorcode[error.errno]

    def handler(event, context):
        if event.get("allocate_mb"):
            hog = bytearray(event["allocate_mb"] * 2**20)   # zero pages: touch them so they count
            for offset in range(0, len(hog), 4096):
                hog[offset] = 1
            return len(hog)
        root = os.environ["LAMBDA_TASK_ROOT"]
        seen_before = sorted(os.listdir("/tmp"))
        return {
            "beside_code": attempt(os.path.join(root, "written.txt")),
            "over_code": attempt(os.path.join(root, "handler.py")),
            "tmp": attempt("/tmp/scratch.bin", event.get("tmp_mb", 1) * 2**20),
            "tmp_seen_before": seen_before,
            "env": {key: os.environ.get(key) for key in (
                "LAMBDA_TASK_ROOT", "AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "_HANDLER", "AWS_REGION",
                "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_RUNTIME_API", "LAMBDA_RUNTIME_DIR", "TZ")},
            "cwd": os.getcwd(), "python": "%d.%d" % sys.version_info[:2],
        }
"""


@pytest.fixture()
def probe_zip(handler_package, tmp_path) -> Path:
    folder = handler_package(PROBE)
    zip_path = tmp_path / "probe.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.write(folder / "handler.py", "handler.py")
    return zip_path


def test_task_root_is_read_only_tmp_is_private_and_the_environment_is_lambdas(probe_zip, tmp_path):
    with LocalFunction(probe_zip, function_name="probe", memory_mb=256, region="eu-west-1",
                       cache_root=tmp_path / "cache", log_path=tmp_path / "fn.log") as function:
        first = function.invoke(b"{}").json()
        second = function.invoke(b"{}").json()
    assert first["beside_code"] in ("EROFS", "EACCES") and first["over_code"] in ("EROFS", "EACCES"), first
    assert first["tmp"] == "ok" and "scratch.bin" not in first["tmp_seen_before"]  # a fresh /tmp of its own
    assert "scratch.bin" in second["tmp_seen_before"]  # ... kept while the environment is warm
    env = first["env"]
    assert env["LAMBDA_TASK_ROOT"] == first["cwd"] and env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.13"
    assert (env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], env["_HANDLER"], env["AWS_REGION"]) == \
        ("256", "handler.handler", "eu-west-1")
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "probe" and env["AWS_LAMBDA_RUNTIME_API"] and env["TZ"] == ":UTC"
    assert first["python"] == "3.13"
    assert "not isolated" not in (tmp_path / "fn.log").read_text()


def test_tmp_is_capped_at_the_ephemeral_storage(probe_zip, tmp_path):
    with LocalFunction(probe_zip, ephemeral_storage_mb=16, cache_root=tmp_path / "cache",
                       log_path=tmp_path / "fn.log") as function:
        assert function.invoke(b'{"tmp_mb": 8}').json()["tmp"] == "ok"
        assert function.invoke(b'{"tmp_mb": 24}').json()["tmp"] == "ENOSPC"


def test_memory_size_is_enforced_like_lambdas_out_of_memory(probe_zip, tmp_path):
    with LocalFunction(probe_zip, memory_mb=128, cache_root=tmp_path / "cache",
                       log_path=tmp_path / "fn.log") as function:
        assert function.invoke(b'{"allocate_mb": 32}').json() == 32 * 2**20
        killed = function.invoke(b'{"allocate_mb": 400}')
        again = function.invoke(b'{"allocate_mb": 32}')
    error = killed.json()
    assert killed.status_code == 200 and killed.function_error == "Unhandled"
    assert error["errorType"] == "Runtime.OutOfMemory"
    assert error["errorMessage"] == f"RequestId: {killed.request_id} Error: Runtime exited with error: signal: killed"
    log = (tmp_path / "fn.log").read_text()
    assert "Runtime.OutOfMemory" in log and "Memory Size: 128 MB\tMax Memory Used: 128 MB" in log
    assert again.cold_start and again.function_error is None  # a new environment takes the next invoke
