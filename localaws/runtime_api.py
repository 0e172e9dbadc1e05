"""A local Lambda Runtime API (the 2018-06-01 contract awslambdaric speaks), one server per execution environment.

Endpoints (paths as AWS documents them):

- ``GET  /2018-06-01/runtime/invocation/next``            blocks until an invocation is queued; the body is the
  event, headers ``Lambda-Runtime-Aws-Request-Id``, ``-Deadline-Ms``, ``-Invoked-Function-Arn``, ``-Trace-Id``.
- ``POST /2018-06-01/runtime/invocation/{id}/response``   the result (202; 413 over the 6 MB response limit).
- ``POST /2018-06-01/runtime/invocation/{id}/error``      a handler error ``{"errorMessage","errorType",...}`` (202).
- ``POST /2018-06-01/runtime/init/error``                 an init failure (202).

The owner (:class:`localaws.lambda_runtime.LocalFunction`) queues :class:`Invocation` objects and waits on them.

Example:
    >>> server = RuntimeApiServer()                       # doctest: +SKIP
    >>> server.address                                    # doctest: +SKIP
    '127.0.0.1:40321'
"""

from __future__ import annotations

import json
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_VERSION = "2018-06-01"
MAX_RESPONSE_BYTES = 6 * 1024 * 1024  # synchronous invocation response limit
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"

_NEXT = re.compile(rf"^/{API_VERSION}/runtime/invocation/next$")
_RESULT = re.compile(rf"^/{API_VERSION}/runtime/invocation/(?P<id>[^/]+)/(?P<kind>response|error)$")
_INIT_ERROR = re.compile(rf"^/{API_VERSION}/runtime/init/error$")
# SnapStart (AWS_LAMBDA_INITIALIZATION_TYPE=snap-start): the runtime runs its before-snapshot hooks, then asks
# for restore/next, which answers once the environment is restored; after-restore hooks run next, then
# invocation/next. A failing after-restore hook is reported on restore/error.
_RESTORE_NEXT = re.compile(rf"^/{API_VERSION}/runtime/restore/next$")
_RESTORE_ERROR = re.compile(rf"^/{API_VERSION}/runtime/restore/error$")


@dataclass
class Invocation:
    """One queued event and, once the runtime answers, its outcome."""

    request_id: str
    payload: bytes
    function_arn: str
    timeout_s: float
    trace_id: str = ""
    client_context: str | None = None
    deadline_ms: int | None = None  # set when the runtime picks it up
    response: bytes | None = None
    error_type: str | None = None  # set for /error: header value or the payload's errorType
    done: threading.Event = field(default_factory=threading.Event)
    dispatched: threading.Event = field(default_factory=threading.Event)


@dataclass
class InitError:
    payload: bytes
    error_type: str


def _json(data: dict) -> bytes:
    return json.dumps(data).encode()


def response_too_large_error(size: int) -> bytes:
    return _json({
        "errorMessage": f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
                        f"({MAX_RESPONSE_BYTES} bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    })


class _QuietHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a runtime killed mid-request is expected, not an error
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class RuntimeApiServer:
    """Serves one execution environment's Runtime API on 127.0.0.1 (a free port) from a background thread."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0):
        self.invocations: "queue.Queue[Invocation | None]" = queue.Queue()
        self.ready = threading.Event()  # the runtime finished init and asked for work
        self.init_error: InitError | None = None
        self.init_failed = threading.Event()
        self.lifecycle: list[str] = []  # "snapshot", "restore", "invoke": the order the runtime went through
        self._by_id: dict[str, Invocation] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._httpd = _QuietHTTPServer((host, port), self._handler_class())
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="lambda-runtime-api", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        """``host:port``, the value of ``AWS_LAMBDA_RUNTIME_API``."""
        host, port = self._httpd.server_address[:2]
        return f"{host}:{port}"

    def submit(self, invocation: Invocation) -> None:
        with self._lock:
            self._by_id[invocation.request_id] = invocation
        self.invocations.put(invocation)

    def forget(self, invocation: Invocation) -> None:
        with self._lock:
            self._by_id.pop(invocation.request_id, None)

    def close(self) -> None:
        self._closed = True
        self.invocations.put(None)  # release a blocked /next
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- request handling (called from the HTTP handler threads)

    def _restore(self) -> None:
        """The snapshot is taken when the runtime asks for restore/next (its before-snapshot hooks are done);
        locally the same process goes on as the restored environment."""
        self.lifecycle += ["snapshot", "restore"]

    def _next_invocation(self) -> Invocation | None:
        self.ready.set()
        while not self._closed:
            try:
                invocation = self.invocations.get(timeout=0.5)
            except queue.Empty:
                continue
            if invocation is None or invocation.done.is_set():
                continue  # a sentinel, or an invocation already timed out before pickup
            invocation.deadline_ms = int((time.time() + invocation.timeout_s) * 1000)
            invocation.dispatched.set()
            self.lifecycle.append("invoke")
            return invocation
        return None

    def _complete(self, request_id: str, kind: str, body: bytes, error_type: str | None) -> tuple[int, dict]:
        with self._lock:
            invocation = self._by_id.get(request_id)
        if invocation is None or invocation.done.is_set():
            return HTTPStatus.BAD_REQUEST, {"errorMessage": f"Invalid request ID: {request_id}",
                                            "errorType": "InvalidRequestID"}
        if kind == "response" and len(body) > MAX_RESPONSE_BYTES:
            invocation.response, invocation.error_type = response_too_large_error(len(body)), "Unhandled"
            invocation.done.set()
            return HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"errorMessage": "Exceeded maximum allowed payload size",
                                                         "errorType": "RequestEntityTooLarge"}
        invocation.response = body
        invocation.error_type = (error_type or "Unhandled") if kind == "error" else None
        invocation.done.set()
        return HTTPStatus.ACCEPTED, {"status": "OK"}

    def _record_init_error(self, body: bytes, error_type: str | None) -> tuple[int, dict]:
        if self.init_error is not None:
            return HTTPStatus.FORBIDDEN, {"errorMessage": "Init error already reported", "errorType": "InvalidStateTransition"}
        self.init_error = InitError(payload=body, error_type=error_type or "Runtime.Unknown")
        self.init_failed.set()
        return HTTPStatus.ACCEPTED, {"status": "OK"}

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def log_message(self, format, *args):  # the runtime's own log file is the place for noise
                return

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def do_GET(self):
                if _RESTORE_NEXT.match(self.path):
                    server._restore()
                    return self._send(HTTPStatus.OK, b"", {"Content-Type": "application/json"})
                if not _NEXT.match(self.path):
                    return self._send(HTTPStatus.NOT_FOUND, _json({"errorMessage": f"unknown path {self.path}"}))
                invocation = server._next_invocation()
                if invocation is None:
                    return self._send(HTTPStatus.GONE, _json({"errorMessage": "environment shutting down"}))
                headers = {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": invocation.function_arn,
                    "Lambda-Runtime-Trace-Id": invocation.trace_id,
                }
                if invocation.client_context:
                    headers["Lambda-Runtime-Client-Context"] = invocation.client_context
                self._send(HTTPStatus.OK, invocation.payload, headers)

            def do_POST(self):
                body = self._body()
                error_type = self.headers.get(ERROR_TYPE_HEADER)
                if match := _RESULT.match(self.path):
                    status, reply = server._complete(match["id"], match["kind"], body, error_type)
                elif _INIT_ERROR.match(self.path):
                    status, reply = server._record_init_error(body, error_type)
                elif _RESTORE_ERROR.match(self.path):
                    status, reply = server._record_init_error(body, error_type or "Runtime.RestoreError")
                else:
                    status, reply = HTTPStatus.NOT_FOUND, {"errorMessage": f"unknown path {self.path}"}
                self._send(status, _json(reply), {"Content-Type": "application/json"})

        return Handler
