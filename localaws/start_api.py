"""``sam local start-api`` without Docker: an HTTP front on 127.0.0.1 that sends payload 2.0 events to a package.

Requests whose ``METHOD /path`` matches a route (default ``POST /detect``) become API Gateway HTTP API payload 2.0
events (the same mapping the offline AWS data plane uses, :mod:`localaws.dataplane`) and run in a warm
:class:`~localaws.lambda_runtime.LocalFunction`; the reply's statusCode/headers/body(/isBase64Encoded) go back.
Unknown routes get API Gateway's ``404 {"message":"Not Found"}``, a function error its ``500``, a request that
finds every environment busy and the queue full its ``429`` (see :mod:`localaws.http_front` for the server).

Example:
    >>> with LocalHttpApi(lambda: LocalFunction("dist/lambda-x86_64.zip", env=env)) as api:   # doctest: +SKIP
    ...     urllib.request.urlopen(api.url + "/detect", data=jpeg_bytes)
"""

from __future__ import annotations

import json
import threading
from typing import Callable
from urllib.parse import urlsplit

from .dataplane import build_event, map_response, match_route
from .http_front import FrontHandler, FrontServer, reply
from .lambda_runtime import FunctionPool, LocalFunction, Throttled

DEFAULT_ROUTES = ("POST /detect",)
LOCAL_API_ID = "localapi"
LOCAL_ACCOUNT_ID = "000000000000"


class LocalHttpApi:
    """Serve ``routes`` on ``http://host:port`` from warm environments made by ``function_factory``."""

    def __init__(self, function_factory: Callable[[], LocalFunction], *, routes: tuple[str, ...] = DEFAULT_ROUTES,
                 host: str = "127.0.0.1", port: int = 0, region: str = "us-east-1", max_environments: int = 2,
                 max_queued: int = 64):
        self.routes = list(routes)
        self.region = region
        self._factory = function_factory
        self._pool = FunctionPool(max_per_key=max_environments, max_queued=max_queued)
        self._httpd = FrontServer((host, port), self._handler_class())
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
            return reply(404)
        route_key, path_parameters = matched
        event = build_event(api_id=LOCAL_API_ID, account_id=LOCAL_ACCOUNT_ID, region=self.region, stage="$default",
                            route_key=route_key, method=method, path=path, query=parts.query, headers=headers,
                            body=body, source_ip=source_ip, path_parameters=path_parameters)
        try:
            result = self._pool.invoke(("start-api",), self._factory, json.dumps(event).encode())
        except Throttled:
            return reply(429)
        if result.function_error:
            return reply(500)
        return map_response(result.payload)

    def _handler_class(self):
        api = self

        class Handler(FrontHandler):
            disable_nagle_algorithm = True

            def answer(self, **request):
                return api.handle(**request)

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
