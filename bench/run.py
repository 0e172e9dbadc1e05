"""The benchmark run: for each model, eager vs ORT, handler vs floor in the built package, cold start;
then package sizes and cost per million images. Everything a table or chart shows comes from here.

Example:
    >>> # results = run_benchmark(BenchConfig(quick=True))      # ~1-2 minutes on 2 cores
    >>> # results["models"][0]["ratios"]["handler_1080p_over_session_run"]
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detection import session as ort_session
from detection.bundle import read_bundle, sha256_file
from detection.image import decode_image
from detection.preprocess import preprocess
from detection.session import optimize_for_serving, optimized_paths, pre_optimized
from lambda_build import build_package
from lambda_python import ensure_interpreter
from localaws import lifecycle
from localaws.runtime_env import ensure_runtime_dir

from . import prices
from .images import bench_images
from .models import DEFAULT_CACHE, BenchError, ModelSpec, batchable, eager_model, ensure_bundle, has_batch_axis
from .stats import paired_ratio, summary

WORKER = Path(__file__).resolve().parent / "worker.py"
NOTE = ("Absolute times come from a shared 2-core machine (~7 engineers' jobs running beside it): they are "
        "indicative only. The results are the ratios, each taken from measurements interleaved in one run.")


@dataclass
class BenchConfig:
    models: list[ModelSpec] = field(default_factory=list)
    quick: bool = False
    warmup: int = 2
    runs: int = 20
    budget_s: float = 60.0          # per measurement loop: stop early (after min_runs) past this
    min_runs: int = 5
    cold_starts: int = 3
    one_thread_runs: int = 8
    package_arches: tuple[str, ...] = ("x86_64", "arm64")
    cache_dir: Path = DEFAULT_CACHE
    dist_dir: Path = DEFAULT_CACHE / "dist"
    tmp_models: Path = Path(tempfile.gettempdir()) / "bench-models"
    threads: int | None = None      # ORT threads for the warm run; None: all CPUs
    log: object = print


# ---------------------------------------------------------------- PyTorch eager vs bare ORT (in process)

def eager_vs_ort(spec: ModelSpec, bundle_dir: Path, image_path: Path, config: BenchConfig) -> dict:
    """Interleaved per iteration: eager forward, ORT ``session.run``, on the same preprocessed tensor."""
    module = eager_model(spec)
    bundle = read_bundle(bundle_dir)
    manifest = bundle.manifest
    decoded = decode_image(image_path.read_bytes())
    tensor, _ = preprocess(decoded.array, spec=manifest.preprocessing, input_spec=manifest.input)
    session = ort_session.create_session(bundle.model_path, threads=config.threads)
    feed = {manifest.input.name: tensor}
    result: dict = {"ort_threads": session.get_session_options().intra_op_num_threads}
    if module is None:
        ort = _loop(lambda: session.run(None, feed), config)
        result.update(session_run=summary(ort), eager=None, ort_over_eager_speedup=None)
        return result
    import torch

    example = torch.from_numpy(tensor)
    with torch.inference_mode():
        eager_out = module(example)
        ort_out = session.run(None, feed)
        first = eager_out[0] if isinstance(eager_out, (tuple, list)) else eager_out
        diff = np.abs(first.numpy() - ort_out[0])
        result["max_abs_output_diff"] = float(diff.max())
        # random-init DETR heads have near-tied proposals: a 1e-6 wobble can swap a few of the top-k queries,
        # so the share of matching values says more than the max
        result["outputs_within_1e-3"] = round(float((diff <= 1e-3).mean()), 4)
        torch.set_num_threads(result["ort_threads"])
        eager_s, ort_s = _alternate(lambda: module(example), lambda: session.run(None, feed), config,
                                    runs=config.runs, budget_s=config.budget_s)
        # one thread each (a 1-vCPU Lambda); fewer runs: it is the slow half
        single = ort_session.create_session(bundle.model_path, threads=1)
        torch.set_num_threads(1)
        eager_1, ort_1 = _alternate(lambda: module(example), lambda: single.run(None, feed), config,
                                    runs=max(config.min_runs, config.runs // 2), budget_s=config.budget_s / 2)
    result.update(torch_threads=result["ort_threads"], eager=summary(eager_s), session_run=summary(ort_s),
                  ort_over_eager_speedup=paired_ratio(eager_s, ort_s), eager_1thread=summary(eager_1),
                  session_run_1thread=summary(ort_1), ort_over_eager_speedup_1thread=paired_ratio(eager_1, ort_1))
    return result


def _alternate(first, second, config: BenchConfig, *, runs: int, budget_s: float) -> tuple[list[float], list[float]]:
    """Time ``first`` and ``second`` alternately (who goes first flips each iteration) after warm-up."""
    a_s, b_s = [], []
    start = time.perf_counter()
    for i in range(config.warmup + runs):
        pair = [(first, a_s), (second, b_s)]
        for call, samples in (pair if i % 2 == 0 else pair[::-1]):
            t0 = time.perf_counter()
            call()
            if i >= config.warmup:
                samples.append(time.perf_counter() - t0)
        if i < config.warmup:
            start = time.perf_counter()
        elif len(a_s) >= config.min_runs and time.perf_counter() - start > budget_s:
            break
    return a_s, b_s


def _loop(call, config: BenchConfig) -> list[float]:
    samples, start = [], time.perf_counter()
    for i in range(config.warmup + config.runs):
        t0 = time.perf_counter()
        call()
        if i >= config.warmup:
            samples.append(time.perf_counter() - t0)
            if len(samples) >= config.min_runs and time.perf_counter() - start > config.budget_s:
                break
    return samples


# ---------------------------------------------------------------- the built package in a clean process

def model_in_tmp(bundle_dir: Path, config: BenchConfig, *, optimized: bool) -> Path:
    """A copy of the bundle under /tmp (where the Lambda keeps it after the first download), with or without
    ``model.optimized.onnx`` (``detection.session.optimize_for_serving``)."""
    target = config.tmp_models / (bundle_dir.name + ("-optimized" if optimized else ""))
    source_manifest = (bundle_dir / "model.json").read_text()
    if not (target / "model.json").exists() or (target / "model.json").read_text() != source_manifest:
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for name in ("model.json", "model.onnx", "class_map.json"):
            shutil.copyfile(bundle_dir / name, target / name)
    if optimized and pre_optimized(target / "model.onnx") is None:
        optimize_for_serving(target)
    if not optimized:
        for path in optimized_paths(target / "model.onnx"):
            path.unlink(missing_ok=True)
    return target


def run_worker(*, mode: str, package_dir: Path, model_dir: Path | str, images: dict[str, Path], env: dict | None = None,
               bytecode: bool = True, **settings) -> dict:
    """``python3.13 -I -S -B bench/worker.py`` (the Lambda-equivalent interpreter, :mod:`lambda_python`) with only
    the package on its path; returns its JSON result.

    ``-B``: like Lambda's read-only /var/task, nothing is written into the package, so it is measured as
    shipped. ``bytecode=False`` also hides the package's ``.pyc`` (an empty ``pycache_prefix``): every import
    compiles, as it does on Lambda for a package built without an interpreter of the target's version.
    """
    python = ensure_interpreter("x86_64")
    # Lambda's /var/runtime (awslambdaric, boto3, snapshot_restore_py) is on every function's path
    settings.setdefault("runtime_dir", str(ensure_runtime_dir(python)))
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as scratch:
        result_path = Path(scratch) / "result.json"
        config = {"mode": mode, "package_dir": str(package_dir), "result": str(result_path),
                  "images": {k: str(v) for k, v in images.items()}, **settings}
        config_path = Path(scratch) / "config.json"
        config_path.write_text(json.dumps(config))
        child_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MODEL_URI": str(model_dir),
                     "MODEL_CACHE_DIR": str(Path(scratch) / "cache"), "LANG": "C.UTF-8", **(env or {})}
        started = time.perf_counter()
        flags = ["-I", "-S", "-B"] + ([] if bytecode else ["-X", f"pycache_prefix={Path(scratch) / 'pycache'}"])
        proc = subprocess.run(python.command(*flags, str(WORKER), str(config_path)), env=python.env(child_env),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=1800)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
            raise BenchError(f"benchmark worker ({mode}) failed with exit code {proc.returncode}:\n{tail}")
        result = json.loads(result_path.read_text())
    result["process_wall_s"] = wall
    return result


def handler_vs_floor(package_dir: Path, model_dir: Path, images: dict[str, Path], config: BenchConfig) -> dict:
    env = {"ORT_THREADS": str(config.threads)} if config.threads else {}
    warm = run_worker(mode="warm", package_dir=package_dir, model_dir=model_dir, images=images, env=env,
                      warmup=config.warmup, runs=config.runs, floor_image="1080p", budget_s=config.budget_s,
                      min_runs=config.min_runs)
    samples = warm.pop("samples")
    breakdown = warm.pop("breakdown")
    out = {"threads": warm["threads"], "torch_importable": warm["torch_importable"],
           "torch_imported": warm["torch_imported"], "session_run": summary(samples["session_run"])}
    for label in images:
        out[f"handler_{label}"] = summary(samples[f"handler_{label}"])
        out[f"handler_{label}_over_session_run"] = paired_ratio(samples[f"handler_{label}"], samples["session_run"])
        steps = {key: float(np.median([t[key] for t in breakdown[label]])) for key in breakdown[label][0]}
        handler_ms = out[f"handler_{label}"]["p50_ms"]
        steps["event_and_response"] = round(max(0.0, handler_ms - steps["total"]), 2)
        out[f"breakdown_{label}_p50_ms"] = {k: round(v, 2) for k, v in steps.items()}
    return out


def one_vcpu_duration(package_dir: Path, model_dir: Path, images: dict[str, Path], config: BenchConfig) -> dict:
    """Handler on the 1080p JPEG with one ORT thread: the 1-vCPU (1,769 MB) Lambda point of the cost model."""
    warm = run_worker(mode="warm", package_dir=package_dir, model_dir=model_dir, images={"1080p": images["1080p"]},
                      env={"ORT_THREADS": "1"}, warmup=1, runs=config.one_thread_runs, floor_image="1080p",
                      budget_s=config.budget_s / 2, min_runs=min(3, config.one_thread_runs))
    samples = warm["samples"]
    return {"session_run": summary(samples["session_run"]), "handler_1080p": summary(samples["handler_1080p"]),
            "handler_1080p_over_session_run": paired_ratio(samples["handler_1080p"], samples["session_run"])}


BATCH_SIZES = (2, 4, 8)


def batched_inference(package_dir: Path, model_dir: Path, images: dict[str, Path], config: BenchConfig) -> dict:
    """The S3 jobs' detection step on the 1080p JPEG: one image per model run against 2/4/8 (INFERENCE_BATCH), with
    1 and 2 ORT threads, on a bundle with a batch axis (``model_dir``); images per second per vCPU, and each batch
    size's gain as a median of per-round ratios."""
    out: dict = {}
    for threads in (1, 2):
        result = run_worker(mode="batched", package_dir=package_dir, model_dir=model_dir, images=images,
                            env={"ORT_THREADS": str(threads)}, batch_image="1080p", batch_sizes=list(BATCH_SIZES),
                            images_per_round=max(BATCH_SIZES), warmup=1, runs=max(5, config.runs // 2))
        if not result["takes_batches"]:
            return {"takes_batches": False}
        samples = result["samples"]
        rows = {}
        for size, per_image in samples.items():
            p50 = float(np.median(per_image))
            rows[size] = {"ms_per_image": round(p50 * 1000, 1), "images_per_s_per_vcpu": round(1 / p50 / threads, 2),
                          "gain_over_one_by_one": paired_ratio(samples["1"], per_image)}
        out[f"threads_{threads}"] = rows
    out["takes_batches"] = True
    return out


COLD_KEYS = ("imports_s", "numpy_s", "pillow_s", "onnxruntime_s", "detection_s", "init_s", "first_invoke_s",
             "since_process_start_s", "process_wall_s")


def cold_starts(package_dir: Path, variants: dict[str, tuple[Path, bool]], images: dict[str, Path],
                config: BenchConfig) -> dict:
    """Fresh processes, alternating between ``variants`` (name -> (bundle dir, byte code shipped or not)):
    interpreter start, imports, bundle read + session creation, first 1080p invoke."""
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(config.cold_starts):
        for name, (model_dir, bytecode) in variants.items():
            runs[name].append(run_worker(mode="cold", package_dir=package_dir, model_dir=model_dir, images=images,
                                         cold_image="1080p", bytecode=bytecode))
    out = {}
    for name, results in runs.items():
        median = {key: round(float(np.median([r[key] for r in results])), 3) for key in COLD_KEYS}
        median["imports_plus_session_plus_first_run_s"] = round(median["imports_s"] + median["init_s"]
                                                                + median["first_invoke_s"], 3)
        out[name] = {"runs": len(results), "median": median,
                     "opened": sorted({Path(r["model_path"]).name for r in results})}
    return out


def _upload_bundle(bundle_dir: Path, *, endpoint: str, env: dict, bucket: str) -> str:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=env["AWS_DEFAULT_REGION"],
                      aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    s3.create_bucket(Bucket=bucket)
    for path in sorted(bundle_dir.iterdir()):
        if path.is_file():
            s3.upload_file(str(path), bucket, f"{bundle_dir.name}/{path.name}")
    return f"s3://{bucket}/{bundle_dir.name}/"


def cold_starts_with_fetch(package_dir: Path, bundle_dir: Path, images: dict[str, Path], config: BenchConfig) -> dict:
    """Fresh processes whose MODEL_URI is on a local S3 (a moto server) and whose /tmp cache is empty, as in a
    new Lambda environment: ``sequential`` imports everything first, then downloads (the order before the
    prefetch thread), ``overlapped`` imports the handler first, whose download thread overlaps the imports.
    Both hash the model while downloading; ``second_hash_pass_s`` is the pass over the file that saves."""
    runtime_dir = ensure_runtime_dir(ensure_interpreter("x86_64"))
    model_file = bundle_dir / "model.onnx"
    hashes = []
    for _ in range(3):
        t0 = time.perf_counter()
        sha256_file(model_file)
        hashes.append(time.perf_counter() - t0)
    with tempfile.TemporaryDirectory(prefix="bench-s3-") as state:
        info = lifecycle.start(state_dir=Path(state), stock=True)
        try:
            env = {**info.client_env(), "AWS_DEFAULT_REGION": lifecycle.REGION}
            uri = _upload_bundle(bundle_dir, endpoint=info.endpoint, env=env, bucket="bench-models")
            runs: dict[str, list[dict]] = {"sequential": [], "overlapped": []}
            for _ in range(config.cold_starts):
                for name in runs:
                    runs[name].append(run_worker(mode="cold" if name == "sequential" else "cold_overlapped",
                                                 package_dir=package_dir, model_dir=uri, images=images, env=env,
                                                 cold_image="1080p", runtime_dir=str(runtime_dir)))
        finally:
            lifecycle.stop(info=info)
    keys = ("init_s", "first_invoke_s", "since_process_start_s", "process_wall_s")
    out: dict = {"bundle_mib": round(sum(p.stat().st_size for p in bundle_dir.iterdir() if p.is_file()) / 2**20, 2),
                 "second_hash_pass_s": round(float(np.median(hashes)), 4)}
    for name, results in runs.items():
        out[name] = {"runs": len(results),
                     "median": {key: round(float(np.median([r[key] for r in results])), 3) for key in keys},
                     "opened": sorted({Path(r["model_path"]).name for r in results})}
    out["overlapped_over_sequential"] = paired_ratio([r["since_process_start_s"] for r in runs["overlapped"]],
                                                     [r["since_process_start_s"] for r in runs["sequential"]])
    return out


# ---------------------------------------------------------------- package sizes and cost

def package_sizes(arches: tuple[str, ...], config: BenchConfig) -> dict:
    sizes = {}
    for arch in arches:
        try:
            result = build_package(arch=arch, out_dir=config.dist_dir, log=lambda m: None)
        except Exception as exc:  # a missing wheel download must not lose the rest of the run
            sizes[arch] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        sizes[arch] = {"zipped_mib": round(result.zipped_bytes / 2**20, 2),
                       "unzipped_mib": round(result.unzipped_bytes / 2**20, 2),
                       "python": result.python, "bytecode": result.bytecode, "within_budget": result.zipped_bytes <= 50 * 2**20
                       and result.unzipped_bytes <= 150 * 2**20}
    return sizes


def cost_table(*, one_vcpu_ms: float, two_vcpu_ms: float) -> list[dict]:
    rows = []
    for memory in prices.MEMORY_SIZES_MB:
        # on this oversubscribed host 2 threads can be slower than 1; a real 2-vCPU Lambda is not
        duration = prices.duration_at(memory, one_vcpu_ms=one_vcpu_ms, two_vcpu_ms=min(one_vcpu_ms, two_vcpu_ms))
        rows.append({"memory_mb": memory, "vcpus": round(prices.vcpus(memory), 2), "duration_ms": round(duration, 1),
                     **{f"usd_per_million_{arch}": round(prices.cost_per_million(duration_ms=duration,
                                                                                memory_mb=memory, arch=arch), 2)
                        for arch in prices.GB_SECOND_USD}})
    return rows


# ---------------------------------------------------------------- the whole run

def build_aws_package(config: BenchConfig) -> Path:
    """The x86_64 zip a deploy uploads (python3.13 byte code), unpacked: what every measurement runs."""
    return build_package(arch="x86_64", out_dir=config.dist_dir, log=lambda m: None).package_dir


def bench_model(spec: ModelSpec, *, package_dir: Path, images: dict[str, Path], config: BenchConfig) -> dict:
    log = config.log
    bundle_dir = ensure_bundle(spec, cache_dir=config.cache_dir, log=log)
    manifest = json.loads((bundle_dir / "model.json").read_text())
    entry: dict = {"model": spec.key, "arch": manifest.get("provenance", {}).get("architecture", spec.arch),
                   "input": [manifest["input"]["height"], manifest["input"]["width"]],
                   "preprocessing": manifest["preprocessing"],
                   "model_mib": round((bundle_dir / manifest.get("model_file", "model.onnx")).stat().st_size / 2**20, 2)}
    log(f"[{spec.key}] PyTorch eager vs ONNX Runtime ...")
    entry["eager_vs_ort"] = eager_vs_ort(spec, bundle_dir, images["1080p"], config)
    plain_dir = model_in_tmp(bundle_dir, config, optimized=False)
    model_dir = model_in_tmp(bundle_dir, config, optimized=True)
    log(f"[{spec.key}] handler vs bare session.run in the built package ...")
    entry["handler"] = handler_vs_floor(package_dir, model_dir, images, config)
    log(f"[{spec.key}] one-vCPU duration ...")
    entry["one_vcpu"] = one_vcpu_duration(package_dir, model_dir, images, config)
    variants = {"plain": (plain_dir, True), "optimized": (model_dir, True), "no_bytecode": (model_dir, False)}
    batch_dir = model_dir  # a --bundle is measured as it is
    if batchable(spec):
        batch_dir = model_in_tmp(ensure_bundle(spec, cache_dir=config.cache_dir, batch_axis=True, log=log), config,
                                 optimized=True)
        variants["batch_axis"] = (batch_dir, True)
    log(f"[{spec.key}] cold starts (plain and pre-optimized model, with and without byte code"
        f"{', with a batch axis' if 'batch_axis' in variants else ''}, alternating) ...")
    colds = cold_starts(package_dir, variants, images, config)
    log(f"[{spec.key}] cold starts fetching the bundle from a local S3 (sequential vs overlapped) ...")
    entry["cold_start_fetch"] = cold_starts_with_fetch(package_dir, model_dir, images, config)
    if batchable(spec) or has_batch_axis(batch_dir):  # a RetinaNet, or a --bundle without one: nothing to batch
        log(f"[{spec.key}] batched inference for S3 jobs (1 vs {'/'.join(map(str, BATCH_SIZES))} images per run) ...")
        entry["batched"] = batched_inference(package_dir, batch_dir, images, config)
    entry["cold_start"] = colds["optimized"]
    entry["cold_start_plain"] = colds["plain"]
    entry["cold_start_no_bytecode"] = colds["no_bytecode"]
    entry["cost"] = cost_table(one_vcpu_ms=entry["one_vcpu"]["handler_1080p"]["p50_ms"],
                               two_vcpu_ms=entry["handler"]["handler_1080p"]["p50_ms"])
    eager = entry["eager_vs_ort"]
    entry["ratios"] = {
        "ort_over_eager_speedup": eager.get("ort_over_eager_speedup"),
        "handler_1080p_over_session_run": entry["handler"].get("handler_1080p_over_session_run"),
        "handler_4k_over_session_run": entry["handler"].get("handler_4k_over_session_run"),
        "handler_1080p_over_session_run_1thread": entry["one_vcpu"]["handler_1080p_over_session_run"],
        "ort_over_eager_speedup_1thread": eager.get("ort_over_eager_speedup_1thread"),
        "cold_start_plain_over_optimized": round(
            colds["plain"]["median"]["imports_plus_session_plus_first_run_s"]
            / colds["optimized"]["median"]["imports_plus_session_plus_first_run_s"], 3),
    }
    if "batch_axis" in colds:
        entry["cold_start_batch_axis"] = colds["batch_axis"]
        entry["ratios"]["session_init_batch_axis_over_optimized"] = round(
            colds["batch_axis"]["median"]["init_s"] / colds["optimized"]["median"]["init_s"], 3)
    entry["best_cost"] = min(entry["cost"], key=lambda row: row["usd_per_million_arm64"])
    return entry


def run_benchmark(config: BenchConfig) -> dict:
    if not config.models:
        raise BenchError("no models to benchmark")
    started = time.time()
    images = bench_images(config.cache_dir / "images")
    config.log("building the x86_64 Lambda package ...")
    package_dir = build_aws_package(config)
    results = {
        "schema": 1, "note": NOTE, "quick": config.quick,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": {"platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "lambda_python": ensure_interpreter("x86_64").version, "load_average_at_start": list(os.getloadavg())},
        "settings": {"warmup": config.warmup, "runs": config.runs, "budget_s": config.budget_s,
                     "cold_starts": config.cold_starts, "threads": config.threads or "all CPUs"},
        "images": {label: {"path": str(path), "bytes": path.stat().st_size} for label, path in images.items()},
        "prices": {"as_of": prices.PRICES_AS_OF, "source": prices.PRICES_SOURCE,
                   "gb_second_usd": prices.GB_SECOND_USD, "request_usd": prices.REQUEST_USD},
        "models": [],
    }
    for spec in config.models:
        results["models"].append(bench_model(spec, package_dir=package_dir, images=images, config=config))
    config.log("package sizes ...")
    results["packages"] = package_sizes(("x86_64", *(a for a in config.package_arches if a != "x86_64")), config)
    results["load_average_at_end"] = list(os.getloadavg())
    results["seconds"] = round(time.time() - started, 1)
    return results
