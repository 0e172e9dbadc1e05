"""Asynchronous Lambda invocations on the local AWS, with Lambda's retries and on-failure destination; S3
upload notifications declared in CloudFormation; ``AWS::Lambda::EventInvokeConfig``.

Lambda queues an asynchronous event (``InvocationType=Event``, an S3 notification), runs it, and on a function
error retries it ``MaximumRetryAttempts`` times (default 2; AWS waits about 1 then 2 minutes, here
``LOCALAWS_ASYNC_RETRY_DELAYS_S``, default ``1,2`` seconds); when the last attempt fails it sends an invocation
record (``requestContext.condition = RetriesExhausted``, ``requestPayload``, ``responsePayload``) to the
``DestinationConfig.OnFailure`` SQS queue. Stock moto 5.2.5 runs S3 notifications synchronously inside the
PutObject request, once, swallowing errors; and ``Event`` invokes have no retries and no destination.

``invoke_moto_function`` is moto's Invoke for every invocation type: ``Event`` is queued here, the synchronous
ones run through ``localaws.lambda_bridge``.

CloudFormation: stock moto drops an ``AWS::S3::Bucket``'s ``NotificationConfiguration`` and has no
``AWS::Lambda::EventInvokeConfig``; here both are created (Lambda, SQS and SNS configurations with S3Key
prefix/suffix filters).

Example:
    >>> api_notification_config({"LambdaConfigurations": [{"Event": "s3:ObjectCreated:*", "Function": "arn:f",
    ...     "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": "in/"}]}}}]})["CloudFunctionConfiguration"]
    [{'CloudFunction': 'arn:f', 'Event': ['s3:ObjectCreated:*'], 'Filter': {'S3Key': {'FilterRule': [{'Name': 'prefix', 'Value': 'in/'}]}}}]
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from moto.core.common_models import CloudFormationModel
from moto.core.exceptions import JsonRESTError

from . import lambda_bridge
from .lambda_runtime import Throttled

log = logging.getLogger("localaws.lambda_async")

RETRY_DELAYS_ENV = "LOCALAWS_ASYNC_RETRY_DELAYS_S"
DEFAULT_RETRY_DELAYS_S = (1.0, 2.0)
DEFAULT_MAXIMUM_RETRY_ATTEMPTS = 2

_threads: list[threading.Thread] = []


def retry_delays() -> list[float]:
    raw = os.environ.get(RETRY_DELAYS_ENV, "").strip()
    return [float(part) for part in raw.split(",")] if raw else list(DEFAULT_RETRY_DELAYS_S)


def _event_config(fn: Any) -> dict:
    configs = getattr(fn, "event_invoke_config", None) or []
    return configs[-1].config if configs else {}


def failure_record(fn: Any, *, payload: bytes, result: Any, attempts: int) -> dict:
    """The record Lambda sends to an on-failure destination."""
    try:
        request_payload = json.loads(payload)
    except ValueError:
        request_payload = payload.decode("utf-8", "replace")
    try:
        response_payload = json.loads(result.payload)
    except (TypeError, ValueError):
        response_payload = None
    return {
        "version": "1.0",
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {"requestId": result.request_id, "functionArn": f"{fn.function_arn}:$LATEST",
                           "condition": "RetriesExhausted", "approximateInvokeCount": attempts},
        "requestPayload": request_payload,
        "responseContext": {"statusCode": result.status_code, "executedVersion": "$LATEST",
                            "functionError": result.function_error},
        "responsePayload": response_payload,
    }


def send_to_destination(arn: str, record: dict) -> None:
    parts = arn.split(":")
    service, region, account = parts[2], parts[3], parts[4]
    body = json.dumps(record)
    if service == "sqs":
        from moto.sqs.models import sqs_backends

        sqs_backends[account][region].send_message(parts[5], body)
    elif service == "sns":
        from moto.sns.models import sns_backends

        sns_backends[account][region].publish(body, arn=arn)
    else:
        log.error("on-failure destination %s is not supported locally (use an SQS queue or SNS topic)", arn)


def _run(fn: Any, payload: bytes) -> None:
    config = _event_config(fn)
    retries = int(config.get("MaximumRetryAttempts", DEFAULT_MAXIMUM_RETRY_ATTEMPTS))
    delays = retry_delays()
    result = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(delays[min(attempt - 1, len(delays) - 1)])
        try:
            result = lambda_bridge.invoke(fn, payload)
        except Exception:  # noqa: BLE001 - the runtime itself failed: Lambda would retry that too
            log.exception("asynchronous invoke of %s failed to run", fn.function_name)
            continue
        if not result.function_error:
            return
        log.info("asynchronous invoke of %s failed (attempt %d of %d): %s", fn.function_name, attempt + 1,
                 retries + 1, result.payload[:300])
    destination = ((config.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    if destination and result is not None:
        send_to_destination(destination, failure_record(fn, payload=payload, result=result, attempts=retries + 1))
    else:
        log.warning("asynchronous event for %s dropped after %d attempts (no on-failure destination)",
                    fn.function_name, retries + 1)


def invoke_event(fn: Any, payload: bytes) -> None:
    """Queue an asynchronous invocation (returns at once, as Lambda's 202)."""
    thread = threading.Thread(target=_run, args=(fn, payload or b"{}"), name=f"event-{fn.function_name}-{uuid.uuid4().hex[:6]}",
                              daemon=True)
    _threads.append(thread)
    thread.start()


def invoke_moto_function(self: Any, body: Any, request_headers: Any, response_headers: Any) -> bytes:
    """Replacement for moto's ``LambdaFunction.invoke`` (same signature, patched in by ``localaws.patches``)."""
    raw = body.encode("utf-8") if isinstance(body, str) else (body or b"{}")
    invocation_type = request_headers.get("x-amz-invocation-type", "RequestResponse")
    response_headers["x-amz-executed-version"] = "$LATEST"
    if invocation_type == "DryRun":
        return b""
    if invocation_type == "Event":  # queued; retries and the on-failure destination as Lambda
        invoke_event(self, raw)
        return b""
    try:
        result = lambda_bridge.invoke(self, raw)
    except Throttled:  # Lambda's answer past its concurrency: 429, which the SDKs retry with backoff
        throttled = JsonRESTError("TooManyRequestsException", "Rate Exceeded.")
        throttled.code = 429
        throttled.description = json.dumps({"__type": "TooManyRequestsException", "message": "Rate Exceeded.",
                                            "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
                                            "Type": "User"})
        raise throttled from None
    if result.status_code == 413:
        too_large = JsonRESTError("RequestEntityTooLargeException", json.loads(result.payload)["message"])
        too_large.code = 413
        raise too_large
    if result.function_error:
        response_headers["x-amz-function-error"] = result.function_error
    tail = (result.log_tail or "").encode("utf-8")[-lambda_bridge.LOG_RESULT_BYTES:]
    response_headers["x-amz-log-result"] = base64.b64encode(tail).decode("ascii")
    return lambda_bridge.payload_bytes(result.payload)


# ---------------------------------------------------------------- S3 notifications


def _fix_s3_invoke() -> None:
    from moto.s3 import notifications

    def _invoke_awslambda(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
        from moto.awslambda.utils import get_backend

        try:
            fn = get_backend(account_id, region_name).get_function(fn_arn)
        except Exception:  # noqa: BLE001 - AWS drops events for a missing function too
            log.warning("S3 notification for missing function %s dropped", fn_arn)
            return
        invoke_event(fn, json.dumps(event_body).encode())

    notifications._invoke_awslambda = _invoke_awslambda


def _filter(cfn_filter: dict | None) -> dict | None:
    rules = ((cfn_filter or {}).get("S3Key") or {}).get("Rules")
    return {"S3Key": {"FilterRule": [{"Name": r["Name"].lower(), "Value": r["Value"]} for r in rules]}} if rules else None


def api_notification_config(cfn: dict) -> dict:
    """CloudFormation's NotificationConfiguration -> the PutBucketNotificationConfiguration shape moto keeps."""
    out: dict[str, Any] = {}
    for cfn_key, api_key, target in (("LambdaConfigurations", "CloudFunctionConfiguration", "Function"),
                                     ("QueueConfigurations", "QueueConfiguration", "Queue"),
                                     ("TopicConfigurations", "TopicConfiguration", "Topic")):
        entries = []
        for entry in cfn.get(cfn_key) or []:
            api = {api_key.replace("Configuration", ""): entry[target], "Event": [entry["Event"]]}
            if _filter(entry.get("Filter")):
                api["Filter"] = _filter(entry.get("Filter"))
            entries.append(api)
        if entries:
            out[api_key] = entries
    if (cfn.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled"):
        out["EventBridgeConfiguration"] = {}
    return out


def _fix_bucket_notifications() -> None:
    from moto.s3.models import FakeBucket

    original = FakeBucket.create_from_cloudformation_json.__func__

    def create_from_cloudformation_json(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str,
                                        region_name: str, **kwargs: Any) -> Any:
        bucket = original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        config = (cloudformation_json.get("Properties") or {}).get("NotificationConfiguration")
        if config:
            bucket.set_notification_configuration(api_notification_config(config))
        return bucket

    FakeBucket.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)


class CfnEventInvokeConfig(CloudFormationModel):
    """``AWS::Lambda::EventInvokeConfig`` on moto's Lambda backend (Ref: the function name + qualifier)."""

    def __init__(self, function_name: str, qualifier: str):
        self.function_name = function_name
        self.qualifier = qualifier

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Lambda::EventInvokeConfig"

    @property
    def physical_resource_id(self) -> str:
        return f"{self.function_name}:{self.qualifier}"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict, account_id: str, region_name: str, **kwargs: Any
    ) -> "CfnEventInvokeConfig":
        from moto.awslambda.utils import get_backend

        props = cloudformation_json.get("Properties", {})
        config = {key: props[key] for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig")
                  if key in props}
        for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
            if key in config:
                config[key] = int(config[key])
        get_backend(account_id, region_name).put_function_event_invoke_config(props["FunctionName"], config)
        return cls(props["FunctionName"], props.get("Qualifier", "$LATEST"))


def register() -> None:
    from moto.cloudformation import parsing

    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
    if CfnEventInvokeConfig.cloudformation_type() not in parsing.get_model_map():
        raise RuntimeError("localaws: AWS::Lambda::EventInvokeConfig handler not registered")


def fix_async_invoke() -> None:
    """S3 notifications and Event invokes: queued, retried, failures to the on-failure destination."""
    _fix_s3_invoke()
    register()


def fix_cloudformation_notifications() -> None:
    _fix_bucket_notifications()
