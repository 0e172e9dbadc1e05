"""A real moto server process on 127.0.0.1 (no in-process mocks): S3 and friends for tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def moto_server(log_path: str | Path, *, port: int | None = None):
    """Start ``moto_server`` on a free loopback port; yield its endpoint URL; stop it afterwards."""
    port = port or free_port()
    moto_bin = Path(sys.executable).with_name("moto_server")
    log = open(log_path, "wb")
    process = subprocess.Popen([str(moto_bin), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start; see {log_path}")
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@contextlib.contextmanager
def aws_env(endpoint: str):
    """Point boto3 (in this process and its children) at ``endpoint`` with dummy credentials."""
    saved = {k: os.environ.get(k) for k in (*DUMMY_CREDENTIALS, "AWS_ENDPOINT_URL")}
    os.environ.update(DUMMY_CREDENTIALS, AWS_ENDPOINT_URL=endpoint)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
