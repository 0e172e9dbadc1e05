"""Runs inside the built Lambda package in a clean interpreter: ``python -I -S worker.py config.json``.

``-I -S``: no site-packages, no PYTHONPATH, no script directory: the import path is the standard library
plus the unpacked package (inserted below), as on Lambda. torch is not importable here, and we record that.
Modes: ``warm`` (interleaved bare ``session.run`` / handler on each JPEG), ``cold`` (imports, then the
handler's init: bundle fetch + session creation, then the first invoke of a fresh process) and
``cold_overlapped`` (the handler imported first, as Lambda does: its bundle download overlaps the imports) and
``batched`` (the S3 jobs' detection step, ``Detector.detect_many``, one image per model run against several, in
shuffled rounds). Results go to the JSON path in the config; stdout carries the handler's log lines only.
"""

import time

PROCESS_T0 = time.perf_counter()  # before any other import: the cold-start clock

import base64  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402


def _timed_imports() -> dict:
    t0 = time.perf_counter()
    import numpy  # noqa: F401
    t1 = time.perf_counter()
    import PIL.Image  # noqa: F401
    t2 = time.perf_counter()
    import onnxruntime  # noqa: F401
    t3 = time.perf_counter()
    import detection.pipeline  # noqa: F401  # lazy: timed here; the package is on sys.path only after main()
    t4 = time.perf_counter()
    return {"numpy_s": t1 - t0, "pillow_s": t2 - t1, "onnxruntime_s": t3 - t2, "detection_s": t4 - t3,
            "imports_s": t4 - t0}


def _events(images: dict) -> dict:
    events = {}
    for label, path in images.items():
        with open(path, "rb") as handle:
            events[label] = {"image": base64.b64encode(handle.read()).decode("ascii")}
    return events


def _invoke(handler_module, event) -> tuple[float, dict]:
    start = time.perf_counter()
    body = handler_module.handler(event, None)
    elapsed = time.perf_counter() - start
    if "error" in body:
        raise RuntimeError(f"handler returned an error: {body['error']}")
    return elapsed, body


def cold(config: dict) -> dict:
    imports = _timed_imports()
    t0 = time.perf_counter()
    # lazy: timed cold start; MODEL_URI is set: the detector (bundle read + ORT session) loads at import
    import handler

    t1 = time.perf_counter()
    events = _events(config["images"])
    first, body = _invoke(handler, events[config["cold_image"]])
    return {**imports, "init_s": t1 - t0, "first_invoke_s": first, "first_timings_ms": body["timings_ms"],
            "model_path": handler.SERVICE.detector().session._model_path,
            "since_process_start_s": time.perf_counter() - PROCESS_T0}


def cold_overlapped(config: dict) -> dict:
    t0 = time.perf_counter()
    # lazy: timed cold start; starts the bundle download, then imports numpy, Pillow, onnxruntime, the pipeline
    import handler

    t1 = time.perf_counter()
    events = _events(config["images"])
    first, body = _invoke(handler, events[config["cold_image"]])
    return {"init_s": t1 - t0, "first_invoke_s": first, "first_timings_ms": body["timings_ms"],
            "model_path": handler.SERVICE.detector().session._model_path,
            "since_process_start_s": time.perf_counter() - PROCESS_T0}


def warm(config: dict) -> dict:
    imports = _timed_imports()
    import handler  # lazy: the package is on sys.path only after main(), the handler loads the model

    from detection.preprocess import preprocess  # lazy: the package is on sys.path only after main()

    detector = handler.SERVICE.detector()
    manifest = detector.manifest
    events = _events(config["images"])
    # the floor: the same session on the tensor the handler would build from the first image
    with open(config["images"][config["floor_image"]], "rb") as handle:
        decoded = detector.decode(handle.read())  # exactly the handler's decode (draft reduction included)
    tensor, _ = preprocess(decoded.array, spec=manifest.preprocessing, input_spec=manifest.input,
                           original_size=(decoded.original_width, decoded.original_height))
    feed = {manifest.input.name: tensor}
    session = detector.session
    samples: dict = {"session_run": [], **{f"handler_{label}": [] for label in events}}
    breakdown: dict = {label: [] for label in events}
    steps = ["session_run", *events]
    order = random.Random(0)
    started = time.perf_counter()
    for i in range(config["warmup"] + config["runs"]):
        order.shuffle(steps)  # no step always follows the same neighbour (caches, the host's other jobs)
        timed = {}
        for step in steps:
            if step == "session_run":
                start = time.perf_counter()
                session.run(None, feed)
                timed[step] = (time.perf_counter() - start, None)
            else:
                timed[step] = _invoke(handler, events[step])
        if i < config["warmup"]:
            started = time.perf_counter()
            continue
        for step, (elapsed, body) in timed.items():
            samples[step if step == "session_run" else f"handler_{step}"].append(elapsed)
            if body is not None:
                breakdown[step].append(body["timings_ms"])
        if len(samples["session_run"]) >= config["min_runs"] and time.perf_counter() - started > config["budget_s"]:
            break
    return {**imports, "samples": samples, "breakdown": breakdown, "threads": session.get_session_options()
            .intra_op_num_threads, "tensor_shape": list(tensor.shape), "model_path": session._model_path,
            "decoded_shape": {"floor": list(decoded.array.shape)}}


def batched(config: dict) -> dict:
    import handler  # lazy: the package is on sys.path only after main(), the handler loads the model

    detector = handler.SERVICE.detector()
    with open(config["images"][config["batch_image"]], "rb") as handle:
        images = [handle.read()] * config["images_per_round"]
    sizes = [1, *config["batch_sizes"]]
    samples: dict = {str(size): [] for size in sizes}
    order = random.Random(0)
    for i in range(config["warmup"] + config["runs"]):
        order.shuffle(sizes)
        for size in sizes:
            start = time.perf_counter()
            detector.detect_many(images, batch_size=size)
            if i >= config["warmup"]:
                samples[str(size)].append((time.perf_counter() - start) / len(images))  # seconds per image
    return {"samples": samples, "takes_batches": detector.takes_batches,
            "threads": detector.session.get_session_options().intra_op_num_threads}


def main() -> int:
    with open(sys.argv[1]) as handle:
        config = json.load(handle)
    sys.path.insert(0, config["package_dir"])
    if config.get("runtime_dir"):  # Lambda's /var/runtime, after the package as on Lambda
        sys.path.append(config["runtime_dir"])
    modes = {"cold": cold, "cold_overlapped": cold_overlapped, "warm": warm, "batched": batched}
    result = modes[config["mode"]](config)
    result["torch_importable"] = importlib.util.find_spec("torch") is not None
    result["torch_imported"] = "torch" in sys.modules
    result["sys_path"] = sys.path[:3]
    with open(config["result"], "w") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
