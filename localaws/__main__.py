"""``python -m localaws up|down|status|env`` (the local AWS process); other commands go to the runtime's CLI.

    python -m localaws up        start (or find) the local AWS; prints its endpoints
    python -m localaws status    exit 0 and print endpoints when running, exit 1 when not
    python -m localaws env       shell exports for boto3 / aws CLI: eval "$(python -m localaws env)"
    python -m localaws down      stop it and every Lambda worker it started
"""

from __future__ import annotations

import sys

from . import lifecycle
from .lambda_cli import main as runtime_main

LIFECYCLE_COMMANDS = ("up", "down", "status", "env")


def _describe(info: lifecycle.LocalAws) -> str:
    return (f"local AWS running (pid {info.pid})\n  AWS APIs:  {info.endpoint}\n"
            f"  HTTP APIs: {info.api_endpoint}/<apiId>/...\n  log:       {info.log_file}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    command = argv[0]
    if command not in LIFECYCLE_COMMANDS:
        return runtime_main(argv)  # invoke, start-api (an unknown command is a usage error there)
    if command == "up":
        print(_describe(lifecycle.start()))
        return 0
    if command == "down":
        print("local AWS stopped" if lifecycle.stop() else "local AWS was not running")
        return 0
    info = lifecycle.status()
    if info is None:
        print("local AWS is not running (start it: python -m localaws up)", file=sys.stderr)
        return 1
    if command == "env":
        print("\n".join(f"export {key}={value}" for key, value in info.client_env().items()))
    else:
        print(_describe(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
