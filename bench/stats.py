"""Percentiles and ratios of timing samples.

Example:
    >>> summary([0.010, 0.012, 0.011, 0.013])["p50_ms"]
    11.5
"""

from __future__ import annotations

import numpy as np


def summary(seconds: list[float]) -> dict:
    """p50/p90/p99/mean/min in milliseconds over the samples (warm-up already excluded)."""
    if not seconds:
        return {"n": 0}
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {
        "n": int(ms.size),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p90_ms": round(float(np.percentile(ms, 90)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "mean_ms": round(float(ms.mean()), 2),
        "min_ms": round(float(ms.min()), 2),
    }


def ratio(numerator: dict, denominator: dict, key: str = "p50_ms") -> float | None:
    """``numerator[key] / denominator[key]``, None when either is missing."""
    a, b = numerator.get(key), denominator.get(key)
    if not a or not b:
        return None
    return round(a / b, 3)


def paired_ratio(numerator: list[float], denominator: list[float]) -> float | None:
    """Median of per-iteration ratios of interleaved samples: robust to load that drifts during the run."""
    pairs = [a / b for a, b in zip(numerator, denominator) if b > 0]
    return round(float(np.median(pairs)), 3) if pairs else None
