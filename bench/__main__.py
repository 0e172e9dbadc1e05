"""``python -m bench [--quick] [--archs dfine-s retinanet_resnet50_fpn_v2] [--sizes 640 384] [--bundle DIR]``.

Writes docs/benchmarks.json, docs/benchmarks.png and docs/BENCHMARKS.md (``--out`` / ``--markdown`` move
them). ``--quick``: one small model, few runs, no cross-arch package builds (~1-2 minutes).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .models import DEFAULT_CACHE, REPO_ROOT, BenchError, ModelSpec, model_specs
from .report import write_reports
from .run import BenchConfig, run_benchmark


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small model, few runs (~1-2 minutes)")
    parser.add_argument("--archs", nargs="+", help="export architectures, optionally arch@size "
                        "(default: dfine-n dfine-s retinanet_resnet50_fpn_v2)")
    parser.add_argument("--sizes", nargs="+", type=int, help="square input sizes (default: 640 384)")
    parser.add_argument("--bundle", type=Path, action="append", default=[],
                        help="benchmark an existing bundle directory (no PyTorch baseline); repeatable")
    parser.add_argument("--runs", type=int, help="timed iterations per measurement (default 20; quick 5)")
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads (default: all CPUs)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs", help="folder for JSON and PNG (docs/)")
    parser.add_argument("--markdown", type=Path, default=None, help="Markdown path (default: <out>/BENCHMARKS.md)")
    parser.add_argument("--dist", type=Path, default=DEFAULT_CACHE / "dist",
                        help="where the Lambda packages are built (default .cache/bench/dist)")
    parser.add_argument("--tmp-models", type=Path, default=None,
                        help="where bundles are copied for the Lambda runs (default: <tmp>/bench-models)")
    parser.add_argument("--no-arch-packages", action="store_true", help="skip the x86_64/arm64 package builds")
    parser.add_argument("--from-json", type=Path, help="only regenerate the Markdown and chart from a results JSON")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    for value in (args.runs, args.threads):
        if value is not None and value < 1:
            raise BenchError("--runs and --threads must be at least 1")
    for bundle in args.bundle:
        if not (bundle / "model.json").is_file():
            raise BenchError(f"--bundle {bundle}: no model.json there; pass a directory written by export")
    models = [ModelSpec(arch="bundle", size=None, bundle=b.resolve()) for b in args.bundle]
    if args.archs or not models:
        models += model_specs(args.archs, args.sizes, quick=args.quick)
    config = BenchConfig(models=models, quick=args.quick, threads=args.threads, dist_dir=args.dist,
                         log=lambda message: print(message, file=sys.stderr, flush=True))
    if args.tmp_models is not None:
        config.tmp_models = args.tmp_models
    if args.quick:
        config.warmup, config.runs, config.budget_s, config.min_runs = 1, 5, 15.0, 3
        config.cold_starts, config.one_thread_runs, config.package_arches = 1, 3, ()
    if args.runs:
        config.runs = args.runs
        config.min_runs = min(config.min_runs, args.runs)
    if args.no_arch_packages:
        config.package_arches = ()
    return config


def _load_results(path: Path) -> dict:
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BenchError(f"--from-json {path}: cannot read results ({exc})") from None
    if not isinstance(results, dict) or "models" not in results:
        raise BenchError(f"--from-json {path}: not a benchmark results file (no 'models')")
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.from_json:
            results = _load_results(args.from_json)
        else:
            results = run_benchmark(config_from_args(args))
    except BenchError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 1
    written = write_reports(results, out_dir=args.out, markdown_path=args.markdown or args.out / "BENCHMARKS.md")
    for model in results["models"]:
        r = model["ratios"]
        print(f"{model['model']}: ORT {r['ort_over_eager_speedup']}x faster than eager; handler/session.run "
              f"1080p {r['handler_1080p_over_session_run']}x, 4K {r['handler_4k_over_session_run']}x; cold start "
              f"{model['cold_start']['median']['imports_plus_session_plus_first_run_s']} s; best "
              f"${model['best_cost']['usd_per_million_arm64']}/M images (arm64, {model['best_cost']['memory_mb']} MB)")
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
