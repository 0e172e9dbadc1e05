"""A local SageMaker runtime: a real HTTP server whose InvokeEndpoint route runs our entry point."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from detection.errors import DetectionError
from sagemaker_entry import inference


class LocalRuntime:
    """``POST /endpoints/<name>/invocations`` -> input_fn/predict_fn/output_fn of the endpoint's model,
    with the runtime's error shapes (ValidationError for an unknown endpoint, ModelError for a container 4xx/5xx)."""

    def __init__(self):
        self.models: dict[str, object] = {}
        self.requests: list[dict] = []
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body: bytes, content_type: str, error_type: str | None = None):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if error_type:
                    self.send_header("x-amzn-ErrorType", error_type)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                parts = self.path.strip("/").split("/")
                name = parts[1] if len(parts) == 3 and parts[0] == "endpoints" and parts[2] == "invocations" else None
                runtime.requests.append({"endpoint": name, "content_type": self.headers.get("Content-Type"),
                                         "accept": self.headers.get("Accept"), "bytes": len(body)})
                if name not in runtime.models:
                    message = json.dumps({"message": f"Endpoint {name} of account 123456789012 not found."}).encode()
                    return self._send(400, message, "application/json", "ValidationError")
                model = runtime.models[name]
                try:
                    data = inference.input_fn(body, self.headers.get("Content-Type"))
                    payload, content_type = inference.output_fn(inference.predict_fn(data, model), self.headers.get("Accept"))
                except DetectionError as exc:
                    error = {"message": "Received client error from primary with message ...",
                             "OriginalStatusCode": exc.status, "OriginalMessage": exc.message}
                    return self._send(424, json.dumps(error).encode(), "application/json", "ModelError")
                self._send(200, payload, content_type)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def serve(self, name: str, model_dir) -> None:
        self.models[name] = inference.model_fn(str(model_dir))


@pytest.fixture(scope="session")
def local_runtime():
    runtime = LocalRuntime()
    runtime.thread.start()
    yield runtime
    runtime.server.shutdown()
    runtime.server.server_close()


@pytest.fixture()
def runtime_env(monkeypatch, local_runtime):
    """Dummy credentials and the sagemaker-runtime endpoint URL, as the Lambda would have them."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": local_runtime.url}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    local_runtime.requests.clear()
    return local_runtime
