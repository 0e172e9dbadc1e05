"""Run a built Lambda package the way Lambda does: a clean subprocess driven by awslambdaric over a Runtime API.

Each :class:`LocalFunction` is one execution environment: a ``python3.13 -I -S`` subprocess of the Lambda-equivalent
interpreter (:mod:`lambda_python`: Debian's CPython 3.13 with its own glibc; arm64 under qemu) whose import path is only
the unpacked package and the emulated runtime directory (awslambdaric + boto3, :mod:`localaws.runtime_env`), whose
working directory is the package, and whose environment is Lambda's (``AWS_LAMBDA_FUNCTION_NAME``, ``_HANDLER``,
``AWS_LAMBDA_RUNTIME_API``, ...) plus the function's variables. Its sandbox (``_lambda_bootstrap``): the task root
mounted read-only, a private /tmp capped at the ephemeral storage, and MemorySize enforced. It is started on the first invocation (cold start),
kept warm for the next ones, killed on a timeout, and restarted on the next invocation after it died — as Lambda
does. Results follow the Invoke API: status 200 with ``function_error="Unhandled"`` and an error payload
``{"errorMessage", "errorType", "stackTrace"}`` for handler errors, init errors, timeouts, crashes and
out-of-memory kills.

Example:
    >>> with LocalFunction("dist/lambda-x86_64.zip", env={"MODEL_URI": "/path/to/bundle"}) as fn:   # doctest: +SKIP
    ...     result = fn.invoke(b'{"image": "..."}')
    >>> result.status_code, result.function_error                                                   # doctest: +SKIP
    (200, None)
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Hashable, Mapping

from lambda_python import LambdaPython, ensure_interpreter

from .runtime_api import Invocation, RuntimeApiServer
from .runtime_env import DEFAULT_CACHE_ROOT, ensure_runtime_dir

MAX_REQUEST_BYTES = 6 * 1024 * 1024  # synchronous Invoke payload limit
DEFAULT_EPHEMERAL_STORAGE_MB = 512  # Lambda's default /tmp size (EphemeralStorage)
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
LOG_TAIL_BYTES = 4096  # what Invoke's LogType=Tail returns
DEFAULT_INIT_TIMEOUT_S = 10.0  # Lambda's init phase limit (on-demand)
BOOTSTRAP = Path(__file__).with_name("_lambda_bootstrap.py")
RUNTIME_OWNED_ENV = ("AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "_HANDLER")
_CPYTHON_TAG = re.compile(r"\.cpython-(\d)(\d+)-(\w+?)-linux-gnu")
EXTENSION_MACHINES = {"x86_64": "x86_64", "aarch64": "arm64"}  # extension suffix machine -> Lambda architecture


class PackageError(ValueError):
    """The package cannot run here; the message says why and what to do."""


@dataclass(frozen=True)
class InvokeResult:
    """What Lambda's Invoke API returns: ``status_code`` (200 even for function errors), ``payload``,
    ``function_error`` (``"Unhandled"`` or None, the ``X-Amz-Function-Error`` header) and the invocation's logs."""

    status_code: int
    payload: bytes
    function_error: str | None
    log_tail: str
    request_id: str
    duration_ms: float
    cold_start: bool

    def json(self):
        return json.loads(self.payload)

    @property
    def log_result(self) -> str:
        """``LogResult`` as the Invoke API sends it: base64 of the last 4 KB of logs."""
        return base64.b64encode(self.log_tail.encode()[-LOG_TAIL_BYTES:]).decode()


# ---------------------------------------------------------------- packages


def sha256_file(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.digest()


def code_sha256_of_tree(root: Path) -> str:
    """A stable base64 sha256 over a package folder's paths and contents (for an unzipped package)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + sha256_file(path))
    return base64.b64encode(digest.digest()).decode()


def unpack_package(zip_path: Path, *, extract_root: Path) -> tuple[Path, str]:
    """Unzip once into ``extract_root/<sha>/``; returns (folder, ``CodeSha256`` as Lambda reports it)."""
    raw = sha256_file(zip_path)
    code_sha = base64.b64encode(raw).decode()
    target = extract_root / raw.hex()[:20]
    if not (target / ".unpacked").is_file():
        partial = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            with zipfile.ZipFile(zip_path) as archive:
                for info in archive.infolist():
                    extracted = Path(archive.extract(info, partial))
                    mode = (info.external_attr >> 16) & 0o777
                    if mode and extracted.is_file():  # read-only like /var/task (the sandbox also mounts it so)
                        extracted.chmod((mode | 0o444) & 0o555)
        except zipfile.BadZipFile:
            shutil.rmtree(partial, ignore_errors=True)
            raise PackageError(f"{zip_path} is not a zip file: pass a package built by python -m lambda_build") from None
        (partial / ".unpacked").write_text(code_sha)
        for folder in sorted((p for p in partial.rglob("*") if p.is_dir()), reverse=True):
            folder.chmod(0o555)
        if target.exists():  # another process won the race
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.rename(target)
    return target, code_sha


def resolve_package(package: str | os.PathLike, *, extract_root: Path) -> tuple[Path, str]:
    """A package folder or zip -> (unpacked folder, code sha256)."""
    path = Path(package)
    if path.is_dir():
        return path.resolve(), code_sha256_of_tree(path)
    if path.is_file():
        return unpack_package(path, extract_root=extract_root)
    raise PackageError(f"package {path} does not exist: build one with python -m lambda_build --arch x86_64")


def package_python_tags(package_dir: Path, *, max_depth: int = 3) -> set[tuple[str, str]]:
    """(CPython version, Lambda architecture) the package's compiled extensions were built for, e.g.
    ``{("3.13", "x86_64")}`` (empty: pure Python)."""
    tags: set[tuple[str, str]] = set()
    for root, dirs, files in os.walk(package_dir):
        depth = len(Path(root).relative_to(package_dir).parts)
        if depth >= max_depth:
            dirs.clear()
        for name in files:
            if name.endswith(".so") and (match := _CPYTHON_TAG.search(name)):
                tags.add((f"{match[1]}.{match[2]}", EXTENSION_MACHINES.get(match[3], match[3])))
    return tags


def check_package(package_dir: Path, *, handler: str, python_version: str, arch: str) -> None:
    tags = package_python_tags(package_dir)
    if tags and (python_version, arch) not in tags:
        found = ", ".join(f"Python {version} {machine}" for version, machine in sorted(tags))
        raise PackageError(
            f"{package_dir} holds extensions for {found} but this runtime is Python {python_version} {arch}: "
            f"build it with python -m lambda_build --arch {arch}"
        )
    if "." not in handler:
        raise PackageError(f"handler {handler!r} must look like module.function (e.g. handler.handler)")


# ---------------------------------------------------------------- environment


def lambda_environment(
    *,
    function_name: str,
    handler: str,
    memory_mb: int,
    region: str,
    task_root: Path,
    runtime_dir: Path,
    runtime_api: str,
    python_version: str,
    user_env: Mapping[str, str],
    snap_start: bool = False,
) -> dict[str, str]:
    """The variables Lambda sets, then the function's own; the runtime-owned ones cannot be overridden."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{python_version}",
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start" if snap_start else "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": datetime.now(timezone.utc).strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }
    env.update({key: str(value) for key, value in user_env.items()})
    env.update({
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDA_RUNTIME_DIR": str(runtime_dir),
        "_HANDLER": handler,
    })
    return env


def error_payload(*, error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


# ---------------------------------------------------------------- the execution environment


class LocalFunction:
    """One warm execution environment for a built package; thread-safe (invocations run one at a time).

    Args:
        package: an unpacked package folder or a ``.zip`` (unzipped once under ``extract_root``).
        handler: ``module.function`` (Lambda's Handler setting).
        env: the function's environment variables (MODEL_URI, AWS_ENDPOINT_URL, credentials, ...).
        timeout_s: the function timeout; an invocation running longer is killed and reported as timed out.
        init_timeout_s: extra time a cold start may take before the invocation's own timeout starts.
        memory_mb: MemorySize: AWS_LAMBDA_FUNCTION_MEMORY_SIZE, and the resident memory (sampled every 20 ms)
            above which the environment is killed and the invoke reported as ``Runtime.OutOfMemory``.
        ephemeral_storage_mb: the size of the environment's private /tmp (a tmpfs in its own mount namespace).
        arch / python: the Lambda-equivalent interpreter that runs it (:mod:`lambda_python`; arm64 under qemu).
        log_path: where the environment's stdout/stderr and START/END/REPORT lines go (appended).
        snap_start: start as a SnapStart environment: init, before-snapshot hooks, (snapshot,) restore,
            after-restore hooks, then invocations; ``lifecycle`` records the order the runtime went through.
    """

    def __init__(
        self,
        package: str | os.PathLike,
        *,
        handler: str = "handler.handler",
        env: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
        init_timeout_s: float = DEFAULT_INIT_TIMEOUT_S,
        memory_mb: int = 1024,
        ephemeral_storage_mb: int = DEFAULT_EPHEMERAL_STORAGE_MB,
        function_name: str = "local-function",
        function_arn: str | None = None,
        region: str = "us-east-1",
        log_path: str | os.PathLike | None = None,
        arch: str = "x86_64",
        python: LambdaPython | None = None,
        cache_root: Path = DEFAULT_CACHE_ROOT,
        snap_start: bool = False,
    ):
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.handler = handler
        self.env = dict(env or {})
        self.timeout_s = float(timeout_s)
        self.init_timeout_s = float(init_timeout_s)
        self.memory_mb = int(memory_mb)
        self.ephemeral_storage_mb = int(ephemeral_storage_mb)
        if not 128 <= self.memory_mb <= 10240 or not 512 // 32 <= self.ephemeral_storage_mb <= 10240:
            raise ValueError(f"memory_mb must be 128..10240 and ephemeral_storage_mb 16..10240 (Lambda allows "
                             f"512..10240), got {memory_mb} and {ephemeral_storage_mb}")
        self.function_name = function_name
        self.snap_start = snap_start
        self.region = region
        self.function_arn = function_arn or f"arn:aws:lambda:{region}:000000000000:function:{function_name}"
        self.python = python or ensure_interpreter(arch)
        self.arch = self.python.arch
        self.python_version = self.python.python_version
        self.package_dir, self.code_sha256 = resolve_package(package, extract_root=Path(cache_root) / "packages")
        check_package(self.package_dir, handler=handler, python_version=self.python_version, arch=self.arch)
        self.runtime_dir = ensure_runtime_dir(self.python, cache_root=Path(cache_root))
        if log_path is None:
            log_dir = Path(cache_root) / "logs"
            log_dir.mkdir(parents=True, exist_ok=True)
            log_path = log_dir / f"{function_name}-{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}.log"
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._server: RuntimeApiServer | None = None
        self._stopped_lifecycle: list[str] = []
        self._closed = False
        self._max_rss_bytes = 0
        self.invocations = 0
        self.cold_starts = 0

    # -- lifecycle

    def __enter__(self) -> "LocalFunction":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The execution environment's process id while it is alive (warm), else None."""
        return self._process.pid if self._alive() else None

    @property
    def lifecycle(self) -> list[str]:
        """This environment's steps so far ("snapshot", "restore", "invoke" per invocation picked up)."""
        return list(self._server.lifecycle) if self._server is not None else list(self._stopped_lifecycle)

    def _alive(self) -> bool:
        return self._process is not None and self._process.poll() is None and self._server is not None \
            and not self._server.init_failed.is_set()

    def _log(self, line: str) -> None:
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(line + "\n")

    def _start(self) -> None:
        self._stop()
        self._server = RuntimeApiServer()
        env = lambda_environment(
            function_name=self.function_name, handler=self.handler, memory_mb=self.memory_mb, region=self.region,
            task_root=self.package_dir, runtime_dir=self.runtime_dir, runtime_api=self._server.address,
            python_version=self.python_version, user_env=self.env, snap_start=self.snap_start,
        )
        model_uri = self.env.get("MODEL_URI", "")
        sandbox = {"task_root": str(self.package_dir), "tmp_mb": self.ephemeral_storage_mb,
                   "carry": [str(self.package_dir), str(self.runtime_dir), str(self.python.root),
                             *([model_uri] if model_uri.startswith("/") else [])]}
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                self.python.command("-I", "-S", str(BOOTSTRAP), json.dumps(sandbox), self.handler),
                cwd=self.package_dir, env=self.python.env(env), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a timeout kills it and anything it spawned
            )
        self.cold_starts += 1

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=10)
        server, self._server = self._server, None
        if server is not None:
            self._stopped_lifecycle = list(server.lifecycle)  # still readable after an init or restore error
            server.close()

    def close(self) -> None:
        """Stop the execution environment (idempotent)."""
        with self._lock:
            self._closed = True
            self._stop()

    # -- invocation

    def invoke(self, payload: bytes | str, *, request_id: str | None = None, client_context: str | None = None,
               trace_id: str | None = None) -> InvokeResult:
        """Invoke synchronously (``RequestResponse``); starts the environment first if it is cold."""
        payload = payload.encode() if isinstance(payload, str) else bytes(payload)
        request_id = request_id or str(uuid.uuid4())
        if len(payload) > MAX_REQUEST_BYTES:
            message = f"{len(payload)} byte payload is too large for the RequestResponse invocation type (limit {MAX_REQUEST_BYTES} bytes)"
            return InvokeResult(status_code=413, payload=json.dumps({"Type": "User", "message": message}).encode(),
                                function_error=None, log_tail="", request_id=request_id, duration_ms=0.0,
                                cold_start=False)
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.function_name}: invoke after close()")
            cold = not self._alive()
            if cold:
                self._start()
            log_offset = self.log_path.stat().st_size
            self._log(f"START RequestId: {request_id} Version: $LATEST")
            invocation = Invocation(request_id=request_id, payload=payload, function_arn=self.function_arn,
                                    timeout_s=self.timeout_s, client_context=client_context,
                                    trace_id=trace_id or f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0")
            started = time.monotonic()
            self._max_rss_bytes = 0
            response, function_error = self._await(invocation, cold=cold)
            duration_ms = (time.monotonic() - started) * 1000
            self._log(f"END RequestId: {request_id}")
            self._log(f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
                      f"Memory Size: {self.memory_mb} MB\tMax Memory Used: {self._max_rss_bytes // 2**20} MB"
                      + ("\tCold start" if cold else ""))
            self.invocations += 1
            with open(self.log_path, "rb") as log:
                log.seek(log_offset)
                tail = log.read()[-LOG_TAIL_BYTES:].decode("utf-8", errors="replace")
            return InvokeResult(status_code=200, payload=response, function_error=function_error, log_tail=tail,
                                request_id=request_id, duration_ms=duration_ms, cold_start=cold)

    def _await(self, invocation: Invocation, *, cold: bool) -> tuple[bytes, str | None]:
        server, process = self._server, self._process
        server.submit(invocation)
        pickup_deadline = time.monotonic() + (self.init_timeout_s if cold else 0) + self.timeout_s
        run_deadline = None
        try:
            while not invocation.done.wait(0.02):
                now = time.monotonic()
                if server.init_failed.is_set():
                    return self._init_failed(server)
                if invocation.dispatched.is_set() and run_deadline is None:
                    run_deadline = now + self.timeout_s
                if process.poll() is not None and not invocation.done.is_set():
                    return self._exited(invocation, process.returncode)
                if self._over_memory(process):
                    return self._out_of_memory(invocation)
                if (run_deadline is not None and now > run_deadline) or (run_deadline is None and now > pickup_deadline):
                    return self._timed_out(invocation)
            return invocation.response or b"null", ("Unhandled" if invocation.error_type else None)
        finally:
            server.forget(invocation)

    def _init_failed(self, server: RuntimeApiServer) -> tuple[bytes, str]:
        init_error = server.init_error
        try:
            self._process.wait(timeout=5)  # awslambdaric exits after reporting
        except subprocess.TimeoutExpired:
            pass
        self._log(f"INIT_REPORT Status: error\tError Type: {init_error.error_type}")
        self._stop()
        return init_error.payload, "Unhandled"

    def _exited(self, invocation: Invocation, returncode: int) -> tuple[bytes, str]:
        self._stop()
        status = f"signal: {signal.Signals(-returncode).name}" if returncode < 0 else f"exit status {returncode}"
        message = f"RequestId: {invocation.request_id} Error: Runtime exited with error: {status}"
        self._log(message)
        return error_payload(error_type="Runtime.ExitError", message=message), "Unhandled"

    def _over_memory(self, process: subprocess.Popen) -> bool:
        """Resident memory of the environment (sampled every 20 ms) above ``memory_mb``: Lambda's cgroup limit."""
        try:
            with open(f"/proc/{process.pid}/statm") as statm:
                rss = int(statm.read().split()[1]) * PAGE_BYTES
        except (OSError, IndexError, ValueError):
            return False
        self._max_rss_bytes = max(self._max_rss_bytes, rss)
        return rss > self.memory_mb * 2**20

    def _out_of_memory(self, invocation: Invocation) -> tuple[bytes, str]:
        """Killed like Lambda's out-of-memory kill, and reported as it reports it."""
        invocation.done.set()
        self._stop()
        message = f"RequestId: {invocation.request_id} Error: Runtime exited with error: signal: killed"
        self._log(message)
        self._log("Runtime.OutOfMemory")
        self._max_rss_bytes = self.memory_mb * 2**20  # Lambda reports the whole size used
        return error_payload(error_type="Runtime.OutOfMemory", message=message), "Unhandled"

    def _timed_out(self, invocation: Invocation) -> tuple[bytes, str]:
        invocation.done.set()
        self._stop()
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
        self._log(f"{stamp} {invocation.request_id} Task timed out after {self.timeout_s:.2f} seconds")
        message = f"RequestId: {invocation.request_id} Error: Task timed out after {self.timeout_s:.2f} seconds"
        return error_payload(error_type="Sandbox.Timedout", message=message), "Unhandled"


# ---------------------------------------------------------------- warm pool


class Throttled(RuntimeError):
    """Every environment of a function is busy and its queue is full: Lambda's ``TooManyRequestsException``."""


_THROTTLED = object()


class FunctionPool:
    """Warm execution environments keyed by ``(function name, code sha256, ...)``; idle ones are reused.

    Concurrent invocations of the same key get separate environments (up to ``max_per_key``), like Lambda
    scaling out; beyond that up to ``max_queued`` wait for one (Lambda has far more concurrency than this host:
    the queue stands in for it) and the rest are ``Throttled`` at once, as Lambda throttles past its
    concurrency limit. A new key for a function name (new code or configuration) retires the old ones.

    Example:
        >>> pool = FunctionPool()                                                         # doctest: +SKIP
        >>> key = ("detect", code_sha256)                                                 # doctest: +SKIP
        >>> pool.invoke(key, lambda: LocalFunction(zip_path, env=env), payload)           # doctest: +SKIP
    """

    def __init__(self, *, max_per_key: int = 4, max_queued: int = 64):
        self.max_per_key = max_per_key
        self.max_queued = max_queued
        self._idle: dict[Hashable, list[LocalFunction]] = {}
        self._count: dict[Hashable, int] = {}
        self._queued: dict[Hashable, int] = {}
        self._condition = threading.Condition()
        self._closed = False

    @staticmethod
    def _name(key: Hashable) -> Hashable:
        return key[0] if isinstance(key, tuple) and key else key

    def _retire_other_versions(self, key: Hashable) -> list[LocalFunction]:
        stale = [other for other in self._idle if other != key and self._name(other) == self._name(key)]
        retired = []
        for other in stale:
            idle = self._idle.pop(other)
            self._count[other] -= len(idle)
            retired.extend(idle)
        return retired

    def acquire(self, key: Hashable, factory: Callable[[], LocalFunction]) -> LocalFunction:
        with self._condition:
            while True:
                if self._closed:
                    raise RuntimeError("FunctionPool is closed")
                retired = self._retire_other_versions(key)
                if self._idle.get(key):
                    function = self._idle[key].pop()
                    break
                if self._count.get(key, 0) < self.max_per_key:
                    self._count[key] = self._count.get(key, 0) + 1
                    function = None
                    break
                if self._queued.get(key, 0) >= self.max_queued:
                    function = _THROTTLED
                    break
                self._queued[key] = self._queued.get(key, 0) + 1
                try:
                    self._condition.wait()
                finally:
                    self._queued[key] -= 1
        for old in retired:
            old.close()
        if function is _THROTTLED:
            raise Throttled(f"Rate Exceeded: {self.max_per_key} environments busy, {self.max_queued} queued")
        if function is None:
            try:
                function = factory()
            except BaseException:
                with self._condition:
                    self._count[key] -= 1
                    self._condition.notify_all()
                raise
        return function

    def release(self, key: Hashable, function: LocalFunction) -> None:
        with self._condition:
            if self._closed:
                function.close()
                return
            self._idle.setdefault(key, []).append(function)
            self._condition.notify_all()

    def invoke(self, key: Hashable, factory: Callable[[], LocalFunction], payload: bytes | str, **kwargs) -> InvokeResult:
        """Invoke on a warm environment for ``key`` (creating one with ``factory`` if none is idle)."""
        function = self.acquire(key, factory)
        try:
            return function.invoke(payload, **kwargs)
        finally:
            self.release(key, function)

    def discard(self, function_name: str) -> None:
        """Stop the idle environments of a function (deleted or updated)."""
        with self._condition:
            keys = [key for key in self._idle if self._name(key) == function_name]
            functions = [fn for key in keys for fn in self._idle.pop(key)]
            for key in keys:
                self._count.pop(key, None)
        for function in functions:
            function.close()

    def close(self) -> None:
        with self._condition:
            self._closed = True
            functions = [fn for idle in self._idle.values() for fn in idle]
            self._idle.clear()
            self._condition.notify_all()
        for function in functions:
            function.close()

    def __enter__(self) -> "FunctionPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
