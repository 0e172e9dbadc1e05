"""Step Functions on the local moto: the Distributed Map features the batch state machine uses.

moto 5.2.5's ASL engine (ported from LocalStack) runs a Distributed Map with an ItemReader. What it lacks, and
what this module adds (each measured by tests/functional/localaws/checks.py on a stock server):

- ``ItemBatcher`` (``MaxItemsPerBatch``, ``MaxInputBytesPerBatch``, ``BatchInput`` with ``.$`` paths into the
  Map's input): the grammar rejects the field. Here each child gets ``{"Items": [...], "BatchInput": {...}}``.
- ``ProcessorConfig.ExecutionType: EXPRESS``: rejected. Children run in-process either way here, so EXPRESS
  children run like STANDARD ones (the at-least-once difference cannot show locally).
- ``ResultWriter.WriterConfig`` (``OutputType`` JSON | JSONL, ``Transformation`` NONE | COMPACT | FLATTEN):
  rejected; and the stock ResultWriter writes a ``manifest.json`` with empty ``ResultFiles``. Here it writes
  ``SUCCEEDED_0.json`` / ``FAILED_0.json`` (one record per child: Input, Output or Error/Cause, Status) under
  ``<Prefix>/<map run id>/`` and lists them in the manifest — also when the Map fails on its tolerance.
- An integer ``ToleratedFailurePercentage`` does not parse (only 10.0 does), and tolerance is ignored at run
  time (failed children never fail the Map). Here a Map whose failed items exceed ``ToleratedFailureCount``
  or ``ToleratedFailurePercentage`` (either, as AWS; none declared = no failure tolerated) fails with
  ``States.ExceedToleratedFailureThreshold``. With ItemBatcher a failed child counts all its items.
- ItemReader ``s3:listObjectsV2`` reads one page (1,000 keys): here every page, items shaped as AWS sends
  them (``Etag``, ``Key``, ``LastModified`` in epoch seconds, ``Size``, ``StorageClass``).
- (Not a gap: the engine's own AWS calls (Lambda tasks, S3 readers and writers) go to
  ``http://localhost:$MOTO_PORT``; ``moto_server`` and ``localaws.server`` both set MOTO_PORT to their port.)
- State machines created by CloudFormation land in moto's non-executing backend (StartExecution then fails
  with StateMachineDoesNotExist): here in the executing one, with ``StateMachineType``; and execution is on.
- A finishing execution shows ``SUCCEEDED`` before its output is set, so a poller can read a succeeded
  execution without ``output`` (seen in CI): here the output is set first, as AWS never shows one without it.

Only Map states at the top level or nested in Map states are lowered (not inside Parallel branches).

Example:
    >>> definition, extras = lower_definition(
    ...     '{"StartAt": "M", "States": {"M": {"Type": "Map", "End": true, "ToleratedFailurePercentage": 5,'
    ...     ' "ItemBatcher": {"MaxItemsPerBatch": 10}, "ItemProcessor": {"ProcessorConfig":'
    ...     ' {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}, "StartAt": "P", "States": {"P": {"Type": "Pass",'
    ...     ' "End": true}}}}}}')
    >>> extras[("M",)].max_items_per_batch, extras[("M",)].execution_type, '"ToleratedFailurePercentage": 5.0' in definition
    (10, 'EXPRESS', True)
    >>> [len(b["Items"]) for b in batch_items([{"Key": str(i)} for i in range(25)], extras[("M",)], {})]
    [10, 10, 5]
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator

FEATURES = ("item_batcher", "express_children", "writer_config", "tolerance")
_enabled: set[str] = set()  # features switched on by localaws.patches (each its own fix, each its own check)
_installed: set[str] = set()
MAX_BATCH_INPUT_BYTES = 256 * 1024  # Step Functions' limit on one child's input
RESULT_FILE_RECORDS = 1000  # records per result file before the next one (AWS splits large results too)


@dataclass
class MapExtras:
    """What the lowering took out of one Map state, and what the engine needs to honour it."""

    batched: bool = False
    max_items_per_batch: int | None = None
    max_input_bytes_per_batch: int | None = None
    batch_input: Any = None
    execution_type: str = "STANDARD"
    writer_config: dict = field(default_factory=dict)
    tolerated_count_declared: bool = False
    tolerated_percentage_declared: bool = False
    result_writer: Any = None  # the Map state's ResultWriter component, attached after parsing


# ---------------------------------------------------------------- the definition


def _map_states(states: dict, path: tuple) -> Iterator[tuple[tuple, dict]]:
    for name, state in (states or {}).items():
        if isinstance(state, dict) and state.get("Type") == "Map":
            yield path + (name,), state
            processor = state.get("ItemProcessor") or state.get("Iterator") or {}
            yield from _map_states(processor.get("States") or {}, path + (name,))


def lower_definition(definition: str, features: tuple[str, ...] | set[str] = FEATURES
                     ) -> tuple[str, dict[tuple, MapExtras]]:
    """Rewrite what moto's grammar rejects into what it accepts (only ``features``); return the extras per Map
    state path."""
    try:
        document = json.loads(definition)
    except (TypeError, ValueError):
        return definition, {}
    if not isinstance(document, dict):
        return definition, {}
    extras: dict[tuple, MapExtras] = {}
    for path, state in _map_states(document.get("States") or {}, ()):
        found = MapExtras()
        batcher = state.pop("ItemBatcher", None) if "item_batcher" in features else None
        if isinstance(batcher, dict):
            found.batched = True
            found.max_items_per_batch = batcher.get("MaxItemsPerBatch")
            found.max_input_bytes_per_batch = batcher.get("MaxInputBytesPerBatch")
            found.batch_input = batcher.get("BatchInput")
        config = (state.get("ItemProcessor") or {}).get("ProcessorConfig") or {}
        if config.get("ExecutionType") == "EXPRESS" and "express_children" in features:
            found.execution_type = "EXPRESS"
            config["ExecutionType"] = "STANDARD"
        writer = state.get("ResultWriter")
        if isinstance(writer, dict) and isinstance(writer.get("WriterConfig"), dict) and "writer_config" in features:
            found.writer_config = writer.pop("WriterConfig")
        if isinstance(state.get("ToleratedFailurePercentage"), int) and "tolerance" in features:
            state["ToleratedFailurePercentage"] = float(state["ToleratedFailurePercentage"])
        found.tolerated_count_declared = any(k in state for k in ("ToleratedFailureCount", "ToleratedFailureCountPath"))
        found.tolerated_percentage_declared = any(
            k in state for k in ("ToleratedFailurePercentage", "ToleratedFailurePercentagePath"))
        extras[path] = found
    return json.dumps(document), extras


def _attach(states: Any, extras: dict[tuple, MapExtras], path: tuple) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map import StateMap

    for name, state in states.states.items():
        if not isinstance(state, StateMap):
            continue
        found = extras.get(path + (name,))
        if found is not None:
            found.result_writer = state.result_writer
            if found.batched and state.item_selector is not None:
                raise ValueError(f"Map state {name}: ItemSelector with ItemBatcher is not supported locally")
            state.iteration_component._localaws_extras = found
        _attach(state.iteration_component._states, extras, path + (name,))


# ---------------------------------------------------------------- batching and tolerance


def _resolve(template: Any, document: Any) -> Any:
    """A Parameters-style template: keys ending in ``.$`` take a ``$.a.b`` path into ``document``."""
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$") and isinstance(value, str):
                from moto.stepfunctions.parser.asl.utils.json_path import extract_json

                out[key[:-2]] = extract_json(value, document)
            else:
                out[key] = _resolve(value, document)
        return out
    if isinstance(template, list):
        return [_resolve(value, document) for value in template]
    return template


def batch_items(items: list, extras: MapExtras, state_input: Any) -> list[dict]:
    """Group items as ItemBatcher does: at most MaxItemsPerBatch and MaxInputBytesPerBatch (default and cap:
    256 KB, Step Functions' input limit) per child."""
    batch_input = _resolve(extras.batch_input, state_input) if extras.batch_input is not None else None
    max_items = extras.max_items_per_batch or len(items) or 1
    max_bytes = min(extras.max_input_bytes_per_batch or MAX_BATCH_INPUT_BYTES, MAX_BATCH_INPUT_BYTES)
    base = len(json.dumps({"Items": [], "BatchInput": batch_input}))
    batches, current, size = [], [], base
    for item in items:
        item_bytes = len(json.dumps(item)) + 1
        if current and (len(current) >= max_items or size + item_bytes > max_bytes):
            batches.append(current)
            current, size = [], base
        current.append(item)
        size += item_bytes
    if current:
        batches.append(current)
    return [{"Items": chunk, **({"BatchInput": batch_input} if batch_input is not None else {})} for chunk in batches]


def tolerance_exceeded(*, failed: int, total: int, extras: MapExtras, count: int, percentage: float) -> bool:
    """AWS: the Map Run fails when failures exceed either declared threshold; with none, any failure fails it.

    Example:
        >>> tolerance_exceeded(failed=3, total=100, extras=MapExtras(tolerated_percentage_declared=True),
        ...                    count=0, percentage=5.0)
        False
    """
    if failed == 0:
        return False
    if not (extras.tolerated_count_declared or extras.tolerated_percentage_declared):
        return True
    if extras.tolerated_count_declared and failed > count:
        return True
    return extras.tolerated_percentage_declared and 100.0 * failed / max(total, 1) > percentage


class RunLog:
    """Every child's outcome, for tolerance and the result files (workers run on several threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.children: list[dict] = []

    def add(self, record: dict) -> None:
        with self.lock:
            self.children.append(record)

    def failed_items(self) -> int:
        with self.lock:
            return sum(child["items"] for child in self.children if child["Status"] != "SUCCEEDED")


def _items_in(job_input: Any) -> int:
    if isinstance(job_input, dict) and isinstance(job_input.get("Items"), list) and set(job_input) <= {"Items", "BatchInput"}:
        return len(job_input["Items"])
    return 1


def _timestamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# ---------------------------------------------------------------- result files


def result_records(children: list[dict], *, transformation: str) -> list[Any]:
    """Child records as ResultWriter writes them (NONE: with metadata and JSON strings; COMPACT: parsed
    Input/Output/Status/Error/Cause; FLATTEN: the outputs, arrays spread)."""
    ordered = sorted(children, key=lambda child: child["index"])
    if transformation == "FLATTEN":
        flat: list[Any] = []
        for child in ordered:
            if child["Status"] == "SUCCEEDED":
                output = child.get("Output")
                flat.extend(output if isinstance(output, list) else [output])
        return flat
    records = []
    for child in ordered:
        if transformation == "COMPACT":
            record = {"Input": child["Input"], "Status": child["Status"]}
            if "Output" in child:
                record["Output"] = child["Output"]
        else:
            record = {"ExecutionArn": child["ExecutionArn"], "Name": child["Name"], "Status": child["Status"],
                      "StartDate": child["StartDate"], "StopDate": child["StopDate"],
                      "Input": json.dumps(child["Input"]), "InputDetails": {"Included": True}}
            if "Output" in child:
                record.update(Output=json.dumps(child["Output"]), OutputDetails={"Included": True})
        for key in ("Error", "Cause"):
            if child.get(key) is not None:
                record[key] = child[key]
        records.append(record)
    return records


def encode_records(records: list, *, output_type: str) -> bytes:
    if output_type == "JSONL":
        return "".join(json.dumps(record) + "\n" for record in records).encode()
    return json.dumps(records).encode()


def write_result_files(s3: Any, *, bucket: str, prefix: str, map_run_arn: str, children: list[dict],
                       writer_config: dict) -> dict:
    """Write the result files and the manifest; returns the manifest."""
    run_id = map_run_arn.split(":")[-1]
    prefix = prefix if prefix == "" or prefix.endswith("/") else prefix + "/"
    output_type = writer_config.get("OutputType", "JSON")
    transformation = writer_config.get("Transformation", "NONE")
    extension = "jsonl" if output_type == "JSONL" else "json"
    files: dict[str, list] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    for status in ("SUCCEEDED", "FAILED"):
        group = [child for child in children if (child["Status"] == "SUCCEEDED") == (status == "SUCCEEDED")]
        if transformation == "FLATTEN" and status == "FAILED":
            group = []
        for number, start in enumerate(range(0, len(group), RESULT_FILE_RECORDS)):
            body = encode_records(result_records(group[start:start + RESULT_FILE_RECORDS], transformation=transformation),
                                  output_type=output_type)
            key = f"{prefix}{run_id}/{status}_{number}.{extension}"
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            files[status].append({"Key": key, "Size": len(body)})
    manifest = {"DestinationBucket": bucket, "MapRunArn": map_run_arn, "ResultFiles": files}
    s3.put_object(Bucket=bucket, Key=f"{prefix}{run_id}/manifest.json", Body=json.dumps(manifest, indent=2).encode())
    return manifest


# ---------------------------------------------------------------- the patches


def _patch_parser() -> None:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    original = AmazonStateLanguageParser.parse

    def parse(definition: str) -> Any:
        lowered, extras = lower_definition(definition, _enabled)
        program, tree = original(lowered)
        if extras:
            _attach(program.states, extras, ())
        return program, tree

    AmazonStateLanguageParser.parse = staticmethod(parse)


def _fail_map(env: Any, cause: str) -> Exception:
    from moto.stepfunctions.parser.api import HistoryEventType, MapRunFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent, FailureEventException)
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType)
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    error_name = StatesErrorName(typ=StatesErrorNameType.StatesExceedToleratedFailureThreshold)
    return FailureEventException(failure_event=FailureEvent(
        env=env, error_name=error_name, event_type=HistoryEventType.MapRunFailed,
        event_details=EventDetails(mapRunFailedEventDetails=MapRunFailedEventDetails(
            error=error_name.error_name, cause=cause))))


def _patch_map_run() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import (
        distributed_iteration_component as module)

    original = module.DistributedIterationComponent._map_run

    @functools.wraps(original)
    def _map_run(self: Any, env: Any, eval_input: Any) -> None:
        extras: MapExtras = getattr(self, "_localaws_extras", None) or MapExtras()
        record = eval_input.map_run_record
        run_log = record._localaws_log = RunLog()
        env._localaws_writer_config = extras.writer_config
        items = env.stack.pop()
        total_items = len(items)
        env.stack.append(batch_items(items, extras, env.states.get_input()) if extras.batched else items)
        original(self, env, eval_input)
        failed = run_log.failed_items()
        if "tolerance" in _enabled and tolerance_exceeded(failed=failed, total=total_items, extras=extras,
                              count=record.tolerated_failure_count, percentage=record.tolerated_failure_percentage):
            if extras.result_writer is not None:  # AWS writes the results of a failed Map Run too
                extras.result_writer.eval(env)
                env.stack.pop()
            raise _fail_map(env, f"{failed} of {total_items} items failed, more than the Map tolerates "
                                 f"(ToleratedFailureCount {record.tolerated_failure_count}, "
                                 f"ToleratedFailurePercentage {record.tolerated_failure_percentage})")

    module.DistributedIterationComponent._map_run = _map_run


def _patch_worker() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
        distributed_item_processor_worker as module)
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramError, ProgramStopped

    original = module.DistributedItemProcessorWorker._eval_job

    @functools.wraps(original)
    def _eval_job(self: Any, env: Any, job: Any) -> None:
        record = self._map_run_record
        started = _timestamp()
        items = _items_in(job.job_input)
        original(self, env, job)
        if items > 1:  # moto counted the child as one item; AWS counts each item of a batch
            for counter in (record.item_counter.total, record.item_counter.results_written):
                counter.count(items - 1)
        state = env.program_state()
        child = {"index": job.job_index, "items": items, "Input": job.job_input, "StartDate": started,
                 "StopDate": _timestamp(), "Name": f"{job.job_index}",
                 "ExecutionArn": f"{record.map_run_arn}:{job.job_index}"}
        if isinstance(state, ProgramError) or job.job_output is None and not isinstance(state, ProgramStopped):
            error = (state.error or {}) if isinstance(state, ProgramError) else {}
            child.update(Status="FAILED", Error=error.get("error", "States.TaskFailed"), Cause=error.get("cause"))
            if items > 1:
                record.item_counter.failed.count(items - 1)
        elif isinstance(state, ProgramStopped):
            child.update(Status="ABORTED")
        else:
            child.update(Status="SUCCEEDED", Output=job.job_output)
            if items > 1:
                record.item_counter.succeeded.count(items - 1)
        log = getattr(record, "_localaws_log", None)
        if log is not None:
            log.add(child)

    module.DistributedItemProcessorWorker._eval_job = _eval_job


def _patch_item_reader() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval import resource_eval_s3

    def _handle_list_objects_v2(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
        s3 = resource_eval_s3.ResourceEvalS3._get_s3_client(resource_runtime_part=resource_runtime_part,
                                                           state_credentials=state_credentials)
        parameters = dict(env.stack.pop())
        items = []
        for page in s3.get_paginator("list_objects_v2").paginate(**parameters):
            for obj in page.get("Contents", []):
                items.append({"Etag": obj["ETag"], "Key": obj["Key"], "LastModified": int(obj["LastModified"].timestamp()),
                              "Size": obj["Size"], "StorageClass": obj.get("StorageClass", "STANDARD")})
        env.stack.append(items)

    resource_eval_s3.ResourceEvalS3._handle_list_objects_v2 = staticmethod(_handle_list_objects_v2)


def _patch_result_writer() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval import (
        resource_eval_s3)

    def _handle_put_object(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
        parameters = env.stack.pop()
        env.stack.pop()  # the children's outputs: the run log has them with their inputs and errors
        s3 = resource_eval_s3.ResourceEvalS3._get_s3_client(resource_runtime_part=resource_runtime_part,
                                                           state_credentials=state_credentials)
        record = env.map_run_record_pool_manager.get_all()[-1]
        run_log = getattr(record, "_localaws_log", None) or RunLog()
        writer_config = getattr(env, "_localaws_writer_config", None) or {}  # set by the Map run (_patch_map_run)
        manifest = write_result_files(s3, bucket=parameters["Bucket"], prefix=parameters.get("Prefix", ""),
                                      map_run_arn=record.map_run_arn, children=list(run_log.children),
                                      writer_config=writer_config)
        run_id = record.map_run_arn.split(":")[-1]
        prefix = parameters.get("Prefix", "")
        prefix = prefix if prefix == "" or prefix.endswith("/") else prefix + "/"
        env.stack.append({"MapRunArn": record.map_run_arn, "ResultWriterDetails": {
            "Bucket": manifest["DestinationBucket"], "Key": f"{prefix}{run_id}/manifest.json"}})

    resource_eval_s3.ResourceEvalS3._handle_put_object = staticmethod(_handle_put_object)


def _install(*patches: Any) -> None:
    for patch in patches:
        if patch.__name__ not in _installed:
            patch()
            _installed.add(patch.__name__)


def fix_item_batcher() -> None:
    """ItemBatcher: children get {"Items", "BatchInput"}; item counts count items."""
    _enabled.add("item_batcher")
    _install(_patch_parser, _patch_map_run, _patch_worker)


def fix_express_children() -> None:
    _enabled.add("express_children")
    _install(_patch_parser)


def fix_result_writer() -> None:
    """WriterConfig parses; ResultWriter writes the result files it lists in the manifest."""
    _enabled.add("writer_config")
    _install(_patch_parser, _patch_map_run, _patch_worker, _patch_result_writer)


def fix_tolerance() -> None:
    """Integer ToleratedFailurePercentage parses; exceeding a tolerance fails the Map."""
    _enabled.add("tolerance")
    _install(_patch_parser, _patch_map_run, _patch_worker)


def fix_list_objects_pagination() -> None:
    _install(_patch_item_reader)


def fix_cloudformation_state_machines() -> None:
    """Turn execution on and make CloudFormation create state machines where executions look for them."""
    from moto.core.config import default_user_config
    from moto.stepfunctions import models, responses

    default_user_config.setdefault("stepfunctions", {})["execute_state_machine"] = True

    def create_from_cloudformation_json(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str,
                                        region_name: str, **kwargs: Any) -> Any:
        from moto.stepfunctions.utils import cfn_to_api_tags

        properties = cloudformation_json["Properties"]
        definition = properties.get("DefinitionString") or json.dumps(properties.get("Definition") or {})
        for name, value in (properties.get("DefinitionSubstitutions") or {}).items():
            definition = definition.replace("${" + name + "}", str(value))
        backend = responses.get_backend(account_id, region_name)
        return backend.create_state_machine(
            properties.get("StateMachineName", resource_name), definition, properties.get("RoleArn", ""),
            tags=cfn_to_api_tags(properties.get("Tags", [])), sm_type=properties.get("StateMachineType"))

    def delete_from_cloudformation_json(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str,
                                        region_name: str) -> None:
        backend = responses.get_backend(account_id, region_name)
        for machine in list(backend.state_machines):
            if machine.arn == resource_name or machine.name == resource_name:
                backend.delete_state_machine(machine.arn)

    models.StateMachine.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)
    models.StateMachine.delete_from_cloudformation_json = classmethod(delete_from_cloudformation_json)
    _install(_patch_output_before_status)


def _patch_output_before_status() -> None:
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramEnded
    from moto.stepfunctions.parser.backend import execution

    reflect = execution.BaseExecutionWorkerCommunication._reflect_execution_status

    def _reflect_execution_status(self: Any) -> None:
        worker_env = self.execution.exec_worker.env
        if isinstance(worker_env.program_state(), ProgramEnded):
            self.execution.output = worker_env.states.get_input()
        reflect(self)

    execution.BaseExecutionWorkerCommunication._reflect_execution_status = _reflect_execution_status
