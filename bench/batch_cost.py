"""What batch mode costs per million images, beside the single-image API: ``python -m bench.batch_cost``.

Batch mode (``template.yaml``'s BatchStateMachine): one Step Functions Distributed Map run lists the prefix
(one S3 LIST per 1,000 keys), hands batches of ``batch_size`` images to child workflows (STANDARD: state
transitions; EXPRESS: a request + duration), each child invokes the function once (one Lambda request), which
GETs each image and PUTs one result object per image. The API path is one HTTP API request + one Lambda
request per image. Both pay the same per-image compute; batch mode adds the S3 I/O time to each image's
billed duration unless it overlaps inference (``s3_io_ms``; the function prefetches images and writes results
in the background, so the default counts none of it).

Prices: ``bench.prices`` (dated, with sources). ``compute_ms`` defaults to D-FINE-S@384's best-memory warm
handler time from docs/benchmarks.json.

Example:
    >>> rows = cost_rows(compute_ms=224.7, memory_mb=1769, arch="arm64")
    >>> [(r["mode"], r["batch_size"]) for r in rows][:3]
    [('api', 1), ('batch STANDARD', 1), ('batch EXPRESS', 1)]
    >>> best = pick_defaults(rows); best["mode"], best["batch_size"]
    ('batch EXPRESS', 50)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import prices

BATCH_SIZES = (1, 10, 50, 100)
STANDARD_TRANSITIONS_PER_CHILD = 2  # the child's start + its one Task state (conservative: AWS bills steps)
PARENT_TRANSITIONS_PER_RUN = 3  # Map state entered, Map Run, end (per run, not per image)
BENCHMARKS_JSON = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.json"
DEFAULT_MODEL = "dfine-s@384"
GOAL_RATIO = 1.10
# A bigger batch must save more than 0.5 % of the cost: it also lengthens each child (Lambda timeout, what a retry redoes).
MARGINAL_GAIN = 0.005


def per_million(usd_per_image: float) -> float:
    return round(usd_per_image * 1_000_000, 3)


def cost_rows(*, compute_ms: float, memory_mb: int, arch: str = "x86_64", s3_io_ms: float = 0.0,
              images_per_run: int = 100_000) -> list[dict]:
    """One row per mode: $ per million images, split, and the ratio to pure Lambda compute."""
    compute = prices.lambda_usd(duration_ms=compute_ms, memory_mb=memory_mb, arch=arch)
    rows = [{"mode": "api", "batch_size": 1, "compute": compute,
             "lambda_requests": prices.REQUEST_USD, "orchestration": prices.HTTP_API_REQUEST_USD, "s3": 0.0}]
    s3 = prices.S3_GET_USD + prices.S3_PUT_LIST_USD + prices.S3_PUT_LIST_USD / prices.S3_LIST_PAGE_KEYS
    batch_compute = prices.lambda_usd(duration_ms=compute_ms + s3_io_ms, memory_mb=memory_mb, arch=arch)
    for size in BATCH_SIZES:
        child_ms = size * (compute_ms + s3_io_ms)
        parent = PARENT_TRANSITIONS_PER_RUN * prices.SFN_STANDARD_TRANSITION_USD / images_per_run
        standard = STANDARD_TRANSITIONS_PER_CHILD * prices.SFN_STANDARD_TRANSITION_USD / size + parent
        express = prices.express_usd(duration_ms=child_ms) / size + parent
        for mode, orchestration in (("batch STANDARD", standard), ("batch EXPRESS", express)):
            rows.append({"mode": mode, "batch_size": size, "compute": batch_compute,
                         "lambda_requests": prices.REQUEST_USD / size, "orchestration": orchestration, "s3": s3})
    for row in rows:
        row["total"] = row["compute"] + row["lambda_requests"] + row["orchestration"] + row["s3"]
        row["vs_compute"] = round(row["total"] / compute, 3)
        row["vs_compute_without_s3_objects"] = round((row["total"] - row["s3"]) / compute, 3)
    return rows


def pick_defaults(rows: list[dict]) -> dict:
    """The cheapest batch row, except that a bigger batch must save more than ``MARGINAL_GAIN`` of the cost."""
    batch = sorted((r for r in rows if r["mode"] != "api"), key=lambda r: r["total"])
    best = batch[0]
    for row in sorted(batch, key=lambda r: r["batch_size"]):
        if row["total"] <= best["total"] * (1 + MARGINAL_GAIN):
            return row
    return best


def table(rows: list[dict]) -> str:
    lines = ["| mode | batch | compute | Lambda requests | orchestration | S3 GET+PUT+LIST | total $/M | vs compute | "
             "vs compute, no S3 objects |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['batch_size']} | {per_million(r['compute']):.2f} | "
                     f"{per_million(r['lambda_requests']):.3f} | {per_million(r['orchestration']):.3f} | "
                     f"{per_million(r['s3']):.2f} | {per_million(r['total']):.2f} | {r['vs_compute']:.3f}x | "
                     f"{r['vs_compute_without_s3_objects']:.3f}x |")
    return "\n".join(lines)


def benchmarked(model: str, benchmarks: Path = BENCHMARKS_JSON) -> dict:
    """``{"duration_ms", "memory_mb"}`` of a model's best-cost row in docs/benchmarks.json."""
    for entry in json.loads(benchmarks.read_text())["models"]:
        if entry["model"] == model:
            return entry["best_cost"]
    raise SystemExit(f"python -m bench.batch_cost: {model} is not in {benchmarks}; run python -m bench first "
                     f"or pass --compute-ms and --memory-mb")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.batch_cost", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"a model in docs/benchmarks.json ({DEFAULT_MODEL})")
    parser.add_argument("--compute-ms", type=float, help="warm per-image handler time (overrides --model)")
    parser.add_argument("--memory-mb", type=int, help="function memory (with --compute-ms)")
    parser.add_argument("--arch", default="arm64", choices=sorted(prices.GB_SECOND_USD))
    parser.add_argument("--s3-io-ms", type=float, default=0.0,
                        help="S3 GET+PUT time per image that does not overlap inference (billed as duration)")
    args = parser.parse_args(argv)
    if (args.compute_ms is None) != (args.memory_mb is None):
        parser.error("--compute-ms and --memory-mb go together")
    point = ({"duration_ms": args.compute_ms, "memory_mb": args.memory_mb} if args.compute_ms is not None
             else benchmarked(args.model))
    rows = cost_rows(compute_ms=point["duration_ms"], memory_mb=point["memory_mb"], arch=args.arch,
                     s3_io_ms=args.s3_io_ms)
    best = pick_defaults(rows)
    print(f"{point['duration_ms']} ms per image at {point['memory_mb']} MB, {args.arch}; prices as of "
          f"{prices.PRICES_AS_OF} (Lambda) and bench/prices.py")
    print(table(rows))
    print(f"defaults: {best['mode']}, batch size {best['batch_size']}: {best['vs_compute']:.3f}x pure compute "
          f"({best['vs_compute_without_s3_objects']:.3f}x without the per-image S3 GET/PUT); goal <= {GOAL_RATIO}x: "
          f"{'met' if best['vs_compute'] <= GOAL_RATIO else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
