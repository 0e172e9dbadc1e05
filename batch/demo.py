"""The offline end-to-end batch run, as one command: ``python -m batch.demo [--bundle DIR] [--images 2000]``.

Real processes throughout: a fresh local AWS (``localaws``), the stack deployed by ``python -m deployer
--local`` with the batch state machine on an existing bucket, a generated prefix (``--scenes`` demo scenes
from ``train.demo_data``, cheap tiny images up to ``--images``, ``--corrupt`` corrupt JPEGs, one non-image)
and ``python -m batch`` over it, twice. Checked and reported (JSON): every scene's result object equals what
POST /detect answers for it; corrupt files are failures with their code; the second run rewrites identical
results; more than 1,000 objects are all processed (ItemReader pagination); throughput of the batch path
beside the HTTP path (the same images POSTed with as many requests in flight as the local pool runs).

    python -m batch.demo --images 2000 --report batch-demo.json      # the shipped demo detector
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from localaws import lifecycle
from train.demo_data import generate_dataset

from .cli import parse_args, run

REPO_ROOT = Path(__file__).resolve().parent.parent
BUCKET = "batch-demo-inputs"
STACK = "batch-demo"
RUN_PREFIX = "images/run/"
HTTP_CONCURRENCY = 4  # localaws.lambda_runtime.FunctionPool's environments per function


def tiny_jpeg(index: int, side: int) -> bytes:
    from PIL import Image

    colour = ((index * 37) % 256, (index * 91) % 256, (index * 53) % 256)
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), colour).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def make_prefix(folder: Path, *, images: int, scenes: int, corrupt: int, side: int) -> dict[str, bytes]:
    """key -> bytes: demo scenes, tiny images, corrupt JPEGs and one non-image (``images`` objects in all)."""
    generate_dataset(folder, num_images=scenes, seed=15)
    objects = {f"{RUN_PREFIX}scenes/{path.name}": path.read_bytes()
               for path in sorted((folder / "images").glob("*.jpg"))}
    for index in range(corrupt):
        objects[f"{RUN_PREFIX}corrupt-{index}.jpg"] = b"\xff\xd8\xff\xe0" + os.urandom(64)
    objects[f"{RUN_PREFIX}README.txt"] = b"not an image"
    for index in range(images - len(objects)):
        objects[f"{RUN_PREFIX}tiny/{index:05d}.jpg"] = tiny_jpeg(index, side)
    return objects


def deploy(bundle: Path, env: dict[str, str]) -> str:
    """Deploy the stack on the local AWS; returns its local API URL."""
    result = subprocess.run(
        [sys.executable, "-m", "deployer", "--local", "--stack-name", STACK, "--bundle", str(bundle),
         "--parameter", f"InputBucketName={BUCKET}", "--parameter", "CreateInputBucket=false",
         "--no-lint", "--no-smoke"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"deploy failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return re.search(r"ApiUrl: (\S+)", result.stdout).group(1)


def post_detect(api_url: str, data: bytes) -> dict:
    request = urllib.request.Request(f"{api_url}/detect", data=data, method="POST",
                                     headers={"content-type": "image/jpeg"})
    with urllib.request.urlopen(request, timeout=120) as reply:
        return json.loads(reply.read())


def comparable(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in ("timings_ms", "source")}


def http_rate(api_url: str, objects: dict[str, bytes], keys: list[str]) -> float:
    """Images/s of POST /detect over ``keys`` with the local pool's concurrency."""
    started = time.perf_counter()
    with ThreadPoolExecutor(HTTP_CONCURRENCY) as pool:
        list(pool.map(lambda key: post_detect(api_url, objects[key]), keys))
    return len(keys) / (time.perf_counter() - started)


def run_batch(argv: list[str]) -> tuple[int, list[str], float]:
    lines: list[str] = []
    started = time.perf_counter()
    code = run(parse_args(argv), say=lines.append)
    return code, lines, time.perf_counter() - started


def results_under(s3: Any, prefix: str) -> dict[str, dict]:
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
            for o in page.get("Contents", [])]
    with ThreadPoolExecutor(8) as pool:
        bodies = pool.map(lambda key: json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()), keys)
    return dict(zip(keys, bodies))


def run_demo(*, bundle: Path, images: int, scenes: int, corrupt: int, side: int, state_dir: Path,
             say=print) -> dict:
    import boto3

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["LOCALAWS_HOME"] = str(state_dir)
    os.environ["LOCALAWS_HOME"] = str(state_dir)  # python -m batch (in this process) finds the same local AWS
    report: dict[str, Any] = {"images": images, "scenes": scenes, "corrupt": corrupt, "tiny_side_px": side}
    try:
        say("deploying the stack on a fresh local AWS ...")
        api_url = deploy(bundle, env)
        info = lifecycle.status(state_dir=state_dir)
        session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                        region_name="us-east-1")
        s3 = session.client("s3", endpoint_url=info.endpoint)
        s3.create_bucket(Bucket=BUCKET)
        objects = make_prefix(state_dir / "scenes", images=images, scenes=scenes, corrupt=corrupt, side=side)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda item: s3.put_object(Bucket=BUCKET, Key=item[0], Body=item[1]), objects.items()))
        say(f"uploaded {len(objects)} objects to s3://{BUCKET}/{RUN_PREFIX}")
        argv = [f"s3://{BUCKET}/{RUN_PREFIX}", "--local", "--stack-name", STACK, "--poll", "1",
                "--coco", str(state_dir / "run1.coco.json")]
        code, lines, seconds = run_batch(argv)
        say("\n".join(lines))
        first = results_under(s3, "detections/run/")
        good = [key for key in objects if "/scenes/" in key or "/tiny/" in key]
        http_before = http_rate(api_url, objects, good[:200])  # bracket the warm batch run: the host's load moves
        code2, lines2, seconds2 = run_batch(argv[:-1] + [str(state_dir / "run2.coco.json")])
        http_after = http_rate(api_url, objects, good[:200])
        say(lines2[-2] if len(lines2) > 1 else "\n".join(lines2))
        second = results_under(s3, "detections/run/")
        scene_keys = [key for key in objects if "/scenes/" in key]
        mismatched = [key for key in scene_keys
                      if comparable(first[f"detections/{key[len('images/'):]}.json"]) != comparable(post_detect(api_url, objects[key]))]
        corrupt_results = {key: first.get(f"detections/{key[len('images/'):]}.json", {}).get("error", {}).get("code")
                           for key in objects if "corrupt-" in key}
        report.update({
            "first_run": {"exit": code, "seconds": round(seconds, 1), "summary": lines[-2] if len(lines) > 1 else lines,
                          "images_per_s": round(len(good) / seconds, 1)},
            "second_run": {"exit": code2, "seconds": round(seconds2, 1), "images_per_s": round(len(good) / seconds2, 1),
                           "identical_results": {k: comparable(v) for k, v in first.items()} ==
                           {k: comparable(v) for k, v in second.items()}},
            "results_written": len([k for k in first if k.endswith(".json")]),
            "good_images": len(good),
            "every_good_image_has_a_result": all(f"detections/{k[len('images/'):]}.json" in first for k in good),
            "scenes_equal_to_post_detect": len(scene_keys) - len(mismatched), "scene_mismatches": mismatched,
            "corrupt_codes": corrupt_results,
            "http_images_per_s": round((http_before + http_after) / 2, 1),
            "http_images_per_s_before_after": [round(http_before, 1), round(http_after, 1)],
            "http_sample": len(good[:200]),
            "coco": str(state_dir / "run1.coco.json"), "api_url": api_url,
        })
        # warm against warm: the first run includes the execution environments' cold starts
        for name, run_lines in (("first_run", lines), ("second_run", lines2)):
            rates = [re.search(r"SUCCEEDED in [\d.]+ s \(([\d.]+) images/s\)", line) for line in run_lines]
            report[name]["run_images_per_s"] = next((float(m.group(1)) for m in rates if m), None)
        # the warm run's own rate (start to SUCCEEDED; the CLI's COCO merge afterwards is a client step)
        report["batch_vs_http"] = round((report["second_run"]["run_images_per_s"] or 0) / report["http_images_per_s"], 2)
        return report
    finally:
        lifecycle.stop(state_dir=state_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m batch.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=REPO_ROOT / "models" / "demo",
                        help="model bundle folder (default: the shipped demo detector, models/demo)")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--scenes", type=int, default=20, help="demo scenes among the images (checked vs POST /detect)")
    parser.add_argument("--corrupt", type=int, default=5)
    parser.add_argument("--side", type=int, default=48, help="side of the tiny filler images (px)")
    parser.add_argument("--state-dir", type=Path, help="local AWS state (default: a temporary folder)")
    parser.add_argument("--report", type=Path, help="write the JSON report here")
    args = parser.parse_args(argv)
    if args.images < args.scenes + args.corrupt + 1:
        parser.error("--images must cover the scenes, the corrupt files and the non-image")
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="batch-demo-"))
    report = run_demo(bundle=args.bundle, images=args.images, scenes=args.scenes, corrupt=args.corrupt,
                      side=args.side, state_dir=state_dir)
    text = json.dumps(report, indent=2)
    print(text)
    if args.report:
        args.report.write_text(text)
    ok = (report["first_run"]["exit"] == 0 and report["second_run"]["identical_results"]
          and report["every_good_image_has_a_result"] and not report["scene_mismatches"]
          and set(report["corrupt_codes"].values()) == {"UnsupportedMediaType"})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
