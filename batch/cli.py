"""``python -m batch s3://BUCKET/PREFIX/`` runs detection over every image under PREFIX with the deployed
stack's batch state machine (Step Functions Distributed Map), shows progress, prints the counts and writes
one COCO detections file.

    python -m batch s3://photos-in/images/2026/ --stack-name serverless-detection [--local | --region R]
    python -m batch s3://photos-in/images/2026/ --resume            # skip images that have a result
    python -m batch s3://photos-in/images/2026/ --threshold 0.3 --classes person,car --coco run.json
    python -m batch --redrive <execution ARN> [--region R]          # AWS: rerun the failed children

Results land where the stack puts them: s3://<InputBucketName>/<OutputPrefix><key under InputPrefix>.json;
an ``OUT`` argument is only checked against that. ``python -m train.evaluate --detections FILE --data GT``
scores the COCO file against ground truth. Exit status: 0 when the run succeeded, 1 when it failed (counts
and the COCO file of what succeeded are still written), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from detection.s3jobs import Layout
from detection.store import split_s3_uri
from localaws import lifecycle

from .results import RunCounts, coco_detections, fetch_results, read_run

DEFAULT_STACK = "serverless-detection"


class BatchError(RuntimeError):
    """A usage or deployment problem; the message says what to do."""


def parse_s3_prefix(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b/`` -> ``("bucket", "a/b/")``.

    Example:
        >>> parse_s3_prefix("s3://photos-in/images/2026/")
        ('photos-in', 'images/2026/')
    """
    try:
        return split_s3_uri(uri)
    except ValueError:
        raise BatchError(f"{uri!r} is not an s3://bucket/prefix/ URI") from None


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m batch", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("source", nargs="?", help="s3://BUCKET/PREFIX/ under the stack's InputPrefix")
    parser.add_argument("out", nargs="?", help="s3://BUCKET/PREFIX/ where results go (checked, optional)")
    parser.add_argument("--stack-name", default=DEFAULT_STACK)
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--local", action="store_true", help="the stack on the local AWS (python -m localaws)")
    target.add_argument("--region")
    parser.add_argument("--profile")
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--classes", help="comma-separated class names to keep")
    parser.add_argument("--max-detections", type=int)
    parser.add_argument("--resume", action="store_true", help="skip images whose result object exists")
    parser.add_argument("--redrive", metavar="EXECUTION_ARN", help="redrive a failed run's failed children (AWS)")
    parser.add_argument("--coco", type=Path, help="merged COCO detections file (default: ./detections-<run>.json)")
    parser.add_argument("--poll", type=float, default=2.0, help="seconds between progress lines")
    parser.add_argument("--no-wait", action="store_true", help="start the run and print its ARN only")
    args = parser.parse_args(argv)
    if bool(args.source) == bool(args.redrive):
        parser.error("give s3://BUCKET/PREFIX/ to start a run, or --redrive EXECUTION_ARN")
    return args


def session_and_endpoint(args: argparse.Namespace) -> tuple[Any, str | None]:
    import boto3

    if args.local:
        info = lifecycle.status()
        if info is None:
            raise BatchError("the local AWS is not running: deploy first with ./deploy.sh --local --parameter "
                             "InputBucketName=<bucket>")
        env = info.client_env()
        return boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                     aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                                     region_name=env["AWS_DEFAULT_REGION"]), info.endpoint
    session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
    if not session.region_name:
        raise BatchError("no AWS region: pass --region (or --local for the local AWS)")
    return session, None


def stack_outputs(cfn: Any, stack_name: str) -> dict[str, str]:
    try:
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    except cfn.exceptions.ClientError as error:
        raise BatchError(f"stack {stack_name}: {error.response['Error']['Message']}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}
    if "BatchStateMachineArn" not in outputs:
        raise BatchError(f"stack {stack_name} has no batch state machine: deploy it with "
                         f"--parameter InputBucketName=<bucket> (see README, Batch runs)")
    return outputs


def check_locations(args: argparse.Namespace, outputs: dict[str, str]) -> tuple[str, str, Layout]:
    bucket, prefix = parse_s3_prefix(args.source)
    layout = Layout(input_prefix=outputs["InputPrefix"], output_prefix=outputs["OutputPrefix"],
                    bucket=outputs["InputBucketName"])
    if bucket != layout.bucket or not prefix.startswith(layout.input_prefix):
        raise BatchError(f"this stack detects on s3://{layout.bucket}/{layout.input_prefix}... only; "
                         f"{args.source} is outside it")
    expected_out = f"s3://{layout.bucket}/{layout.output_prefix}{prefix[len(layout.input_prefix):]}"
    if args.out and args.out.rstrip("/") != expected_out.rstrip("/"):
        raise BatchError(f"results of {args.source} go to {expected_out} (the stack's OutputPrefix), not {args.out}")
    return bucket, prefix, layout


def count_objects(s3: Any, bucket: str, prefix: str) -> int:
    return sum(page.get("KeyCount", 0) for page in
               s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix))


def progress_line(counts: dict, *, total: int, elapsed_s: float) -> str:
    """``items done/total, failed, images/s, ETA`` from a Map Run's item counts.

    Example:
        >>> progress_line({"succeeded": 150, "failed": 50, "total": 200}, total=1000, elapsed_s=10)
        '  200/1000 items done, 50 in failed batches, 20.0 images/s, ETA 40 s'
    """
    done = counts.get("succeeded", 0) + counts.get("failed", 0) + counts.get("timedOut", 0) + counts.get("aborted", 0)
    total = max(total, counts.get("total", 0))
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    eta = f"{(total - done) / rate:.0f} s" if rate > 0 else "?"
    return (f"  {done}/{total} items done, {counts.get('failed', 0)} in failed batches, {rate:.1f} images/s, "
            f"ETA {eta}")


def wait_for(sfn: Any, execution_arn: str, *, total: int, poll_s: float, say: Callable[[str], None]) -> dict:
    started = time.monotonic()
    last = None
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        runs = sfn.list_map_runs(executionArn=execution_arn).get("mapRuns", [])
        if runs:
            counts = sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"])["itemCounts"]
            line = progress_line(counts, total=total, elapsed_s=time.monotonic() - started)
            if line != last:
                say(line)
                last = line
        if described["status"] != "RUNNING":
            described["map_run_arn"] = runs[0]["mapRunArn"] if runs else None
            described["seconds"] = time.monotonic() - started
            return described
        time.sleep(poll_s)


def manifest_key(layout: Layout, described: dict) -> str | None:
    try:
        return json.loads(described.get("output") or "{}")["ResultWriterDetails"]["Key"]
    except (KeyError, ValueError):
        pass
    if described.get("map_run_arn"):  # a failed run has no output; ResultWriter still wrote its files
        return f"{layout.output_prefix}_runs/{described['map_run_arn'].split(':')[-1]}/manifest.json"
    return None


def run(args: argparse.Namespace, say: Callable[[str], None] = print) -> int:
    session, endpoint = session_and_endpoint(args)
    client = lambda service: session.client(service, endpoint_url=endpoint)  # noqa: E731
    sfn = client("stepfunctions")
    if args.redrive:
        try:
            sfn.redrive_execution(executionArn=args.redrive)
        except Exception as error:  # noqa: BLE001 - the API's own message says why (not FAILED, not redrivable)
            raise BatchError(f"cannot redrive {args.redrive}: {error}; rerun the prefix with --resume instead") from None
        say(f"redriving {args.redrive}")
        return 0
    outputs = stack_outputs(client("cloudformation"), args.stack_name)
    bucket, prefix, layout = check_locations(args, outputs)
    s3 = client("s3")
    total = count_objects(s3, bucket, prefix)
    if total == 0:
        raise BatchError(f"nothing under {args.source}")
    options = {key: value for key, value in (("threshold", args.threshold), ("max_detections", args.max_detections),
                                             ("classes", args.classes.split(",") if args.classes else None))
               if value is not None}
    execution_input = {"Prefix": prefix, "Options": options, "SkipExisting": bool(args.resume)}
    name = f"batch-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    execution = sfn.start_execution(stateMachineArn=outputs["BatchStateMachineArn"], name=name,
                                    input=json.dumps(execution_input))["executionArn"]
    say(f"run {execution}: {total} objects under {args.source} -> s3://{bucket}/{layout.output_prefix}")
    if args.no_wait:
        return 0
    described = wait_for(sfn, execution, total=total, poll_s=args.poll, say=say)
    key = manifest_key(layout, described)
    counts = read_run(s3, bucket=bucket, manifest_key=key) if key else RunCounts()
    rate = counts.images_succeeded / described["seconds"] if described["seconds"] else 0.0
    say(f"run {described['status']} in {described['seconds']:.1f} s ({rate:.1f} images/s): {counts.describe()}")
    if described["status"] != "SUCCEEDED":
        say(f"  error: {described.get('error')}: {described.get('cause', '')[:300]}")
    results = fetch_results(s3, bucket=bucket, keys=counts.done_keys, result_key=layout.result_key)
    coco = coco_detections([(key[len(prefix):], result) for key, result in results], source=args.source)
    coco["info"]["execution"] = execution
    path = args.coco or Path(f"detections-{execution.rsplit(':', 1)[-1]}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(coco))
    say(f"COCO detections: {path} ({len(coco['images'])} images, {len(coco['annotations'])} detections); "
        f"score them with python -m train.evaluate --detections {path} --data <ground truth>")
    return 0 if described["status"] == "SUCCEEDED" else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except BatchError as error:
        print(f"python -m batch: error: {error}", file=sys.stderr)
        return 2
