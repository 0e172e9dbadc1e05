"""AWS Lambda's published price model, in one place (the only numbers here not measured by us).

Source: https://aws.amazon.com/lambda/pricing/ (US East (N. Virginia), on-demand, first pricing tier),
and https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html (vCPUs scale with memory:
one full vCPU at 1,769 MB, up to 6 at 10,240 MB). Checked 2026-11-21; check again before quoting.
Init code outside the handler is billed as duration too (the pricing page says so), so cold starts cost money
(not counted here: these are warm-invoke costs).

Example:
    >>> round(cost_per_million(duration_ms=250.0, memory_mb=2048, arch="arm64"), 2)
    6.87
"""

from __future__ import annotations

import math

from detection.settings import MB_PER_VCPU  # Lambda's CPU per memory: one home, where the function reads it

PRICES_AS_OF = "2026-11-21"
PRICES_SOURCE = "https://aws.amazon.com/lambda/pricing/ (us-east-1, on-demand, first tier)"
GB_SECOND_USD = {"x86_64": 0.0000166667, "arm64": 0.0000133334}
REQUEST_USD = 0.20 / 1_000_000
BILLING_GRANULARITY_MS = 1
MEMORY_SIZES_MB = (1024, 1769, 2048, 3008, 3538, 10240)


def vcpus(memory_mb: int) -> float:
    """vCPU share Lambda grants at ``memory_mb`` (proportional; 1 at 1,769 MB, capped at 6)."""
    return min(6.0, memory_mb / MB_PER_VCPU)


def billed_ms(duration_ms: float) -> int:
    return int(math.ceil(duration_ms / BILLING_GRANULARITY_MS) * BILLING_GRANULARITY_MS)


def cost_per_million(*, duration_ms: float, memory_mb: int, arch: str = "x86_64") -> float:
    """USD for one million invocations of ``duration_ms`` each at ``memory_mb`` (requests included)."""
    gb_seconds = memory_mb / 1024.0 * billed_ms(duration_ms) / 1000.0
    return 1_000_000 * (gb_seconds * GB_SECOND_USD[arch] + REQUEST_USD)


def duration_at(memory_mb: int, *, one_vcpu_ms: float, two_vcpu_ms: float) -> float:
    """Warm duration estimated from the two measured points (ORT with 1 and 2 threads).

    Below one vCPU the CPU share shrinks, so time grows as 1769 / memory; from one to two vCPUs we keep the
    1-thread time (a fractional second vCPU helps little); from two vCPUs up we keep the 2-thread time
    (more cores than the 2 measured here are not credited: conservative).
    """
    share = vcpus(memory_mb)
    if share < 1.0:
        return one_vcpu_ms / share
    if share < 2.0:
        return one_vcpu_ms
    return two_vcpu_ms


# ---------------------------------------------------------------- batch mode (Step Functions + S3) and the API

# https://aws.amazon.com/step-functions/pricing/ (us-east-1): Standard per state transition; Express per request
# and per GB-second of memory in 64 MB steps, billed per 1 ms with a 100 ms minimum (first 1,000 GB-hours).
# https://aws.amazon.com/s3/pricing/ (S3 Standard, us-east-1): GET; PUT/COPY/POST/LIST share one price.
# https://aws.amazon.com/api-gateway/pricing/ (HTTP APIs, first 300 million a month).
# Not re-read online in this session: quoted as published when checked; check again before quoting.
SFN_STANDARD_TRANSITION_USD = 0.025 / 1000
SFN_EXPRESS_REQUEST_USD = 1.00 / 1_000_000
SFN_EXPRESS_GB_SECOND_USD = 0.00001667
SFN_EXPRESS_MEMORY_STEP_MB = 64
SFN_EXPRESS_MIN_MS = 100
S3_GET_USD = 0.0004 / 1000
S3_PUT_LIST_USD = 0.005 / 1000
HTTP_API_REQUEST_USD = 1.00 / 1_000_000
S3_LIST_PAGE_KEYS = 1000


def lambda_usd(*, duration_ms: float, memory_mb: int, arch: str = "x86_64") -> float:
    """Compute only (GB-seconds) for one invocation of ``duration_ms``, without the request charge."""
    return memory_mb / 1024.0 * billed_ms(duration_ms) / 1000.0 * GB_SECOND_USD[arch]


def express_usd(*, duration_ms: float, memory_mb: int = SFN_EXPRESS_MEMORY_STEP_MB) -> float:
    """One Express execution (request + duration in 64 MB steps, 100 ms minimum)."""
    steps_mb = math.ceil(memory_mb / SFN_EXPRESS_MEMORY_STEP_MB) * SFN_EXPRESS_MEMORY_STEP_MB
    seconds = max(duration_ms, SFN_EXPRESS_MIN_MS) / 1000.0
    return SFN_EXPRESS_REQUEST_USD + steps_mb / 1024.0 * seconds * SFN_EXPRESS_GB_SECOND_USD


# ---------------------------------------------------------------- beyond on-demand Lambda (cost guide, README)
# Published us-east-1 list prices as last read from the pages named; not re-checked online on 2026-12-02 (this
# machine has no internet): check them before quoting.
OTHER_PRICES_SOURCE = ("https://aws.amazon.com/lambda/pricing/ (Provisioned Concurrency, SnapStart), "
                       "https://aws.amazon.com/sagemaker/pricing/ (real-time inference)")
# Provisioned concurrency: per GB-s kept provisioned, and the (lower) duration price while it serves.
PROVISIONED_GB_SECOND_USD = {"x86_64": 0.0000041667, "arm64": 0.0000033334}
PROVISIONED_DURATION_GB_SECOND_USD = {"x86_64": 0.0000097222, "arm64": 0.0000077778}
# SnapStart (Python): the cached snapshot per GB-s while the version is active (3 h minimum), and per GB restored.
SNAPSTART_CACHE_GB_SECOND_USD = 0.0000015046
SNAPSTART_RESTORE_GB_USD = 0.0001397998
# The gpu backend's default endpoint instance (infra/gpu.yaml), always on (real-time endpoints keep >= 1).
GPU_INSTANCE = "ml.g4dn.xlarge"
GPU_INSTANCE_USD_PER_HOUR = 0.7364


def break_even_images_per_hour(*, lambda_usd_per_million: float,
                               instance_usd_per_hour: float = GPU_INSTANCE_USD_PER_HOUR) -> float:
    """Traffic above which one always-on endpoint instance costs less than Lambda per image.

    Example:
        >>> round(break_even_images_per_hour(lambda_usd_per_million=7.364))
        100000
    """
    return instance_usd_per_hour / (lambda_usd_per_million / 1_000_000)
