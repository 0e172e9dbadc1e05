"""The local AWS process: moto (pinned, patched) on one port, the API Gateway data plane on another.

Run it through ``localaws.lifecycle`` (``python -m localaws up``) rather than by hand; it binds 127.0.0.1 only.

    python -m localaws.server --port 4566 --api-port 4567 [--stock]

``--stock`` serves unpatched moto (no data plane): the fix tests run their checks against it to show each gap.

Example:
    >>> parse_args(["--port", "5000", "--api-port", "5001"]).api_port
    5001
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any

from . import dataplane, lambda_bridge, patches

HOST = "127.0.0.1"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localaws.server", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True, help="moto (AWS API) port on 127.0.0.1")
    parser.add_argument("--api-port", type=int, default=0, help="API Gateway data-plane port (0 = none)")
    parser.add_argument("--stock", action="store_true", help="serve unpatched moto, for the fix tests")
    return parser.parse_args(argv)


def _serve_moto(port: int) -> Any:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    return make_server(HOST, port, app, threaded=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    os.environ["MOTO_PORT"] = str(args.port)
    os.environ.setdefault("LOCALAWS_ENDPOINT", f"http://{HOST}:{args.port}")
    if not args.stock:
        applied = patches.apply_all()
        logging.getLogger("localaws").info("moto patches applied: %s", ", ".join(applied))
    moto_server = _serve_moto(args.port)
    api_server = None
    if args.api_port and not args.stock:
        api_server = dataplane.make_server(host=HOST, port=args.api_port)
        threading.Thread(target=api_server.serve_forever, name="apigw-dataplane", daemon=True).start()

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=moto_server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.getLogger("localaws").info("serving AWS APIs on http://%s:%d, HTTP APIs on %s", HOST, args.port,
                                       f"http://{HOST}:{args.api_port}" if api_server else "(none)")
    try:
        moto_server.serve_forever()
    finally:
        if api_server is not None:
            api_server.shutdown()
        lambda_bridge.shutdown_pool()
    return 0


if __name__ == "__main__":
    sys.exit(main())
