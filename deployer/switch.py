"""Model switches on a deployed stack: which bundle to serve next, which one stays readable, and rollback.

The stack itself records both: ``ModelS3Uri`` (served) and ``PreviousModelS3Uri`` (served before it, still
readable by the function). A deploy with a new bundle moves the served one to previous; ``--rollback`` swaps
the two back. Bundles are never deleted, so every earlier prefix stays addressable by its s3:// URI.

Why no request fails during a switch: a first stack update only lets the role read the new bundle (IAM needs
seconds to propagate); the second changes the function's ``MODEL_URI``. Lambda keeps answering on environments with
the old configuration until the update completes, lets their in-flight requests finish, and starts new
environments with the new one; an environment still starting on the old configuration can read the old
bundle, because it is the previous one. The local runtime (localaws.lambda_runtime.FunctionPool) does the same.
So ``ModelS3Uri`` must name one bundle's own prefix (``<name>/<sha12>/``), never a ``latest.json`` parent: a
pointer moved under a running function changes no configuration, and warm environments would keep the old model.

Example:
    >>> switch_parameters({"ModelS3Uri": "s3://b/m/a/", "PreviousModelS3Uri": ""}, "s3://b/m/n/")
    {'ModelS3Uri': 's3://b/m/n/', 'PreviousModelS3Uri': 's3://b/m/a/'}
    >>> switch_parameters({"ModelS3Uri": "s3://b/m/a/", "PreviousModelS3Uri": "s3://b/m/z/"}, "s3://b/m/a/")
    {'ModelS3Uri': 's3://b/m/a/', 'PreviousModelS3Uri': 's3://b/m/z/'}
    >>> switch_parameters(None, "s3://b/m/a/")
    {'ModelS3Uri': 's3://b/m/a/', 'PreviousModelS3Uri': ''}
    >>> rollback_parameters({"ModelS3Uri": "s3://b/m/n/", "PreviousModelS3Uri": "s3://b/m/a/", "Timeout": "30"})
    {'ModelS3Uri': 's3://b/m/a/', 'PreviousModelS3Uri': 's3://b/m/n/', 'Timeout': '30'}
"""

from __future__ import annotations

import json
from typing import Any

from .stack import DeployError


def stack_parameters(stack: dict | None) -> dict[str, str] | None:
    """The parameter values a described stack was deployed with (None when there is no stack)."""
    if stack is None:
        return None
    return {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []}


def switch_parameters(current: dict[str, str] | None, model_uri: str) -> dict[str, str]:
    """ModelS3Uri/PreviousModelS3Uri to serve ``model_uri`` next (a redeploy of the same bundle keeps both)."""
    served = (current or {}).get("ModelS3Uri", "")
    if served and served != model_uri:
        return {"ModelS3Uri": model_uri, "PreviousModelS3Uri": served}
    return {"ModelS3Uri": model_uri, "PreviousModelS3Uri": (current or {}).get("PreviousModelS3Uri", "")}


def grant_parameters(current: dict[str, str] | None, model_uri: str) -> dict[str, str] | None:
    """The first of a switch's two updates: still serve the old bundle, but let the role read the new one.

    IAM changes take seconds to reach every Lambda environment, so the function's new configuration must
    not go live in the same update that grants its read (a new environment could start before the grant
    does and fail to load the model). None when there is nothing to switch.

    Example:
        >>> grant_parameters({"ModelS3Uri": "s3://b/m/a/", "PreviousModelS3Uri": ""}, "s3://b/m/n/")
        {'ModelS3Uri': 's3://b/m/a/', 'PreviousModelS3Uri': 's3://b/m/n/'}
        >>> grant_parameters({"ModelS3Uri": "s3://b/m/a/"}, "s3://b/m/a/") is None
        True
    """
    served = (current or {}).get("ModelS3Uri", "")
    if not served or served == model_uri:
        return None
    return {"ModelS3Uri": served, "PreviousModelS3Uri": model_uri}


def rollback_parameters(current: dict[str, str] | None) -> dict[str, str]:
    """Every parameter as deployed, with the served and previous bundles swapped."""
    if current is None:
        raise DeployError("nothing to roll back: the stack does not exist (deploy it first)")
    previous = current.get("PreviousModelS3Uri", "")
    if not previous:
        raise DeployError("nothing to roll back to: the stack has served only one bundle (PreviousModelS3Uri is "
                          "empty); deploy another one with ./deploy.sh --bundle DIR")
    return {**current, "ModelS3Uri": previous, "PreviousModelS3Uri": current["ModelS3Uri"]}


def bundle_sha256(s3: Any, model_uri: str) -> str | None:
    """The model sha256 the bundle's manifest declares (what the API's ``model.sha256`` will say)."""
    bucket, _, prefix = model_uri.removeprefix("s3://").partition("/")
    try:
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}model.json")["Body"].read())
    except s3.exceptions.NoSuchKey:
        raise DeployError(f"{model_uri}model.json does not exist: that prefix holds no bundle") from None
    return manifest.get("model_sha256")
