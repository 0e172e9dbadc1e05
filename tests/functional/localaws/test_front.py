"""The local API fronts under load and abuse, real sockets throughout: excess is answered (429 when every
environment is busy and the queue is full, 503 past the connection limit, 400/413 for bad framing), never a
reset; direct invokes through the local Lambda API are throttled like Lambda (TooManyRequestsException)."""

from __future__ import annotations

import concurrent.futures
import http.client
import io
import json
import socket
import textwrap
import time
import zipfile

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from localaws import lifecycle
from localaws.http_front import MAX_BODY_BYTES, FrontHandler, FrontServer
from localaws.lambda_runtime import LocalFunction
from localaws.start_api import LocalHttpApi

SLOW_HANDLER = """
import time

def handler(event, context):
    time.sleep(0.4)
    return {"statusCode": 200, "body": "{}"}
"""


class _Echo(FrontHandler):
    def answer(self, *, method, target, headers, body, source_ip):
        return 200, {"content-type": "application/json"}, [], json.dumps({"bytes": len(body)}).encode()


@pytest.fixture()
def echo_server():
    server = FrontServer(("127.0.0.1", 0), _Echo, max_connections=2)
    import threading

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _raw_exchange(port: int, request: bytes, *, body_chunks: list[bytes] = ()) -> bytes:
    """Send ``request`` (and more chunks) on a fresh socket; return everything until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        for chunk in body_chunks:
            try:
                sock.sendall(chunk)
            except OSError:  # the server may answer before reading it all: it drains, never resets
                break
        data = b""
        while chunk := sock.recv(65536):  # ConnectionResetError here would be the bug
            data += chunk
        return data


def test_chunked_bodies_are_read(echo_server):
    port = echo_server.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/detect", body=iter([b"abc", b"defg"]), headers={"transfer-encoding": "chunked"},
                 encode_chunked=True)
    reply = conn.getresponse()
    assert reply.status == 200 and json.loads(reply.read()) == {"bytes": 7}


@pytest.mark.parametrize("head, body_chunks, status", [
    (b"POST /detect HTTP/1.1\r\nhost: x\r\ncontent-length: ten\r\n\r\n", [b"0123456789"], 400),
    (b"POST /detect HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", [], 400),
    (b"POST /detect HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1),
     [b"\0" * (1 << 20)] * 11, 413),
])
def test_bad_framing_is_answered_then_closed_without_a_reset(echo_server, head, body_chunks, status):
    data = _raw_exchange(echo_server.server_address[1], head, body_chunks=body_chunks)
    assert data.startswith(b"HTTP/1.1 %d" % status) and b"connection: close" in data.lower()


def test_connections_past_the_limit_get_503_not_a_reset(echo_server):
    port = echo_server.server_address[1]
    held = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(2)]
    for conn in held:  # two keep-alive connections, the server's limit, stay open
        conn.request("POST", "/detect", body=b"x")
        assert conn.getresponse().read() == b'{"bytes": 1}'
    data = _raw_exchange(port, b"POST /detect HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc")
    assert data.startswith(b"HTTP/1.1 503") and b'{"message": "Service Unavailable"}' in data
    for conn in held:
        conn.close()
    time.sleep(0.2)
    assert _raw_exchange(port, b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                         ).startswith(b"HTTP/1.1 200")


def test_start_api_throttles_past_its_queue_with_429(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "handler.py").write_text(textwrap.dedent(SLOW_HANDLER))
    with LocalHttpApi(lambda: LocalFunction(package, log_path=tmp_path / "fn.log"), max_environments=1,
                      max_queued=1) as api:
        def post(_):
            conn = http.client.HTTPConnection("127.0.0.1", int(api.url.rsplit(":", 1)[1]), timeout=30)
            conn.request("POST", "/detect", body=b"{}", headers={"content-type": "application/json"})
            reply = conn.getresponse()
            return reply.status, json.loads(reply.read())

        post(0)  # warm the one environment
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            replies = list(pool.map(post, range(6)))
    statuses = sorted(status for status, _ in replies)
    assert statuses.count(200) >= 2 and statuses.count(429) >= 1 and set(statuses) == {200, 429}, replies
    assert {"message": "Too Many Requests"} in [body for _, body in replies]


@pytest.fixture()
def throttled_localaws(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCALAWS_MAX_ENVIRONMENTS", "1")
    monkeypatch.setenv("LOCALAWS_MAX_QUEUED", "0")
    info = lifecycle.start(state_dir=tmp_path / "localaws")
    yield info
    lifecycle.stop(info=info)


def test_direct_invokes_past_concurrency_are_too_many_requests(throttled_localaws):
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name="us-east-1")
    config = Config(retries={"max_attempts": 1}, read_timeout=60)
    iam = session.client("iam", endpoint_url=throttled_localaws.endpoint)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                      "Principal": {"Service": "lambda.amazonaws.com"}}]}
    role = iam.create_role(RoleName="slow", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", textwrap.dedent(SLOW_HANDLER))
    lam = session.client("lambda", endpoint_url=throttled_localaws.endpoint, config=config)
    lam.create_function(FunctionName="slow", Runtime="python3.13", Role=role, Handler="handler.handler",
                        Code={"ZipFile": code.getvalue()}, Timeout=30)
    assert lam.invoke(FunctionName="slow", Payload=b"{}")["StatusCode"] == 200  # warm

    def invoke(_):
        try:
            return lam.invoke(FunctionName="slow", Payload=b"{}")["StatusCode"]
        except ClientError as error:
            return error.response["Error"]["Code"], error.response["ResponseMetadata"]["HTTPStatusCode"]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(invoke, range(4)))
    assert 200 in outcomes and ("TooManyRequestsException", 429) in outcomes, outcomes
    assert set(outcomes) <= {200, ("TooManyRequestsException", 429)}, outcomes
    assert lam.invoke(FunctionName="slow", Payload=b"{}")["StatusCode"] == 200  # the next one is served
