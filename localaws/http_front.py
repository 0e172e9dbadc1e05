"""The HTTP server under both local API fronts (the data plane in ``localaws.server`` and ``start-api``): it holds
the load the function pool can queue and answers the rest, never dropping a connection without a reply.

- listen backlog of ``LISTEN_BACKLOG`` (socketserver's default of 5 overflows when 32 clients connect at once);
- keep-alive connections, each served by one thread, at most ``max_connections`` at a time: beyond that a
  connection gets API Gateway's ``503 {"message":"Service Unavailable"}`` and is closed;
- bodies framed by Content-Length or chunked transfer encoding; over ``MAX_BODY_BYTES`` (the HTTP API
  payload limit, 10 MB) ``413 {"message":"Request Entity Too Large"}``; bad framing ``400``;
- a throttled invoke (``lambda_runtime.Throttled``: every environment busy and the queue full) is
  ``429 {"message":"Too Many Requests"}``, the answer API Gateway gives when it throttles;
- whenever the server closes a connection it first stops writing and reads what the client is still sending
  (a lingering close): closing a socket with unread input makes the kernel send a reset instead of a FIN.

Example:
    >>> reply(429)[0], json.loads(reply(429)[3])
    (429, {'message': 'Too Many Requests'})
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

LISTEN_BACKLOG = 1024
MAX_CONNECTIONS = 256
MAX_BODY_BYTES = 10 * 1024 * 1024
IDLE_TIMEOUT_S = 60.0  # an idle keep-alive connection is closed after this (API Gateway: 30 s to 10 min)
LINGER_S = 2.0

MESSAGES = {400: "Bad Request", 404: "Not Found", 413: "Request Entity Too Large", 429: "Too Many Requests",
            500: "Internal Server Error", 503: "Service Unavailable", 504: "Endpoint request timed out"}

Reply = tuple[int, dict[str, str], list[str], bytes]


def reply(status: int) -> Reply:
    """API Gateway's own JSON answer for ``status`` (``{"message": ...}``)."""
    return status, {"content-type": "application/json"}, [], json.dumps({"message": MESSAGES[status]}).encode()


class BadFraming(ValueError):
    """The request's body framing (Content-Length / Transfer-Encoding) cannot be read."""


class FrontServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address, handler_class, *, max_connections: int = MAX_CONNECTIONS):
        self.max_connections = max_connections
        self._active = 0
        self._overloaded: set[int] = set()  # id() of connections over the limit: FrontHandler answers 503
        self._active_lock = threading.Lock()
        super().__init__(address, handler_class)

    def process_request(self, request, client_address):
        with self._active_lock:
            if self._active >= self.max_connections:
                self._overloaded.add(id(request))
            self._active += 1
        super().process_request(request, client_address)

    def overloaded(self, request) -> bool:
        return id(request) in self._overloaded

    def close_request(self, request):
        with self._active_lock:
            self._active -= 1
            self._overloaded.discard(id(request))
        super().close_request(request)

    def shutdown_request(self, request):
        linger_close(request)
        self.close_request(request)

    def handle_error(self, request, client_address):  # a client hanging up is not our error
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def linger_close(sock: socket.socket) -> None:
    """Half-close, then drain what the peer still sends (up to ``LINGER_S``), so closing never sends a reset."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(0.2)
        deadline = time.monotonic() + LINGER_S
        while time.monotonic() < deadline and sock.recv(65536):
            pass
    except OSError:
        pass


class FrontHandler(BaseHTTPRequestHandler):
    """Reads one request's body, calls ``answer`` and writes its reply; subclasses set ``answer``."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S
    server_version = "localaws-apigateway"
    answer: Callable[..., Reply]

    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
        return

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return self._read_chunked()
        raw = self.headers.get("content-length")
        if raw is None:
            return b""
        if not raw.strip().isdigit():
            raise BadFraming(f"content-length {raw!r}")
        length = int(raw)
        if length > MAX_BODY_BYTES:
            raise OverflowError(length)
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(1024).split(b";")[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                raise BadFraming(f"chunk size {line!r}") from None
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise OverflowError(total)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(16)

    def _serve(self) -> None:
        if self.server.overloaded(self.request):
            self.close_connection = True
            self._write(*reply(503))
            return
        try:
            body = self.read_body()
        except BadFraming:
            self.close_connection = True
            self._write(*reply(400))
            return
        except OverflowError:
            self.close_connection = True
            self._write(*reply(413))
            return
        headers: dict[str, str] = {}
        for key, value in self.headers.items():
            key = key.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        try:
            result = self.answer(method=self.command, target=self.path, headers=headers, body=body,
                                 source_ip=self.client_address[0])
        except Exception:  # noqa: BLE001 - never drop the connection without an answer
            self.log_error("front error: %r", sys.exc_info()[1])
            result = reply(500)
        self._write(*result)

    def _write(self, status: int, headers: dict[str, str], cookies: list[str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(key, value)
        for cookie in cookies:
            self.send_header("set-cookie", cookie)
        if self.close_connection:
            self.send_header("connection", "close")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve
