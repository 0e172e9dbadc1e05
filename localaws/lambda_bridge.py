"""Run functions deployed on the local moto for real: code from the zip in local S3, handler and environment
from the function configuration, executed by ``localaws.lambda_runtime.LocalFunction`` (awslambdaric + a local
Runtime API, warm workers). Used by the patched Lambda Invoke API (``localaws.lambda_async``) and by the API
Gateway data plane.

What the function sees, as on AWS: its configured environment plus ``AWS_REGION``, ``AWS_LAMBDA_FUNCTION_*``
and credentials; here also ``AWS_ENDPOINT_URL`` so its boto3 reads the model bundle from the local S3.

Example:
    >>> runtime_env(function_name="f", memory_mb=512, region="us-east-1", endpoint="http://127.0.0.1:1",
    ...             configured={"MODEL_URI": "s3://b/m/"})["AWS_ENDPOINT_URL"]
    'http://127.0.0.1:1'
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from .lambda_runtime import FunctionPool, LocalFunction

_pool: Any = None
_pool_lock = threading.Lock()

LOG_RESULT_BYTES = 4096  # Lambda returns the last 4 KB of the log with LogType=Tail


def runtime_env(*, function_name: str, memory_mb: int, region: str, endpoint: str,
                configured: dict[str, str]) -> dict[str, str]:
    """The environment a function process gets (configured variables win, except the reserved AWS ones)."""
    reserved = {
        "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
        "AWS_LAMBDA_FUNCTION_NAME": function_name, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
        "AWS_ENDPOINT_URL": endpoint,
    }
    return {**{key: str(value) for key, value in configured.items()}, **reserved}


def _code_dir() -> Path:
    home = Path(os.environ.get("LOCALAWS_HOME", Path(__file__).resolve().parent.parent / ".cache" / "localaws"))
    path = home / "functions"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _package_for(fn: Any) -> Path:
    """The function's zip as a file (content-addressed, so a code update gives a new package). The address is
    moto's CodeSha256 when it has one: hashing a 46 MB zip on every invoke cost ~60 ms of each request."""
    code = fn.code_bytes or b""
    if not code:
        raise RuntimeError(f"function {fn.function_name} has no code")
    recorded = getattr(fn, "code_sha_256", "") or ""
    digest = (base64.b64decode(recorded).hex() if recorded else hashlib.sha256(code).hexdigest())[:16]
    path = _code_dir() / f"{fn.function_name}-{digest}.zip"
    if not path.exists():
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # concurrent first invokes
        tmp.write_bytes(code)
        tmp.replace(path)
    return path


def _function_pool() -> Any:
    global _pool
    with _pool_lock:
        if _pool is None:
            # LOCALAWS_MAX_ENVIRONMENTS / LOCALAWS_MAX_QUEUED: per function, how many run at once and how many
            # more wait before invokes are throttled (429 TooManyRequestsException)
            _pool = FunctionPool(max_per_key=int(os.environ.get("LOCALAWS_MAX_ENVIRONMENTS") or 4),
                                 max_queued=int(os.environ.get("LOCALAWS_MAX_QUEUED") or 64))
        return _pool


def shutdown_pool() -> None:
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.close()


def _invoke_local(fn: Any, payload: bytes) -> Any:
    """Invoke on a warm ``LocalFunction`` for this function's current code and configuration."""
    package = _package_for(fn)
    endpoint = os.environ.get("LOCALAWS_ENDPOINT", f"http://127.0.0.1:{os.environ.get('MOTO_PORT', '5000')}")
    env = runtime_env(function_name=fn.function_name, memory_mb=int(fn.memory_size), region=fn.region,
                      endpoint=endpoint, configured=dict(fn.environment_vars or {}))
    key = (fn.function_name, str(package), fn.handler, int(fn.timeout), int(fn.memory_size),
           json.dumps(env, sort_keys=True))
    log_path = _code_dir().parent / "logs" / f"{fn.function_name}.log"

    arch = "arm64" if "arm64" in (getattr(fn, "architectures", None) or []) else "x86_64"

    def factory() -> Any:
        return LocalFunction(package, handler=fn.handler, env=env, timeout_s=int(fn.timeout),
                             memory_mb=int(fn.memory_size), function_name=fn.function_name,
                             function_arn=fn.function_arn, region=fn.region, log_path=log_path, arch=arch,
                             ephemeral_storage_mb=int(getattr(fn, "ephemeral_storage", None) or 512))

    return _function_pool().invoke(key, factory, payload)


def payload_bytes(payload: Any) -> bytes:
    if payload is None:
        return b"null"
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return json.dumps(payload).encode("utf-8")


def invoke(fn: Any, payload: bytes) -> Any:
    """Invoke moto's function object synchronously; returns the runtime's ``InvokeResult``."""
    return _invoke_local(fn, payload or b"{}")
