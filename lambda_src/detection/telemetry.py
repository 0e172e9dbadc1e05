"""One log line per request: the fields operators filter on, plus CloudWatch Embedded Metric Format (EMF).

CloudWatch Logs turns the ``_aws`` block of a JSON log line into metrics (no agent, no API call, no
dependency): every name listed under ``Metrics`` is read from the same line's top-level number, every
dimension from its top-level string. One namespace, one dimension set (function, model name), so an
operator can compare models on the same function without the metric count growing with traffic.

Metrics (per request): ``Requests``, ``ClientErrors`` (4xx) and ``ServerErrors`` (5xx), ``ColdStart``
(1 on an environment's first request), ``Duration`` and one ``<Step>Time`` per ``timings_ms`` step
(decode, preprocess, inference, postprocess, total) in milliseconds, ``ImageMegapixels`` and ``Detections``
(successful requests only).

Example:
    >>> line = request_record(request_id="r-1", function_name="detect", cold_start=True,
    ...                       model={"name": "demo", "sha256": "ab" * 32}, event_kind="http_v2", status=200,
    ...                       duration_ms=12.5, image={"width": 2000, "height": 1000}, detections=3,
    ...                       timings_ms={"decode": 1.0, "inference": 9.0}, timestamp_ms=0)
    >>> line["_aws"]["CloudWatchMetrics"][0]["Dimensions"], line["FunctionName"], line["ModelName"]
    ([['FunctionName', 'ModelName']], 'detect', 'demo')
    >>> [(m["Name"], line[m["Name"]]) for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]][:5]
    [('Requests', 1), ('ClientErrors', 0), ('ServerErrors', 0), ('ColdStart', 1), ('Duration', 12.5)]
    >>> line["ImageMegapixels"], line["DecodeTime"], line["model_sha256"][:4], line["cold_start"]
    (2.0, 1.0, 'abab', True)
"""

from __future__ import annotations

import time
from typing import Any, Mapping

NAMESPACE = "ServerlessDetection"
DIMENSIONS = ("FunctionName", "ModelName")
UNKNOWN_MODEL = "unknown"  # the dimension value when no model answered (the bundle failed to load)

COUNT, MILLISECONDS, NONE = "Count", "Milliseconds", "None"


def step_metric(step: str) -> str:
    """``timings_ms`` key -> metric name.

    Example:
        >>> step_metric("postprocess")
        'PostprocessTime'
    """
    return f"{step.capitalize()}Time"


def request_metrics(*, status: int, cold_start: bool, duration_ms: float, image: Mapping[str, int] | None,
                    detections: int | None, timings_ms: Mapping[str, float] | None) -> list[tuple[str, str, float]]:
    """``(name, unit, value)`` for one request; the per-image metrics only when an image was answered.

    Example:
        >>> request_metrics(status=404, cold_start=False, duration_ms=3.0, image=None, detections=None,
        ...                 timings_ms=None)
        [('Requests', 'Count', 1), ('ClientErrors', 'Count', 1), ('ServerErrors', 'Count', 0), ('ColdStart', 'Count', 0), ('Duration', 'Milliseconds', 3.0)]
    """
    metrics = [
        ("Requests", COUNT, 1),
        ("ClientErrors", COUNT, int(400 <= status < 500)),
        ("ServerErrors", COUNT, int(status >= 500)),
        ("ColdStart", COUNT, int(cold_start)),
        ("Duration", MILLISECONDS, duration_ms),
    ]
    metrics += [(step_metric(step), MILLISECONDS, value) for step, value in (timings_ms or {}).items()]
    if image is not None:
        metrics.append(("ImageMegapixels", NONE, round(image["width"] * image["height"] / 1e6, 4)))
    if detections is not None:
        metrics.append(("Detections", COUNT, detections))
    return metrics


def emf_block(metrics: list[tuple[str, str, float]], *, timestamp_ms: int) -> dict:
    """The ``_aws`` member that makes CloudWatch read ``metrics`` from the line."""
    return {
        "Timestamp": timestamp_ms,
        "CloudWatchMetrics": [{
            "Namespace": NAMESPACE,
            "Dimensions": [list(DIMENSIONS)],
            "Metrics": [{"Name": name, "Unit": unit} for name, unit, _ in metrics],
        }],
    }


def request_record(*, request_id: str | None, function_name: str | None, cold_start: bool,
                   model: Mapping[str, Any] | None, event_kind: str | None, status: int, duration_ms: float,
                   error_code: str | None = None, error_message: str | None = None,
                   image: Mapping[str, int] | None = None, image_bytes: int | None = None,
                   detections: int | None = None, timings_ms: Mapping[str, float] | None = None,
                   trace: str | None = None, timestamp_ms: int | None = None) -> dict:
    """The request's log record: structured fields first, then the EMF block with its dimension and metric values.

    ``level`` follows the status (INFO, WARNING for 4xx, ERROR for 5xx); ``model`` is the response's ``model``
    object (name, sha256) or None when no model is loaded.
    """
    model_name = (model or {}).get("name") or UNKNOWN_MODEL
    record: dict[str, Any] = {
        "level": "INFO" if status < 400 else "WARNING" if status < 500 else "ERROR",
        "message": "detect",
        "request_id": request_id,
        "cold_start": cold_start,
        "function": function_name,
        "model_name": model_name,
        "model_sha256": (model or {}).get("sha256"),
        "event_kind": event_kind,
        "status": status,
        "duration_ms": duration_ms,
    }
    optional = {"error_code": error_code, "error_message": error_message, "image": image, "image_bytes": image_bytes,
                "detections": detections, "timings_ms": timings_ms, "trace": trace}
    record.update({key: value for key, value in optional.items() if value is not None})
    metrics = request_metrics(status=status, cold_start=cold_start, duration_ms=duration_ms, image=image,
                              detections=detections, timings_ms=timings_ms)
    stamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    record["_aws"] = emf_block(metrics, timestamp_ms=stamp)
    record.update(FunctionName=function_name or "local", ModelName=model_name)
    record.update({name: value for name, _, value in metrics})
    return record
