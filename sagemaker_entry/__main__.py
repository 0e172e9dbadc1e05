"""python -m sagemaker_entry package --bundle DIR --target gpu|inferentia --out model.tar.gz
python -m sagemaker_entry measure [--input-size 640] [--repeat 5]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sagemaker_entry", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    package = commands.add_parser("package", help="build the SageMaker model.tar.gz for a bundle")
    package.add_argument("--bundle", required=True, type=Path, help="model bundle directory (python -m export output)")
    package.add_argument("--target", required=True, choices=["gpu", "inferentia"])
    package.add_argument("--out", required=True, type=Path, help="where to write model.tar.gz")
    package.add_argument("--wheels", default="download",
                         help="'download' (default: pip download the pinned wheels for the container's Python into "
                              ".cache/sagemaker-wheels/, needed because the endpoint has no network), a directory "
                              "of wheels, or 'none' (requirements only: the container needs network access)")
    measure = commands.add_parser("measure", help="payload sizes and CPU time: image bytes vs uint8 model input")
    measure.add_argument("--input-size", type=int, default=640)
    measure.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    if args.command == "measure":
        from sagemaker_entry.measure import format_table, measure as run_measure

        print(format_table(run_measure(input_size=args.input_size, repeat=args.repeat)))
        return 0
    from detection.errors import DetectionError
    from sagemaker_entry.package import PackagingError, build_model_archive

    wheels = None if args.wheels == "none" else args.wheels if args.wheels == "download" else Path(args.wheels)
    try:
        out = build_model_archive(args.bundle, args.target, args.out, wheels=wheels)
    except (PackagingError, DetectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
