"""python -m sagemaker_entry measure [--input-size 640] [--repeat 5]

(The archive is built by ``python -m lambda_build.sagemaker``: this package holds what runs in the container.)"""

from __future__ import annotations

import argparse
import sys

from sagemaker_entry.measure import format_table, measure as run_measure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sagemaker_entry", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    measure = commands.add_parser("measure", help="payload sizes and CPU time: image bytes vs uint8 model input")
    measure.add_argument("--input-size", type=int, default=640)
    measure.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    print(format_table(run_measure(input_size=args.input_size, repeat=args.repeat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
