"""``python -m lambda_python [--arch x86_64|arm64] [-- ARGS...]``: provision the Lambda-equivalent Python (cached
under .cache/lambda_python/) and print its command line, or run it with ARGS."""

from __future__ import annotations

import argparse
import subprocess
import sys

from .interpreter import ARCHES, InterpreterUnavailable, ensure_interpreter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lambda_python", description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=ARCHES, default="x86_64", help="Lambda architecture (default x86_64)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then arguments for the interpreter")
    args = parser.parse_args(argv)
    try:
        python = ensure_interpreter(args.arch, log=lambda message: print(message, file=sys.stderr))
    except InterpreterUnavailable as error:
        print(f"lambda_python: error: {error}", file=sys.stderr)
        return 1
    rest = args.args[1:] if args.args[:1] == ["--"] else args.args
    if not rest:
        print(" ".join(python.command()))
        return 0
    return subprocess.run(python.command(*rest), env=python.env()).returncode


if __name__ == "__main__":
    sys.exit(main())
