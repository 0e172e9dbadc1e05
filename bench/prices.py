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

PRICES_AS_OF = "2026-11-21"
PRICES_SOURCE = "https://aws.amazon.com/lambda/pricing/ (us-east-1, on-demand, first tier)"
GB_SECOND_USD = {"x86_64": 0.0000166667, "arm64": 0.0000133334}
REQUEST_USD = 0.20 / 1_000_000
BILLING_GRANULARITY_MS = 1
MB_PER_VCPU = 1769
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
