"""A bounded client loop against an HTTP endpoint: N workers POST the same image until told to stop or until
``max_requests`` were sent; every answer is kept (time, status, the model sha256 that answered, or the error).

Example:
    >>> with LoadLoop("http://127.0.0.1:9/detect", b"x", workers=1, max_requests=1, timeout_s=1) as loop:   # doctest: +SKIP
    ...     pass
    >>> loop.summary()                                                                                     # doctest: +SKIP
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    sent: float  # time.monotonic() when the request left
    done: float
    status: int  # 0 = no HTTP answer (connection refused, reset, timeout)
    sha256: str | None
    error: str | None


class LoadLoop:
    def __init__(self, url: str, image: bytes, *, workers: int = 4, max_requests: int = 1000,
                 timeout_s: float = 60.0, content_type: str = "image/jpeg", pause_s: float = 0.0):
        self.url, self.image, self.workers, self.max_requests = url, image, workers, max_requests
        self.pause_s = pause_s  # between one worker's requests: keeps a fast machine under max_requests longer
        self.timeout_s, self.content_type = timeout_s, content_type
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sent = 0
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]

    def _take_slot(self) -> bool:
        with self._lock:
            if self._stop.is_set() or self._sent >= self.max_requests:
                return False
            self._sent += 1
            return True

    def _post(self) -> Answer:
        request = urllib.request.Request(self.url, data=self.image, method="POST",
                                         headers={"content-type": self.content_type})
        sent = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
                status, raw = reply.status, reply.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        except OSError as error:
            return Answer(sent, time.monotonic(), 0, None, f"{type(error).__name__}: {error}")
        done = time.monotonic()
        try:
            body = json.loads(raw)
        except ValueError:
            return Answer(sent, done, status, None, raw[:200].decode(errors="replace"))
        if status != 200:
            return Answer(sent, done, status, None, json.dumps(body)[:300])
        return Answer(sent, done, status, body.get("model", {}).get("sha256"), None)

    def _work(self) -> None:
        while self._take_slot():
            answer = self._post()
            with self._lock:
                self.answers.append(answer)
            if self.pause_s:
                self._stop.wait(self.pause_s)

    def start(self) -> "LoadLoop":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout_s + 5)

    def __enter__(self) -> "LoadLoop":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait_for(self, count: int, *, timeout_s: float = 120) -> None:
        """Block until ``count`` answers are in (so a phase of the check has real traffic)."""
        deadline = time.monotonic() + timeout_s
        while len(self.answers) < count and time.monotonic() < deadline and not self._stop.is_set():
            time.sleep(0.05)

    def failures(self) -> list[Answer]:
        return [a for a in self.answers if a.status != 200 or a.sha256 is None]

    def summary(self) -> dict:
        by_model = Counter(a.sha256[:12] if a.sha256 else f"status {a.status}" for a in self.answers)
        latencies = sorted(a.done - a.sent for a in self.answers)
        return {"requests": len(self.answers), "failed": len(self.failures()), "by_model": dict(by_model),
                "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1) if latencies else None,
                "max_ms": round(latencies[-1] * 1000, 1) if latencies else None}
