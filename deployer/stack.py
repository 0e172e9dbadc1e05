"""CloudFormation deploys with change sets: create or update, no-op updates are fine, failures explained.

Example:
    >>> is_no_change("The submitted information didn't contain changes. Submit different information ...")
    True
    >>> is_no_change("Parameter 'Backend' must be one of AllowedValues")
    False
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

NO_CHANGE_MARKERS = ("didn't contain changes", "No updates are to be performed")
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
GOOD_END_STATES = ("CREATE_COMPLETE", "UPDATE_COMPLETE")


class DeployError(RuntimeError):
    """A deploy step failed; the message says what happened and what to fix."""


@dataclass(frozen=True)
class DeployResult:
    stack_name: str
    status: str
    changed: bool
    outputs: dict[str, str]


def is_no_change(reason: str | None) -> bool:
    return any(marker in (reason or "") for marker in NO_CHANGE_MARKERS)


def describe(cfn: Any, stack_name: str) -> dict | None:
    """The stack, or None when it does not exist (or is deleted)."""
    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except cfn.exceptions.ClientError as error:
        if "does not exist" in str(error):
            return None
        raise
    stack = stacks[0] if stacks else None
    return None if stack is None or stack["StackStatus"] == "DELETE_COMPLETE" else stack


def failure_reasons(cfn: Any, stack_name: str) -> list[str]:
    """``Logical (Type): REASON`` for every failed resource event, oldest first."""
    events = cfn.describe_stack_events(StackName=stack_name)["StackEvents"]
    failed = [e for e in reversed(events) if e["ResourceStatus"].endswith("_FAILED")]
    return [f"{e['LogicalResourceId']} ({e['ResourceType']}): {e.get('ResourceStatusReason') or 'no reason given'}"
            for e in failed]


def wait_stack(cfn: Any, stack_name: str, *, timeout_s: float, poll_s: float,
               say: Callable[[str], None]) -> dict:
    """Poll until the stack leaves every ``*_IN_PROGRESS`` state."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
        status = stack["StackStatus"]
        if status != last:
            say(f"  stack {stack_name}: {status}")
            last = status
        if not status.endswith("_IN_PROGRESS"):
            return stack
        if time.monotonic() > deadline:
            raise DeployError(f"stack {stack_name} still {status} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def _wait_change_set(cfn: Any, change_set_id: str, *, timeout_s: float, poll_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        change_set = cfn.describe_change_set(ChangeSetName=change_set_id)
        if change_set["Status"] in ("CREATE_COMPLETE", "FAILED"):
            return change_set
        if time.monotonic() > deadline:
            raise DeployError(f"change set {change_set_id} still {change_set['Status']} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def deploy(cfn: Any, *, stack_name: str, template_body: str, parameters: dict[str, str],
           say: Callable[[str], None] = print, timeout_s: float = 1800, poll_s: float = 5) -> DeployResult:
    """Create or update ``stack_name`` through a change set and wait for it."""
    existing = describe(cfn, stack_name)
    if existing is not None:
        status = existing["StackStatus"]
        if status == "ROLLBACK_COMPLETE":
            say(f"  stack {stack_name} is ROLLBACK_COMPLETE from an earlier failed create; deleting it first")
            delete(cfn, stack_name=stack_name, say=say, timeout_s=timeout_s, poll_s=poll_s)
            existing = None
        elif status.endswith("_IN_PROGRESS"):
            raise DeployError(f"stack {stack_name} is busy ({status}); wait for it to finish and run again")
        elif status in ("UPDATE_ROLLBACK_FAILED", "DELETE_FAILED", "ROLLBACK_FAILED"):
            raise DeployError(f"stack {stack_name} is {status}; fix it in the CloudFormation console "
                              f"(or ./deploy.sh --delete) and run again:\n    "
                              + "\n    ".join(failure_reasons(cfn, stack_name)))
    change_set_type = "CREATE" if existing is None else "UPDATE"
    try:
        created = cfn.create_change_set(
            StackName=stack_name, ChangeSetName=f"deploy-{uuid.uuid4().hex[:12]}", ChangeSetType=change_set_type,
            TemplateBody=template_body, Capabilities=CAPABILITIES,
            Parameters=[{"ParameterKey": key, "ParameterValue": str(value)} for key, value in parameters.items()])
    except cfn.exceptions.ClientError as error:
        raise DeployError(f"CloudFormation rejected the deploy: {error.response['Error']['Message']}") from error
    change_set = _wait_change_set(cfn, created["Id"], timeout_s=timeout_s, poll_s=min(poll_s, 2))
    if change_set["Status"] == "FAILED":
        cfn.delete_change_set(ChangeSetName=created["Id"])
        if is_no_change(change_set.get("StatusReason")):
            say(f"  stack {stack_name} is already up to date (no changes)")
            stack = describe(cfn, stack_name)
            return DeployResult(stack_name, stack["StackStatus"], False, outputs_of(stack))
        raise DeployError(f"change set failed: {change_set.get('StatusReason')}")
    say(f"  {change_set_type.lower()} {stack_name}: {len(change_set.get('Changes', []))} resource change(s)")
    cfn.execute_change_set(ChangeSetName=created["Id"])
    stack = wait_stack(cfn, stack_name, timeout_s=timeout_s, poll_s=poll_s, say=say)
    if stack["StackStatus"] not in GOOD_END_STATES:
        reasons = failure_reasons(cfn, stack_name) or ["(no failed resource events)"]
        raise DeployError(f"stack {stack_name} ended in {stack['StackStatus']}; failed resource(s):\n    "
                          + "\n    ".join(reasons))
    return DeployResult(stack_name, stack["StackStatus"], True, outputs_of(stack))


def outputs_of(stack: dict | None) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in (stack or {}).get("Outputs") or []}


def delete(cfn: Any, *, stack_name: str, say: Callable[[str], None] = print, timeout_s: float = 1800,
           poll_s: float = 5) -> bool:
    """Delete the stack and wait; False when there was none."""
    stack = describe(cfn, stack_name)
    if stack is None:
        return False
    cfn.delete_stack(StackName=stack["StackId"])
    deadline = time.monotonic() + timeout_s
    while True:
        current = cfn.describe_stacks(StackName=stack["StackId"])["Stacks"][0]["StackStatus"]
        if current == "DELETE_COMPLETE":
            say(f"  stack {stack_name}: DELETE_COMPLETE")
            return True
        if current == "DELETE_FAILED":
            raise DeployError(f"deleting {stack_name} failed:\n    " + "\n    ".join(failure_reasons(cfn, stack_name)))
        if time.monotonic() > deadline:
            raise DeployError(f"stack {stack_name} still {current} after {timeout_s:.0f} s")
        time.sleep(poll_s)
