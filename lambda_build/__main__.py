"""``python -m lambda_build [--arch x86_64|arm64|local] [--python 3.13] [--out dist/] [--force]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .build import DEFAULT_OUT_DIR, BuildError, build_package
from .targets import ARCHES, DEFAULT_PYTHON
from .wheels import WheelError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lambda_build", description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=ARCHES, default="x86_64",
                        help="Lambda architecture, or 'local' for this interpreter (default: x86_64)")
    parser.add_argument("--python", default=DEFAULT_PYTHON,
                        help=f"Lambda Python version MAJOR.MINOR (default: {DEFAULT_PYTHON})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR, help="output folder (default: dist/)")
    parser.add_argument("--force", action="store_true", help="rebuild even if the inputs are unchanged")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = build_package(arch=args.arch, python=args.python, out_dir=args.out, force=args.force,
                               log=lambda message: print(message, file=sys.stderr))
    except (BuildError, WheelError, ValueError) as error:
        print(f"lambda_build: error: {error}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
