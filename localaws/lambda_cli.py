"""``python -m localaws invoke|start-api``: run a built package locally, like ``aws lambda invoke`` and
``sam local start-api`` (no Docker).

    python -m localaws invoke --package dist/lambda-x86_64.zip --model-uri BUNDLE_DIR --event event.json [--out response.json]
    python -m localaws start-api --package dist/lambda-x86_64.zip --model-uri BUNDLE_DIR [--port 0]

The function sees MODEL_URI plus the AWS_* settings of this shell (credentials, region, AWS_ENDPOINT_URL) and any
``--env KEY=VALUE``. Its logs go to ``--log-file`` (default: under .cache/localaws/logs/).

Example:
    >>> parse_args(["invoke", "--package", "p.zip", "--event", "e.json"]).timeout
    30.0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from lambda_python import ARCHES, InterpreterUnavailable

from .lambda_runtime import LocalFunction, PackageError
from .start_api import DEFAULT_ROUTES, LocalHttpApi

FORWARDED_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_S3", "SCORE_THRESHOLD")


class UsageError(ValueError):
    """Bad command-line input; the message says what to fix."""


def parse_env_pairs(pairs: list[str]) -> dict[str, str]:
    """``["A=1", "B=x=y"]`` -> ``{"A": "1", "B": "x=y"}``.

    >>> parse_env_pairs(["A=1", "B=x=y"])
    {'A': '1', 'B': 'x=y'}
    >>> parse_env_pairs([])
    {}
    """
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--env {pair!r} must look like KEY=VALUE")
        env[key] = value
    return env


def function_env(args: argparse.Namespace, *, environ: dict[str, str] | None = None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    env = {key: environ[key] for key in FORWARDED_ENV if environ.get(key)}
    if args.model_uri:
        model_uri = args.model_uri
        if "://" not in model_uri:
            if not Path(model_uri).is_dir():
                raise UsageError(f"--model-uri {model_uri} is not a directory (or an s3:// URI)")
            model_uri = str(Path(model_uri).resolve())
        env["MODEL_URI"] = model_uri
    env.update(parse_env_pairs(args.env))
    return env


def _add_function_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--package", required=True, help="built package: dist/lambda-x86_64.zip or its folder")
    parser.add_argument("--arch", choices=tuple(ARCHES), default="x86_64",
                        help="Lambda architecture: the Lambda Python that runs it (arm64 under qemu; default x86_64)")
    parser.add_argument("--model-uri", help="model bundle directory or s3://bucket/prefix/ (sets MODEL_URI)")
    parser.add_argument("--handler", default="handler.handler", help="module.function (default: handler.handler)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra environment variable")
    parser.add_argument("--timeout", type=float, default=30.0, help="function timeout in seconds (default 30)")
    parser.add_argument("--memory", type=int, default=1024, help="AWS_LAMBDA_FUNCTION_MEMORY_SIZE (default 1024)")
    parser.add_argument("--function-name", default="detect", help="AWS_LAMBDA_FUNCTION_NAME (default detect)")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                        or "us-east-1")
    parser.add_argument("--log-file", type=Path, help="function log (default: .cache/localaws/logs/...)")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localaws", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    invoke = commands.add_parser("invoke", help="invoke once with an event file, like aws lambda invoke")
    _add_function_args(invoke)
    invoke.add_argument("--event", required=True, help="event JSON file ('-' for stdin)")
    invoke.add_argument("--out", type=Path, help="write the response payload here (default: stdout)")
    start = commands.add_parser("start-api", help="HTTP front on 127.0.0.1 sending payload 2.0 events")
    _add_function_args(start)
    start.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    start.add_argument("--port", type=int, default=3000, help="port (default 3000; 0 picks a free one)")
    start.add_argument("--route", action="append", default=[], help='route key, e.g. "POST /detect" (repeatable)')
    return parser.parse_args(argv)


def read_event(source: str) -> bytes:
    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read --event {source}: {error.strerror}") from None
    try:
        json.loads(data)
    except ValueError as error:
        raise UsageError(f"--event {source} is not valid JSON ({error}); Lambda accepts JSON payloads only") from None
    return data


def make_function(args: argparse.Namespace):
    return LocalFunction(args.package, handler=args.handler, env=function_env(args), timeout_s=args.timeout,
                         memory_mb=args.memory, function_name=args.function_name, region=args.region,
                         log_path=args.log_file, arch=args.arch)


def run_invoke(args: argparse.Namespace) -> int:
    payload = read_event(args.event)
    with make_function(args) as function:
        result = function.invoke(payload)
    if args.out:
        args.out.write_bytes(result.payload)
    else:
        sys.stdout.buffer.write(result.payload + b"\n")
    summary = {"StatusCode": result.status_code, "ExecutedVersion": "$LATEST"}
    if result.function_error:
        summary["FunctionError"] = result.function_error
    print(json.dumps(summary), file=sys.stdout if args.out else sys.stderr)
    print(f"localaws: log at {function.log_path}", file=sys.stderr)
    return 0 if result.status_code == 200 else 1


def run_start_api(args: argparse.Namespace) -> int:
    make_function(args).close()  # fail fast on a bad package or bundle path, before binding the port
    api = LocalHttpApi(lambda: make_function(args), routes=tuple(args.route) or DEFAULT_ROUTES, host=args.host,
                       port=args.port, region=args.region)
    print(f"localaws start-api: {', '.join(api.routes)} on {api.url} (Ctrl-C to stop)", flush=True)
    try:
        api.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        api.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run_invoke(args) if args.command == "invoke" else run_start_api(args)
    except (UsageError, PackageError, InterpreterUnavailable) as error:
        print(f"localaws {args.command}: error: {error}", file=sys.stderr)
        return 2
