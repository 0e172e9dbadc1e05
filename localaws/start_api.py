"""``sam local start-api`` without Docker: an HTTP front on 127.0.0.1 that sends payload 2.0 events to a package.

Requests whose ``METHOD /path`` matches a route (default ``POST /detect``) become API Gateway HTTP API payload 2.0
events (the same mapping the offline AWS data plane uses, :mod:`localaws.dataplane`) and run in a warm
:class:`~localaws.lambda_runtime.LocalFunction`; the reply's statusCode/headers/body(/isBase64Encoded) go back.
Unknown routes get API Gateway's ``404 {"message":"Not Found"}``, a function error its ``500``.

Example:
    >>> with LocalHttpApi(lambda: LocalFunction("dist/lambda-local.zip", env=env)) as api:   # doctest: +SKIP
    ...     urllib.request.urlopen(api.url + "/detect", data=jpeg_bytes)
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import urlsplit

from .dataplane import build_event, map_response, match_route
from .lambda_runtime import FunctionPool, LocalFunction

DEFAULT_ROUTES = ("POST /detect",)
LOCAL_API_ID = "localapi"
LOCAL_ACCOUNT_ID = "000000000000"


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client hanging up is not our error
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def _json_reply(status: int, body: dict) -> tuple[int, dict[str, str], list[str], bytes]:
    return status, {"content-type": "application/json"}, [], json.dumps(body).encode()


class LocalHttpApi:
    """Serve ``routes`` on ``http://host:port`` from warm environments made by ``function_factory``."""

    def __init__(self, function_factory: Callable[[], LocalFunction], *, routes: tuple[str, ...] = DEFAULT_ROUTES,
                 host: str = "127.0.0.1", port: int = 0, region: str = "us-east-1", max_environments: int = 2):
        self.routes = list(routes)
        self.region = region
        self._factory = function_factory
        self._pool = FunctionPool(max_per_key=max_environments)
        self._httpd = _QuietServer((host, port), self._handler_class())
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def handle(self, *, method: str, target: str, headers: dict[str, str], body: bytes, source_ip: str
               ) -> tuple[int, dict[str, str], list[str], bytes]:
        """One request -> (status, headers, set-cookies, body)."""
        parts = urlsplit(target)
        path = parts.path or "/"
        matched = match_route(self.routes, method=method, path=path)
        if matched is None:
            return _json_reply(404, {"message": "Not Found"})
        route_key, path_parameters = matched
        event = build_event(api_id=LOCAL_API_ID, account_id=LOCAL_ACCOUNT_ID, region=self.region, stage="$default",
                            route_key=route_key, method=method, path=path, query=parts.query, headers=headers,
                            body=body, source_ip=source_ip, path_parameters=path_parameters)
        result = self._pool.invoke(("start-api",), self._factory, json.dumps(event).encode())
        if result.function_error:
            return _json_reply(500, {"message": "Internal Server Error"})
        return map_response(result.payload)

    def _handler_class(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format, *args):
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {name.lower(): value for name, value in self.headers.items()}
                try:
                    status, reply_headers, cookies, reply = api.handle(
                        method=self.command, target=self.path, headers=headers, body=body,
                        source_ip=self.client_address[0])
                except Exception:  # the front itself failed: API Gateway's answer, details in the function log
                    status, reply_headers, cookies, reply = _json_reply(500, {"message": "Internal Server Error"})
                self.send_response(status)
                for name, value in reply_headers.items():
                    if name not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                for cookie in cookies:
                    self.send_header("set-cookie", cookie)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _serve

        return Handler

    def start(self) -> "LocalHttpApi":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="local-http-api", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
        self._httpd.server_close()
        self._pool.close()

    def __enter__(self) -> "LocalHttpApi":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
