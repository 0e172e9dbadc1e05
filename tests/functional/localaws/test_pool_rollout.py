"""A configuration change rolls out the way Lambda does it: an invocation in flight on an old environment
finishes there, new invocations start environments with the new configuration, and the old environments are
stopped once idle (real execution environments, localaws.lambda_runtime.FunctionPool)."""

from __future__ import annotations

import json
import threading
import time

from localaws.lambda_runtime import FunctionPool, LocalFunction

SLOW_ECHO = """
import os
import time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"model": os.environ["MODEL"], "pid": os.getpid()}
"""


def test_in_flight_requests_finish_on_the_old_configuration(handler_package, tmp_path):
    package = handler_package(SLOW_ECHO)
    made: dict[str, list[LocalFunction]] = {"a": [], "b": []}

    def factory(model: str):
        def make() -> LocalFunction:
            function = LocalFunction(package, env={"MODEL": model}, function_name="fn", timeout_s=30,
                                     log_path=tmp_path / f"{model}.log")
            made[model].append(function)
            return function
        return make

    key = {model: ("fn", json.dumps({"MODEL": model})) for model in made}
    with FunctionPool(max_per_key=2) as pool:
        assert pool.invoke(key["a"], factory("a"), b"{}").json()["model"] == "a"  # warm on the old configuration
        in_flight: dict = {}
        slow = threading.Thread(target=lambda: in_flight.update(
            result=pool.invoke(key["a"], factory("a"), json.dumps({"sleep": 1.5}))))
        slow.start()
        time.sleep(0.4)  # the slow request is running on A's environment
        switched = pool.invoke(key["b"], factory("b"), b"{}")
        assert switched.function_error is None and switched.json()["model"] == "b" and switched.cold_start
        assert slow.is_alive(), "the new configuration answered while the old request was still running"
        slow.join(10)
        old = in_flight["result"]
        assert old.function_error is None and old.json()["model"] == "a"  # finished where it started
        assert len(made["a"]) == 1 and made["a"][0].pid is not None  # idle again, not yet reaped
        again = pool.invoke(key["b"], factory("b"), b"{}")
        assert again.json()["model"] == "b" and not again.cold_start
        assert made["a"][0].pid is None  # the next request on the new configuration retired the old one
