"""``python -m localaws invoke`` and ``python -m localaws start-api`` as real processes over real HTTP."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.conftest import EVENTS_DIR
from tests.support.lambda_package import REPO_ROOT, detections

SQUARE_DETECTION = [("square", 1, 0.9, [40.0, 30.0, 120.0, 90.0])]


def run_localaws(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "localaws", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120)


def test_invoke_writes_the_response_like_aws_lambda_invoke(aws_package, known_answer_bundle, tmp_path):
    out = tmp_path / "response.json"
    proc = run_localaws("invoke", "--package", str(aws_package.zip_path), "--model-uri",
                        str(known_answer_bundle.root), "--event", str(EVENTS_DIR / "direct.json"), "--out", str(out),
                        "--log-file", str(tmp_path / "fn.log"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[0]) == {"StatusCode": 200, "ExecutedVersion": "$LATEST"}
    assert detections(json.loads(out.read_bytes())) == SQUARE_DETECTION
    assert '"status":200' in (tmp_path / "fn.log").read_text()


@pytest.mark.parametrize("args, message", [
    (["--event", "missing.json"], "cannot read --event missing.json"),
    (["--event", "{bad}"], "not valid JSON"),
    (["--event", "@direct", "--model-uri", "/no/such/bundle"], "--model-uri /no/such/bundle is not a directory"),
    (["--event", "@direct", "--package", "/no/such.zip"], "does not exist"),
])
def test_invoke_bad_input_is_one_clear_line(aws_package, tmp_path, args, message):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{bad")
    args = [str(bad_json) if a == "{bad}" else str(EVENTS_DIR / "direct.json") if a == "@direct" else a for a in args]
    package = [] if "--package" in args else ["--package", str(aws_package.zip_path)]
    proc = run_localaws("invoke", *package, *args)
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def api_url(aws_package, known_answer_bundle, tmp_path_factory):
    log = tmp_path_factory.mktemp("start-api") / "fn.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "localaws", "start-api", "--package", str(aws_package.zip_path), "--model-uri",
         str(known_answer_bundle.root), "--port", "0", "--log-file", str(log)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        line = process.stdout.readline()
        assert "http://127.0.0.1:" in line, line + process.stdout.read() if process.poll() is not None else line
        yield line.split(" on ")[1].split()[0]
    finally:
        process.terminate()
        process.wait(timeout=30)


def http(url: str, *, data: bytes | None = None, content_type: str | None = None, method: str | None = None):
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": content_type} if content_type else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_start_api_raw_jpeg_and_json_bodies_give_the_same_detections(api_url, square_jpeg):
    status, headers, body = http(api_url + "/detect", data=square_jpeg, content_type="image/jpeg")
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert detections(json.loads(body)) == SQUARE_DETECTION
    payload = json.dumps({"image": base64.b64encode(square_jpeg).decode()}).encode()
    status, _, body = http(api_url + "/detect", data=payload, content_type="application/json")
    assert status == 200 and detections(json.loads(body)) == SQUARE_DETECTION


def test_start_api_query_string_options_reach_the_function(api_url, square_jpeg):
    status, _, body = http(api_url + "/detect?threshold=0.95", data=square_jpeg, content_type="image/jpeg")
    assert status == 200 and json.loads(body)["detections"] == []


@pytest.mark.parametrize("path, method, data, content_type, status, body", [
    ("/nope", "GET", None, None, 404, {"message": "Not Found"}),
    ("/detect", "GET", None, None, 404, {"message": "Not Found"}),
    ("/", "POST", b"x", "image/jpeg", 404, {"message": "Not Found"}),
])
def test_start_api_unknown_routes_are_404_like_api_gateway(api_url, path, method, data, content_type, status, body):
    got_status, _, got_body = http(api_url + path, data=data, content_type=content_type, method=method)
    assert (got_status, json.loads(got_body)) == (status, body)


def test_start_api_maps_function_error_statuses(api_url):
    status, _, body = http(api_url + "/detect", data=b"GIF89a-broken", content_type="image/gif")
    assert status == 415 and json.loads(body)["error"]["code"] == "UnsupportedMediaType"
    status, _, body = http(api_url + "/detect", data=b"{broken", content_type="application/json")
    assert status == 400 and json.loads(body)["error"]["code"] == "BadRequest"
