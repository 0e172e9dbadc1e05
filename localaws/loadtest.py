"""Load and soak an HTTP detection API (the local one, or a deployed one): clients on keep-alive connections
sending a mix of good and bad bodies; every reply is checked against the status its body must get.

Prints requests, replies by status, errors (connection resets/timeouts, 5xx, or any status other than the one
expected for that body), p50/p99 latency, and the resident memory (RSS) of the serving processes (``--pid``
and their descendants, e.g. the local API and its function processes) before and after.

    python -m localaws.loadtest --url http://127.0.0.1:4567/<api-id>/detect --image photo.jpg \\
        --clients 32 --requests 50 --soak 2000 --pid <server pid>

Example:
    >>> [kind.name for kind in mixed_bodies(b"\\xff\\xd8jpeg")][:3]
    ['good', 'good', 'not-an-image']
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Body:
    name: str
    data: bytes
    content_type: str
    expect: int


def mixed_bodies(image: bytes) -> list[Body]:
    """One cycle of the mix: half good images, half bodies a careless or hostile caller sends."""
    good = Body("good", image, "image/jpeg", 200)
    return [
        good, good,
        Body("not-an-image", b"GIF89a this is not an image" * 8, "image/gif", 415),
        Body("broken-json", b'{"image": ', "application/json", 400),
        good,
        Body("unknown-option", json.dumps({"image": "aGk=", "treshold": 0.5}).encode(), "application/json", 400),
        Body("nested-json", b"[" * 50_000 + b"]" * 50_000, "application/json", 400),
        Body("empty", b"", "image/jpeg", 400),
    ]


@dataclass
class Report:
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    rss_before_mb: float | None = None
    rss_after_mb: float | None = None
    seconds: float = 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

    def summary(self) -> dict:
        growth = (None if self.rss_before_mb is None or self.rss_after_mb is None
                  else round(self.rss_after_mb - self.rss_before_mb, 1))
        return {"requests": self.requests, "errors": len(self.errors), "statuses": {str(k): v for k, v in sorted(self.statuses.items(), key=lambda kv: str(kv[0]))},
                "p50_ms": round(self.percentile(0.50), 1), "p99_ms": round(self.percentile(0.99), 1),
                "rss_before_mb": self.rss_before_mb, "rss_after_mb": self.rss_after_mb, "rss_growth_mb": growth,
                "seconds": round(self.seconds, 1), "first_errors": self.errors[:5]}


def process_tree_rss_mb(pids: list[int]) -> float | None:
    """Resident memory of ``pids`` and all their descendants, in MB (Linux /proc)."""
    if not pids or not Path("/proc").is_dir():
        return None
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo, seen = 0, list(pids), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


def _client(url: str, bodies: list[Body], count: int, offset: int, report: Report, lock: threading.Lock,
            timeout: float) -> None:
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection = None
    for i in range(count):
        body = bodies[(offset + i) % len(bodies)]
        start = time.perf_counter()
        outcome: str | None = None
        status = None
        try:
            if connection is None:
                connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
            connection.request("POST", path, body=body.data, headers={"content-type": body.content_type})
            reply = connection.getresponse()
            reply.read()
            status = reply.status
            if reply.getheader("connection", "").lower() == "close":
                connection.close()
                connection = None
            if status != body.expect:
                outcome = f"{body.name}: expected {body.expect}, got {status}"
        except (OSError, http.client.HTTPException) as exc:
            outcome = f"{body.name}: {type(exc).__name__}: {exc}"
            if connection is not None:
                connection.close()
            connection = None
        elapsed = (time.perf_counter() - start) * 1000
        with lock:
            report.requests += 1
            report.statuses[status if status is not None else "no reply"] += 1
            report.latencies_ms.append(elapsed)
            if outcome:
                report.errors.append(outcome)
    if connection is not None:
        connection.close()


def run_load(url: str, image: bytes, *, clients: int, requests: int, pids: list[int] | None = None,
             timeout: float = 120.0) -> Report:
    """``clients`` threads, each sending ``requests`` bodies of the mix (staggered) on one keep-alive connection."""
    report, lock = Report(), threading.Lock()
    bodies = mixed_bodies(image)
    report.rss_before_mb = process_tree_rss_mb(pids or [])
    start = time.perf_counter()
    threads = [threading.Thread(target=_client, args=(url, bodies, requests, n, report, lock, timeout), daemon=True)
               for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report.seconds = time.perf_counter() - start
    report.rss_after_mb = process_tree_rss_mb(pids or [])
    return report


def run_soak(url: str, image: bytes, *, requests: int, pids: list[int] | None = None,
             timeout: float = 120.0) -> Report:
    """One client, ``requests`` of the mix in sequence: memory growth shows up here."""
    return run_load(url, image, clients=1, requests=requests, pids=pids, timeout=timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localaws.loadtest", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="the detect route, e.g. http://127.0.0.1:4567/<api>/detect")
    parser.add_argument("--image", required=True, type=Path, help="a JPEG the API answers with 200")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=8, help="requests per client in the load phase")
    parser.add_argument("--soak", type=int, default=600, help="sequential requests in the soak phase (0: none)")
    parser.add_argument("--pid", type=int, action="append", default=[], help="serving process to measure (RSS)")
    args = parser.parse_args(argv)
    if not args.image.is_file():
        parser.error(f"--image {args.image} is not a file")
    image = args.image.read_bytes()
    load = run_load(args.url, image, clients=args.clients, requests=args.requests, pids=args.pid)
    print(json.dumps({"phase": "load", "clients": args.clients, **load.summary()}))
    failed = bool(load.errors)
    if args.soak:
        soak = run_soak(args.url, image, requests=args.soak, pids=args.pid)
        print(json.dumps({"phase": "soak", **soak.summary()}))
        failed = failed or bool(soak.errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
