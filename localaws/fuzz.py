"""Property-based fuzzing of a running detection HTTP API from its OpenAPI description (docs/openapi.yaml).

Schemathesis turns the description into Hypothesis strategies: valid-looking requests (positive) and requests
that break the schema (negative: wrong types, unknown option keys, garbage bodies of either media type). The
cases are generated first, then sent by ``--workers`` threads. Every reply is checked: it must come back (no
reset, no timeout), must not be a 5xx (the caller cannot cause our faults), and its status and body must be
ones the description lists. Prints the counts as one JSON line; exits 1 if anything failed.

    python -m localaws.fuzz --url http://127.0.0.1:4567/<api-id> --cases 10000

Example:
    >>> FuzzReport(cases=3, statuses=Counter({400: 2, 415: 1})).summary()["failures"]
    0
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

SPEC_PATH = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"


@dataclass
class FuzzReport:
    cases: int = 0
    statuses: Counter = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    off_spec: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failures(self) -> int:
        return len(self.server_errors) + len(self.dropped) + len(self.off_spec)

    def summary(self) -> dict:
        return {"cases": self.cases, "failures": self.failures, "server_errors": len(self.server_errors),
                "dropped": len(self.dropped), "off_spec": len(self.off_spec),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())}, "seconds": round(self.seconds, 1),
                "first_failures": (self.server_errors + self.dropped + self.off_spec)[:5]}


def generate_cases(count: int, *, seed: int = 0, spec_path: Path = SPEC_PATH) -> list:
    """``count`` Schemathesis cases for POST /detect, positive and negative, both media types."""
    import hypothesis
    import schemathesis
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    operation = schemathesis.openapi.from_path(spec_path)["/detect"]["POST"]
    strategy = st.one_of(*(operation.as_strategy(generation_mode=mode, media_type=media)
                           for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                           for media in ("application/json", "image/*")))
    cases: list = []

    @hypothesis.settings(max_examples=count, deadline=None, database=None, derandomize=False,
                         suppress_health_check=list(hypothesis.HealthCheck), phases=[hypothesis.Phase.generate])
    @hypothesis.seed(seed)
    @hypothesis.given(strategy)
    def collect(case):
        cases.append(case)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while len(cases) < count:  # Hypothesis may stop a run early when it thinks it has seen enough
            before = len(cases)
            collect()
            if len(cases) == before:
                break
    return cases[:count]


def _send(case, base_url: str, timeout: float) -> tuple[int | None, str, bytes, str]:
    try:
        response = case.call(base_url=base_url, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - any failure to get a reply is what we count
        return None, "", b"", f"{type(exc).__name__}: {str(exc)[:200]}"
    content_type = response.headers.get("content-type") or ""
    if isinstance(content_type, list):  # Schemathesis' responses keep every value of a header
        content_type = content_type[0] if content_type else ""
    return response.status_code, content_type, response.content, ""


def run_fuzz(base_url: str, *, cases: int, seed: int = 0, workers: int = 8, timeout: float = 60.0,
             check: Callable[[int, str, bytes], str | None] | None = None) -> FuzzReport:
    """Generate ``cases`` and send them; ``check(status, content_type, body)`` returns why a reply is off-spec."""
    check = check or spec_checker()
    report = FuzzReport()
    start = time.perf_counter()
    generated = generate_cases(cases, seed=seed)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for case, (status, content_type, body, failure) in zip(
                generated, pool.map(lambda c: _send(c, base_url, timeout), generated)):
            report.cases += 1
            label = f"{case.media_type or '-'} {str(case.body)[:80]!r} query={case.query}"
            if status is None:
                report.statuses["no reply"] += 1
                report.dropped.append(f"{failure} for {label}")
                continue
            report.statuses[status] += 1
            if status >= 500:
                report.server_errors.append(f"{status} {body[:200]!r} for {label}")
            problem = check(status, content_type, body)
            if problem:
                report.off_spec.append(f"{problem} for {label}")
    report.seconds = time.perf_counter() - start
    return report


def spec_checker(spec_path: Path = SPEC_PATH) -> Callable[[int, str, bytes], str | None]:
    """Checks a reply against the description's responses for POST /detect (JSON Schema 2020-12)."""
    import jsonschema
    import yaml

    spec = yaml.safe_load(spec_path.read_text())
    responses = spec["paths"]["/detect"]["post"]["responses"]

    def check(status: int, content_type: str, body: bytes) -> str | None:
        response = responses.get(str(status))
        if response is None:
            return f"status {status} is not in the description"
        media = content_type.split(";")[0].strip().lower()
        if media not in response.get("content", {}):
            return f"{status} with content type {media!r} is not in the description"
        try:
            document = json.loads(body)
        except ValueError:
            return f"{status} body is not JSON"
        schema = {"components": spec["components"], **response["content"][media]["schema"]}
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(document))
        return None if error is None else f"{status} body off the description: {error.message[:200]}"

    return check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localaws.fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="the API's base URL (POST {url}/detect is fuzzed)")
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args(argv)
    if args.cases < 1:
        parser.error("--cases must be at least 1")
    report = run_fuzz(args.url.rstrip("/"), cases=args.cases, seed=args.seed, workers=args.workers)
    print(json.dumps(report.summary()))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
