"""``./deploy.sh`` (python -m deployer): build, upload, lint, deploy via change sets, smoke-test, or tear down.

Targets: ``--local`` = the embedded local AWS (localaws: moto + local Lambda runtime + API Gateway front);
``--region``/``--profile`` or AWS credentials in the environment = real AWS; neither = local, said loudly.

Environment variables:
  AWS_PROFILE, AWS_REGION / AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID ...   real-AWS target and credentials
  DEPLOY_STACK_NAME     default for --stack-name (serverless-detection)
  DEPLOY_BUCKET         default for --bucket
  MODEL_BUNDLE          default for --bundle (a bundle folder or s3:// prefix)
  LOCALAWS_HOME         where the local AWS keeps its state and logs (.cache/localaws)

Models: the demo detector shipped in models/demo (no PyTorch needed), --bundle DIR|s3://..., or one made on the
spot in the PyTorch environment (.venv, installed by ./setup.sh dev on first use, several GB): --export ARCH
(published weights) or --train-demo (train.demo.DEMO_RECIPE again, about 10 minutes on 2 cores).

Accelerator backends (--backend gpu|inferentia): the SageMaker model.tar.gz is built from the bundle
(lambda_build.sagemaker) and uploaded to <ModelS3Uri><backend>/model.tar.gz; infra/*.yaml go to the bucket
and the stack gets TemplatesS3Bucket/TemplatesS3KeyPrefix. With --local the nested stack's SageMaker Model,
EndpointConfig, Endpoint and autoscaling are records only (no endpoint runs), so the smoke test is skipped.

Example:
    >>> parse_args(["--local", "--parameter", "MemorySize=3008"]).parameter
    ['MemorySize=3008']
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from detection.annotate import draw_detections
from detection.bundle import read_bundle
from detection.errors import BundleError
from detection.postprocess import Detection
from export.errors import UploadError
from export.upload import upload_bundle
from lambda_build.build import build_package
from lambda_build.sagemaker import PackagingError, build_model_archive
from localaws import lifecycle
from train.demo_data import render_scene

from .stack import DeployError, delete, deploy, describe
from .switch import bundle_sha256, grant_parameters, rollback_parameters, stack_parameters, switch_parameters

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = REPO_ROOT / "template.yaml"
INFRA_TEMPLATES = sorted((REPO_ROOT / "infra").glob("*.yaml"))
KEY_PREFIX = "serverless-detection"
BACKENDS = ("lambda", "gpu", "inferentia")
# Instance families each accelerator backend accepts (the nested templates list the exact sizes).
INSTANCE_PREFIXES = {"gpu": ("ml.g4dn.", "ml.g5.", "ml.g6."), "inferentia": ("ml.inf2.",)}
DEFAULT_STACK = "serverless-detection"
DEMO_BUNDLE = REPO_ROOT / "models" / "demo"  # python -m deployer.demo --out models/demo
TORCH_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"  # ./setup.sh dev: export and train need PyTorch


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./deploy.sh", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Deploy the object-detection API (template.yaml) and send it one image.",
        epilog=__doc__.split("\n\n", 1)[1].split("\nExample:")[0])
    target = parser.add_argument_group("target")
    target.add_argument("--local", action="store_true", help="deploy to the embedded local AWS (no account needed)")
    target.add_argument("--region", help="real AWS region (implies a real-AWS deploy)")
    target.add_argument("--profile", help="AWS CLI profile (implies a real-AWS deploy)")
    parser.add_argument("--stack-name", default=os.environ.get("DEPLOY_STACK_NAME", DEFAULT_STACK),
                        help="CloudFormation stack name (default: %(default)s)")
    model = parser.add_argument_group("model (default: the demo detector shipped in models/demo)")
    model = model.add_mutually_exclusive_group()
    model.add_argument("--bundle", default=os.environ.get("MODEL_BUNDLE"),
                       help="model bundle folder (model.json, model.onnx, class map) or s3:// prefix")
    model.add_argument("--export", metavar="ARCH",
                       help="export ARCH with its published weights first (e.g. retinanet_resnet50_fpn_v2, dfine-s; "
                            "installs the PyTorch environment, several GB, on first use)")
    model.add_argument("--train-demo", action="store_true",
                       help="train the demo detector again from its recipe (about 10 minutes on 2 cores; installs "
                            "the PyTorch environment on first use) instead of using the shipped one")
    parser.add_argument("--bucket", default=os.environ.get("DEPLOY_BUCKET"),
                        help="S3 bucket for code, model and nested templates (default: "
                             "serverless-detection-<account>-<region>, created if missing)")
    parser.add_argument("--arch", choices=("x86_64", "arm64"), default="x86_64",
                        help="Lambda architecture (default: %(default)s); --local runs a zip built for this machine")
    parser.add_argument("--backend", choices=BACKENDS, default="lambda",
                        help="where inference runs: lambda (ONNX Runtime in the function) or a SageMaker endpoint "
                             "the function forwards to (default: %(default)s)")
    parser.add_argument("--accelerator-instance-type", default="", metavar="TYPE",
                        help="endpoint instance type for --backend gpu (ml.g4dn.*, ml.g5.*, ml.g6.*; default "
                             "ml.g4dn.xlarge) or inferentia (ml.inf2.*; default ml.inf2.xlarge)")
    parser.add_argument("--sagemaker-wheels", default=None, metavar="download|none|DIR",
                        help="wheels vendored into model.tar.gz (the endpoint has no network): 'download' (default "
                             "on AWS), a folder of wheels, or 'none' (default with --local: records only)")
    parser.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE",
                        help="extra template parameter, repeatable (e.g. MemorySize=3008, AuthMode=IAM)")
    parser.add_argument("--image", type=Path, help="image for the smoke test (default: a generated demo scene)")
    parser.add_argument("--no-smoke", action="store_true", help="skip sending an image after deploying")
    parser.add_argument("--no-lint", action="store_true", help="skip cfn-lint")
    parser.add_argument("--rollback", action="store_true",
                        help="serve the bundle the stack served before (PreviousModelS3Uri) again; nothing is "
                             "rebuilt or uploaded, and requests keep succeeding during the switch")
    parser.add_argument("--delete", action="store_true",
                        help="delete the stack (with --local also stop the local AWS, leaving no process)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds to wait for the stack (default 1800; 3600 with an accelerator backend)")
    return parser.parse_args(argv)


def say(message: str) -> None:
    print(message, flush=True)


def banner(message: str) -> None:
    line = "=" * 78
    print(f"{line}\n{message}\n{line}", flush=True)


# --- target ---------------------------------------------------------------------------------------------

def has_aws_credentials(*, profile: str | None) -> bool:
    import boto3
    import botocore.exceptions

    try:
        return boto3.session.Session(profile_name=profile).get_credentials() is not None
    except botocore.exceptions.ProfileNotFound:
        return False


def choose_target(args: argparse.Namespace) -> str:
    """'local' or 'aws'; an explicit --region/--profile with --local is a usage error."""
    if args.local:
        if args.region or args.profile:
            raise DeployError("--local cannot be combined with --region/--profile")
        return "local"
    if args.region or args.profile:
        if not has_aws_credentials(profile=args.profile):
            raise DeployError(f"no AWS credentials found{' for profile ' + args.profile if args.profile else ''}: "
                              "run `aws configure` (or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), or use --local")
        return "aws"
    if os.environ.get("AWS_ENDPOINT_URL"):
        raise DeployError("AWS_ENDPOINT_URL is set: pass --local for the embedded local AWS, or unset it "
                          "and pass --region for real AWS")
    return "aws" if has_aws_credentials(profile=None) else "local"


class Target:
    """boto3 clients for the chosen target plus how to reach its HTTP API."""

    def __init__(self, kind: str, *, region: str | None, profile: str | None):
        import boto3

        self.kind = kind
        self.local = None
        if kind == "local":
            self.local = lifecycle.start()
            env = self.local.client_env()
            self.session = boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                                 aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                                                 region_name=env["AWS_DEFAULT_REGION"])
            self.endpoint = self.local.endpoint
        else:
            self.session = boto3.session.Session(profile_name=profile, region_name=region)
            if not self.session.region_name:
                raise DeployError("no AWS region: pass --region (or set AWS_REGION / configure a profile region)")
            self.endpoint = None

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint)

    @property
    def region(self) -> str:
        return self.session.region_name

    def account_id(self) -> str:
        return self.client("sts").get_caller_identity()["Account"]

    def reachable_api_url(self, api_url: str) -> str:
        """The URL to call: the ApiUrl itself on AWS, the data plane's path for it on the local AWS."""
        if self.local is None:
            return api_url
        api_id = api_url.split("://", 1)[1].split(".", 1)[0]
        return self.local.api_url(api_id)


# --- artefacts ------------------------------------------------------------------------------------------

def build_zip(*, arch: str) -> Path:
    result = build_package(arch=arch, log=lambda message: say(f"  {message}"))
    say(f"  {result.summary()}")
    return Path(result.zip_path)


def resolve_bundle(args: argparse.Namespace) -> tuple[str, str]:
    """(folder or s3 prefix, how it was chosen): --bundle, --export, --train-demo or the shipped demo detector."""
    if args.bundle:
        if args.bundle.startswith("s3://"):
            return args.bundle.rstrip("/") + "/", "given (--bundle)"
        path = Path(args.bundle)
        if not (path / "model.json").is_file():
            raise DeployError(f"--bundle {args.bundle}: no model.json there; export one with `python -m export`")
        return str(path.resolve()), "given (--bundle)"
    if args.export:
        out = REPO_ROOT / ".cache" / "deploy" / "exported" / args.export
        if (out / "model.json").is_file():
            return str(out), f"{args.export} exported earlier by deploy.sh (delete {out} to export again)"
        say(f"  exporting {args.export} with its published weights (PyTorch environment)")
        run_in_torch_env(["-m", "export", "--arch", args.export, "--out", str(out)], doing=f"exporting {args.export}")
        return str(out), f"{args.export}, published weights, exported by deploy.sh"
    if args.train_demo:
        out = REPO_ROOT / ".cache" / "deploy" / "trained-demo"
        say("  training the demo detector from train.demo.DEMO_RECIPE (PyTorch environment; cached per recipe)")
        run_in_torch_env(["-m", "deployer.demo", "--out", str(out)], doing="training the demo detector")
        return str(out), "demo detector trained by deploy.sh --train-demo (not a COCO model)"
    if not (DEMO_BUNDLE / "model.json").is_file():
        raise DeployError(f"{DEMO_BUNDLE} is missing (a partial checkout?): restore it with git, or pass --bundle, "
                          "--export ARCH or --train-demo")
    return str(DEMO_BUNDLE), "the demo detector shipped in models/demo (4 product classes, not a COCO model)"


def run_in_torch_env(arguments: list[str], *, doing: str) -> None:
    """Run ``python ARGUMENTS`` in the PyTorch environment (.venv), installing it first (./setup.sh dev)."""
    setup = subprocess.run([str(REPO_ROOT / "setup.sh"), "dev"], cwd=REPO_ROOT)
    if setup.returncode != 0:
        raise DeployError("./setup.sh dev failed (see above): fix that, or pass --bundle DIR")
    result = subprocess.run([str(TORCH_PYTHON), *arguments], cwd=REPO_ROOT)
    if result.returncode != 0:
        raise DeployError(f"{doing} failed (exit status {result.returncode}, see above); pass --bundle DIR to "
                          "deploy a bundle you have")


def sha12(path: Path) -> str:
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def ensure_bucket(s3: Any, *, bucket: str, region: str, create: bool) -> None:
    import botocore.exceptions

    try:
        s3.head_bucket(Bucket=bucket)
        return
    except botocore.exceptions.ClientError as error:
        code = error.response["Error"]["Code"]
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise DeployError(f"bucket {bucket}: {code} (is it someone else's? pass --bucket)") from error
    if not create:
        raise DeployError(f"bucket {bucket} does not exist: create it or drop --bucket to use the default")
    say(f"  creating bucket s3://{bucket}")
    kwargs = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, **kwargs)


def upload_file(s3: Any, *, path: Path, bucket: str, key: str) -> None:
    s3.upload_file(str(path), bucket, key)


def upload_model(s3: Any, *, bundle_dir: Path, bucket: str) -> str:
    """The bundle through ``export.upload`` (checksums verified, ``latest.json`` moved last): its version's URI,
    ``s3://bucket/serverless-detection/models/<name>/<sha12>/``."""
    try:
        return upload_bundle(read_bundle(bundle_dir), f"s3://{bucket}/{KEY_PREFIX}/models/", s3_client=s3,
                             progress=lambda message: say(f"  {message}"))
    except BundleError as error:
        raise DeployError(f"--bundle {bundle_dir}: {error.message}") from error
    except UploadError as error:
        raise DeployError(f"uploading the model bundle failed: {error.message}") from error


def lint(templates: list[Path]) -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    command = [str(cfn_lint) if cfn_lint.exists() else "cfn-lint", *map(str, templates)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
    if result.returncode not in (0, 4):  # 4 = warnings only
        raise DeployError(f"cfn-lint found errors (fix the template or pass --no-lint):\n{result.stdout}{result.stderr}")
    say(f"  cfn-lint: {len(templates)} template(s) clean" + (" (warnings above)" if result.returncode else ""))


def accelerator_parameters(*, backend: str, instance_type: str) -> dict[str, str]:
    """Template parameters for the backend; an instance type of the wrong family is a usage error.

    Example:
        >>> accelerator_parameters(backend="gpu", instance_type="ml.g5.xlarge")
        {'AcceleratorInstanceType': 'ml.g5.xlarge'}
        >>> accelerator_parameters(backend="inferentia", instance_type="")
        {}
    """
    if not instance_type:
        return {}
    if backend == "lambda":
        raise DeployError("--accelerator-instance-type needs --backend gpu or --backend inferentia")
    if not instance_type.startswith(INSTANCE_PREFIXES[backend]):
        raise DeployError(f"--accelerator-instance-type {instance_type} does not fit --backend {backend}: use "
                          f"{' / '.join(p + '*' for p in INSTANCE_PREFIXES[backend])}")
    return {"AcceleratorInstanceType": instance_type}


def wheels_choice(value: str | None, *, local: bool) -> str | Path | None:
    """build_model_archive's ``wheels``: 'download', a folder, or None (no vendored wheels).

    Example:
        >>> wheels_choice(None, local=True) is None, wheels_choice(None, local=False)
        (True, 'download')
    """
    if value is None:
        return None if local else "download"
    if value == "none":
        return None
    if value == "download":
        return value
    folder = Path(value)
    if not folder.is_dir():
        raise DeployError(f"--sagemaker-wheels {value}: not a folder (use download, none or a folder of wheels)")
    return folder


def build_sagemaker_archive(*, bundle_dir: Path, backend: str, wheels: str | Path | None) -> Path:
    """The SageMaker model.tar.gz for the bundle (model, manifest, our entry point and the detection code)."""
    out = REPO_ROOT / ".cache" / "deploy" / "sagemaker" / f"{bundle_dir.name}-{sha12(bundle_dir)}" / backend / \
        "model.tar.gz"
    try:
        return build_model_archive(bundle_dir, backend, out, wheels=wheels)
    except PackagingError as error:
        raise DeployError(f"building the {backend} model.tar.gz failed: {error}") from error


def parse_parameters(pairs: list[str]) -> dict[str, str]:
    """``["A=1", "B=x=y"]`` -> ``{"A": "1", "B": "x=y"}``."""
    parameters = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DeployError(f"--parameter {pair!r}: use KEY=VALUE")
        parameters[key] = value
    return parameters


# --- first detection ------------------------------------------------------------------------------------

FIRST_DETECTION_DIR = REPO_ROOT / ".cache" / "deploy" / "first-detection"
# A generated scene (train.demo_data) in which the shipped demo detector finds several objects.
DEMO_SCENE = {"seed": 152, "width": 480, "height": 360, "max_objects": 6}


def demo_scene_jpeg() -> bytes:
    """The demo scene (objects of the demo detector's four classes on clutter), as JPEG."""
    image, _ = render_scene(np.random.default_rng(DEMO_SCENE["seed"]), width=DEMO_SCENE["width"],
                            height=DEMO_SCENE["height"], max_objects=DEMO_SCENE["max_objects"])
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def post_image(url: str, image: bytes, *, timeout_s: float = 60) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=image, method="POST", headers={"content-type": "image/jpeg"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            return reply.status, json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as error:
        body = error.read()
        try:
            return error.code, json.loads(body)
        except ValueError:
            return error.code, {"raw": body.decode(errors="replace")[:500]}


def detection_table(detections: list[dict]) -> list[str]:
    """The detections as aligned text rows, best first (boxes in image pixels).

    Example:
        >>> for row in detection_table([{"label": "orange", "score": 0.912, "box": [10.2, 20, 60.7, 70]}]):
        ...     print(row)
        label              score  box (x1, y1, x2, y2)
        orange              0.91  [10, 20, 61, 70]
    """
    rows = [f"{'label':<18} {'score':>5}  box (x1, y1, x2, y2)"]
    for detection in sorted(detections, key=lambda d: -d.get("score", 0)):
        box = ", ".join(f"{v:.0f}" for v in detection.get("box", []))
        rows.append(f"{detection.get('label')!s:<18} {detection.get('score', 0):>5.2f}  [{box}]")
    return rows


def draw_first_detection(image: bytes, detections: list[dict], path: Path) -> Path:
    """Save ``image`` with the deployment's detections drawn at full size (the Lambda's own drawing code).

    The API's ``annotate=true`` image is drawn at the decoder's reduced size (JPEG draft: about the model's input),
    too small to look at, so the boxes the deployment returned are drawn here on the image that was sent.
    """
    with Image.open(io.BytesIO(image)) as opened:
        array = np.asarray(opened.convert("RGB"))
    found = [Detection(label=d["label"], class_id=d["class_id"], score=d["score"], box=tuple(d["box"]))
             for d in detections]
    Image.fromarray(draw_detections(array, found, original_size=(array.shape[1], array.shape[0]))).save(
        path, format="JPEG", quality=92)
    return path


def show_first_detection(body: dict) -> None:
    """Print the model and the detections as a table."""
    detections = body.get("detections", [])
    model, timings = body.get("model", {}), body.get("timings_ms", {})
    say(f"  model: {model.get('name', '?')}; {len(detections)} detection(s); Lambda timings: "
        f"{timings.get('total', '?')} ms total, {timings.get('inference', '?')} ms inference")
    for row in detection_table(detections):
        say(f"    {row}")


def try_it_lines(*, url: str, function_name: str, image_path: Path, local: bool) -> list[str]:
    """Copy-paste commands that call the deployment again: curl on the HTTP API, aws lambda invoke on the function.

    The invoke reads its payload with ``fileb://`` (raw bytes in AWS CLI v1 and v2 alike; an inline JSON payload
    needs ``--cli-binary-format raw-in-base64-out`` on v2, which v1 rejects).
    """
    image = shlex.quote(str(image_path))
    lines = [f"curl -s --data-binary @{image} -H 'content-type: image/jpeg' '{url}/detect'"]
    if local:
        lines.append(f'eval "$({shlex.quote(sys.executable)} -m localaws env)"   # point the aws CLI / boto3 at the '
                     "local AWS")
    lines.append(f"printf '{{\"image\": \"%s\"}}' \"$(base64 -w0 {image})\" > payload.json && "
                 f"aws lambda invoke --function-name {function_name} --payload fileb://payload.json out.json "
                 "&& cat out.json")
    return lines


# --- main -----------------------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    kind = choose_target(args)
    if kind == "local" and not args.local:
        banner("No AWS target and no AWS credentials found: deploying to the LOCAL AWS emulation\n"
               "(moto + local Lambda runtime on 127.0.0.1). For real AWS pass --region/--profile or\n"
               "configure credentials; to silence this, pass --local.")
    if args.delete:
        return run_delete(args, kind)
    if args.rollback:
        return run_rollback(args, kind)
    say(f"[1/6] target: {'local AWS (offline)' if kind == 'local' else 'AWS'}")
    target = Target(kind, region=args.region, profile=args.profile)
    if target.local is not None:
        say(f"  local AWS: {target.local.endpoint} (HTTP APIs on {target.local.api_endpoint}, "
            f"log {target.local.log_file})")
    region = target.region
    accelerated = args.backend != "lambda"
    parameters = {**accelerator_parameters(backend=args.backend, instance_type=args.accelerator_instance_type),
                  **parse_parameters(args.parameter)}
    wheels = wheels_choice(args.sagemaker_wheels, local=kind == "local") if accelerated else None

    say("[2/6] building the Lambda package")
    zip_path = build_zip(arch=args.arch)  # the zip AWS runs, locally too (under lambda_python)
    bundle, bundle_source = resolve_bundle(args)
    say(f"  model bundle: {bundle} ({bundle_source})")

    if not args.no_lint:
        say("[3/6] linting templates")
        lint([TEMPLATE, *INFRA_TEMPLATES])
    else:
        say("[3/6] lint skipped (--no-lint)")

    say("[4/6] uploading code, model and nested templates")
    s3 = target.client("s3")
    bucket = args.bucket or f"{KEY_PREFIX}-{target.account_id()}-{region}"
    ensure_bucket(s3, bucket=bucket, region=region, create=args.bucket is None)
    code_key = f"{KEY_PREFIX}/code/{zip_path.stem}-{sha12(zip_path)}.zip"
    upload_file(s3, path=zip_path, bucket=bucket, key=code_key)
    say(f"  code:  s3://{bucket}/{code_key}")
    if bundle.startswith("s3://"):
        model_uri = bundle
        if accelerated:
            say(f"  model bundle is on S3: expecting its SageMaker artefact at {model_uri}{args.backend}/model.tar.gz "
                f"(python -m lambda_build.sagemaker --target {args.backend})")
    else:
        bundle_dir = Path(bundle)
        model_uri = upload_model(s3, bundle_dir=bundle_dir, bucket=bucket)
        if accelerated:
            archive = build_sagemaker_archive(bundle_dir=bundle_dir, backend=args.backend, wheels=wheels)
            model_key = model_uri.removeprefix(f"s3://{bucket}/")
            upload_file(s3, path=archive, bucket=bucket, key=f"{model_key}{args.backend}/model.tar.gz")
            say(f"  {args.backend} artefact: {model_uri}{args.backend}/model.tar.gz "
                f"({archive.stat().st_size / 1e6:.1f} MB, wheels: {wheels or 'none'})")
    say(f"  model: {model_uri}")
    templates_prefix = f"{KEY_PREFIX}/templates/{sha12(REPO_ROOT / 'infra')}/"
    for path in INFRA_TEMPLATES:
        upload_file(s3, path=path, bucket=bucket, key=f"{templates_prefix}infra/{path.name}")

    say(f"[5/6] deploying stack {args.stack_name} (change set)")
    cfn = target.client("cloudformation")
    served = stack_parameters(describe(cfn, args.stack_name))
    parameters = {**switch_parameters(served, model_uri), **parameters}
    template_parameters = {"ModelS3Uri": model_uri, "CodeS3Bucket": bucket, "CodeS3Key": code_key,
                           "Backend": args.backend, "Architecture": args.arch, "TemplatesS3Bucket": bucket,
                           "TemplatesS3KeyPrefix": templates_prefix, **parameters}
    timeout_s = args.timeout or (3600 if accelerated else 1800)
    grant = grant_parameters(served, model_uri)
    if grant:
        say(f"  switching the served model: {served['ModelS3Uri']} -> {model_uri} (the old one stays readable; "
            f"./deploy.sh --rollback returns to it)\n  step 1 of 2: the function may read the new bundle before "
            f"it serves it (IAM changes take seconds to reach every environment)")
        deploy(cfn, stack_name=args.stack_name, template_body=TEMPLATE.read_text(),
               parameters={**template_parameters, **grant}, say=say, timeout_s=timeout_s,
               poll_s=1 if kind == "local" else 5)
        say("  step 2 of 2: serve the new bundle")
    result = deploy(cfn, stack_name=args.stack_name,
                    template_body=TEMPLATE.read_text(), parameters=template_parameters, say=say,
                    timeout_s=timeout_s, poll_s=1 if kind == "local" else 5)
    api_url = result.outputs.get("ApiUrl")
    if not api_url:
        raise DeployError(f"stack {args.stack_name} has no ApiUrl output (outputs: {result.outputs})")
    url = target.reachable_api_url(api_url)
    say(f"  ApiUrl: {url}" + (f"   (on AWS this would be {api_url})" if target.local else ""))
    say(f"  FunctionName: {result.outputs.get('FunctionName')}")
    if accelerated:
        say(f"  EndpointName: {result.outputs.get('EndpointName')}")

    try_image = args.image.resolve() if args.image else Path("photo.jpg")
    if args.no_smoke:
        say("[6/6] smoke test skipped (--no-smoke)")
    elif accelerated and target.local is not None:
        say(f"[6/6] smoke test skipped: the local AWS keeps the {args.backend} endpoint as records only (no endpoint "
            f"runs offline); deploy to AWS to call it")
    else:
        FIRST_DETECTION_DIR.mkdir(parents=True, exist_ok=True)
        if not args.image:
            try_image = FIRST_DETECTION_DIR / "demo-scene.jpg"
            try_image.write_bytes(demo_scene_jpeg())
        say(f"[6/6] POST {url}/detect with {try_image}")
        image = try_image.read_bytes()
        status, body = post_image(f"{url}/detect", image)
        if status != 200:
            raise DeployError(f"POST {url}/detect answered {status}: {json.dumps(body)[:500]}")
        show_first_detection(body)
        check_served_model(body, want=bundle_sha256(s3, model_uri))
        annotated = draw_first_detection(image, body.get("detections", []), FIRST_DETECTION_DIR / "annotated.jpg")
        say(f"  annotated image: {annotated}")
    if accelerated and target.local is not None:
        say(f"done in {time.monotonic() - started:.0f} s (records only: stack, nested {args.backend} stack and "
            f"SageMaker endpoint records are in the local AWS; no endpoint serves requests)")
    else:
        say(f"done in {time.monotonic() - started:.0f} s. Try it yourself:")
        for line in try_it_lines(url=url, function_name=result.outputs.get("FunctionName", "<FunctionName>"),
                                 image_path=try_image,
                                 local=target.local is not None):
            say(f"  {line}")
    if target.local is not None:
        say("  (the local AWS keeps running; stop it with ./deploy.sh --local --delete)")
    return 0


def check_served_model(body: dict, *, want: str | None) -> None:
    """The API answered with the bundle just deployed (``model.sha256``), else the switch did not happen."""
    got = body.get("model", {}).get("sha256")
    say(f"  served by model sha256 {str(got)[:12]}")
    if want and got != want:
        raise DeployError(f"the API answers with model sha256 {str(got)[:12]}, not the deployed bundle's "
                          f"{want[:12]}: the function did not switch (check the stack events)")


def run_rollback(args: argparse.Namespace, kind: str) -> int:
    """Serve PreviousModelS3Uri again with the stack's own template and every other parameter unchanged."""
    started = time.monotonic()
    target = Target(kind, region=args.region, profile=args.profile)
    cfn = target.client("cloudformation")
    stack = describe(cfn, args.stack_name)
    parameters = rollback_parameters(stack_parameters(stack))
    say(f"rolling {args.stack_name} back: {parameters['PreviousModelS3Uri']} -> {parameters['ModelS3Uri']}")
    want = bundle_sha256(target.client("s3"), parameters["ModelS3Uri"])
    template = cfn.get_template(StackName=args.stack_name)["TemplateBody"]
    result = deploy(cfn, stack_name=args.stack_name, parameters=parameters, say=say, poll_s=1 if kind == "local" else 5,
                    template_body=template if isinstance(template, str) else json.dumps(template),
                    timeout_s=args.timeout or 1800)
    if not args.no_smoke and parameters.get("Backend", "lambda") == "lambda":
        url = target.reachable_api_url(result.outputs["ApiUrl"])
        image = args.image.read_bytes() if args.image else demo_scene_jpeg()
        status, body = post_image(f"{url}/detect", image)
        if status != 200:
            raise DeployError(f"POST {url}/detect answered {status} after the rollback: {json.dumps(body)[:500]}")
        check_served_model(body, want=want)
    say(f"rolled back in {time.monotonic() - started:.0f} s: serving {parameters['ModelS3Uri']} "
        f"(model sha256 {str(want)[:12]}); ./deploy.sh --rollback again returns to {parameters['PreviousModelS3Uri']}")
    return 0


def run_delete(args: argparse.Namespace, kind: str) -> int:
    if kind == "local":
        info = lifecycle.status()
        if info is None:
            stopped = lifecycle.stop()  # a state file whose server no longer answers: end its processes anyway
            say("local AWS was not answering; its processes are stopped" if stopped
                else "local AWS is not running: nothing to delete")
            return 0
        target = Target("local", region=None, profile=None)
        deleted = delete(target.client("cloudformation"), stack_name=args.stack_name, say=say, poll_s=0.5)
        say(f"stack {args.stack_name} {'deleted' if deleted else 'did not exist'}")
        lifecycle.stop(info=info)
        say("local AWS stopped (no process left)")
        return 0
    target = Target(kind, region=args.region, profile=args.profile)
    deleted = delete(target.client("cloudformation"), stack_name=args.stack_name, say=say)
    say(f"stack {args.stack_name} {'deleted' if deleted else 'did not exist'}; "
        f"the artefact bucket is kept (empty and delete it yourself if you want)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except DeployError as error:
        print(f"deploy.sh: error: {error}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("deploy.sh: interrupted", file=sys.stderr)
        return 130
