"""The few fixes moto needs to run this project's template the way AWS CloudFormation does.

Each fix is measured against moto ``PINNED_MOTO`` (tests/functional/localaws/test_moto_fixes.py runs every
check against a stock ``moto_server`` process, where it shows the gap, and against ``localaws.server``, where
it passes). ``apply_all()`` refuses another moto version: the patches reach into its internals.

Fixes (names are the keys of ``FIXES``):

- ``apigatewayv2_resources``: ``AWS::ApiGatewayV2::{Api,Integration,Route,Stage}`` create real API objects
  (stock: silently skipped) and ``GetAtt Api.ApiEndpoint`` works (stock: HTTP 500).
- ``nested_outputs``: ``GetAtt Child.Outputs.X`` / ``${Child.Outputs.X}`` of a nested stack resolve (stock:
  None, which empties the parent's Outputs); a failed child fails its parent resource.
- ``local_template_url``: ``TemplateURL: http://127.0.0.1:PORT/bucket/key`` is read path-style (stock: bucket
  "127").
- ``change_set_outputs``: stacks created or updated by change sets (``aws cloudformation deploy``) get their
  Outputs, template and parameters (stock: no Outputs).
- ``parameter_constraints``: AllowedValues, AllowedPattern, Min/MaxValue, Min/MaxLength are checked by
  CreateStack / CreateChangeSet / UpdateStack, with AWS's ValidationError messages (stock: not checked).
- ``rollback``: a resource that fails to create gets a ``CREATE_FAILED`` event with its reason and the stack
  ends in ``ROLLBACK_COMPLETE`` with what was created deleted (stock: the API call errors, the stack stays
  ``CREATE_IN_PROGRESS`` forever). A rolled-back stack has no outputs and no resources, as on AWS (reading
  them must not re-create what was rolled back).
- ``lambda_code_required``: a function whose S3 code object is missing fails to create, with Lambda's
  message (stock server: created with empty code).
- ``sagemaker_instance_types``: EndpointConfig accepts the ml.g5, ml.g6 and ml.inf2 instance types the GPU
  and Inferentia stacks offer (stock: ValidationError, its list stops at g4dn/inf1). Records only.
- ``applicationautoscaling_resources``: ``AWS::ApplicationAutoScaling::{ScalableTarget,ScalingPolicy}``
  register real targets and policies (stock: silently skipped).
- ``cloudwatch_alarms``: ``AWS::CloudWatch::Alarm`` puts a real alarm record (metric or metric math, actions;
  ``localaws.cfn_cloudwatch``; stock: silently skipped). Records only: no metric is evaluated.
- ``conditional_resources``: DescribeStackResources leaves out resources whose Condition is false (stock:
  one empty entry each, without LogicalResourceId).
- ``conditional_updates``: a stack update leaves a resource whose Condition is false alone (creating it if
  the condition just turned true, deleting it if it turned false), as CloudFormation does (stock: every
  resource that references a changed parameter is "updated", so an uncreated nested stack fails the update).
- ``lambda_invoke``: Invoke runs the deployed zip in ``localaws.lambda_runtime`` (stock: needs Docker, or
  echoes the input).
- ``lambda_async_invoke``: ``Event`` invokes and S3 upload notifications are queued, retried on function errors
  and sent to the on-failure destination; ``AWS::Lambda::EventInvokeConfig`` (``localaws.lambda_async``;
  stock: S3 invokes synchronously inside PutObject, once, errors swallowed; no resource type).
- ``s3_cloudformation_notifications``: an ``AWS::S3::Bucket``'s NotificationConfiguration is applied (stock:
  dropped).
- ``stepfunctions_cloudformation``: executions run (``execute_state_machine`` on) and state machines made by
  CloudFormation can run (stock: created in the non-executing store, StartExecution says it does not exist).
- ``stepfunctions_list_pagination``: ItemReader ``s3:listObjectsV2`` reads every page (stock: 1,000 keys).
- ``stepfunctions_item_batcher``, ``stepfunctions_express_children``, ``stepfunctions_result_writer``,
  ``stepfunctions_tolerance``: a Distributed Map's ItemBatcher, EXPRESS children, ResultWriter WriterConfig +
  result files, integer ToleratedFailurePercentage + tolerance at run time (``localaws.stepfunctions``).

Example:
    >>> from localaws import patches
    >>> sorted(patches.FIXES)[:2]
    ['apigatewayv2_resources', 'applicationautoscaling_resources']
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Any, Callable
from urllib.parse import urlparse

from . import stepfunctions

PINNED_MOTO = "5.2.5"

_applied: set[str] = set()


class ResourceFailed(Exception):
    """One resource of a stack could not be created/updated; carries what CloudFormation reports."""

    def __init__(self, *, logical_id: str, resource_type: str, reason: str):
        super().__init__(f"{logical_id} ({resource_type}): {reason}")
        self.logical_id = logical_id
        self.resource_type = resource_type
        self.reason = reason


def error_reason(error: BaseException) -> str:
    """The message AWS would show for a resource handler error.

    Example:
        >>> error_reason(ValueError("InvalidParameterValueException", "No such key"))
        'Resource handler returned message: "No such key" (HandlerErrorCode: InvalidRequest)'
    """
    if isinstance(error, ResourceFailed):
        return error.reason
    message = getattr(error, "message", None)
    if not message and isinstance(error, ValueError) and len(error.args) == 2:
        message = error.args[1]
    message = message or str(error) or type(error).__name__
    if message.startswith("Embedded stack"):
        return message
    return f'Resource handler returned message: "{message}" (HandlerErrorCode: InvalidRequest)'


# --- parameter constraints ------------------------------------------------------------------------------

def _is_number(value: str) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def parameter_violation(*, name: str, declaration: dict, value: Any) -> str | None:
    """AWS's ValidationError message for one parameter value, or None when it satisfies its declaration.

    Example:
        >>> parameter_violation(name="Backend", declaration={"AllowedValues": ["lambda"]}, value="tpu")
        "Parameter 'Backend' must be one of AllowedValues"
        >>> parameter_violation(name="Memory", declaration={"Type": "Number", "MinValue": 512}, value="64")
        "Parameter 'Memory' must be a number not less than 512"
    """
    param_type = declaration.get("Type", "String")
    if param_type.startswith("AWS::SSM::"):
        return None
    items = str(value).split(",") if (param_type == "CommaDelimitedList" or param_type.startswith("List<")) \
        else [str(value)]
    problem = None
    for item in items:
        problem = _item_violation(name=name, declaration=declaration, item=item.strip() if len(items) > 1
                                  else item, is_number=param_type in ("Number", "List<Number>"))
        if problem:
            break
    if problem and declaration.get("ConstraintDescription") and "AllowedValues" not in problem:
        return f"Parameter '{name}' failed to satisfy constraint: {declaration['ConstraintDescription']}"
    return problem


def _item_violation(*, name: str, declaration: dict, item: str, is_number: bool) -> str | None:
    allowed = declaration.get("AllowedValues")
    if allowed is not None and item not in [str(choice) for choice in allowed]:
        return f"Parameter '{name}' must be one of AllowedValues"
    pattern = declaration.get("AllowedPattern")
    if pattern is not None and not re.fullmatch(pattern, item):
        return f"Parameter '{name}' must match pattern {pattern}"
    if is_number:
        if not _is_number(item):
            return f"Parameter '{name}' must be a number"
        if "MinValue" in declaration and float(item) < float(declaration["MinValue"]):
            return f"Parameter '{name}' must be a number not less than {declaration['MinValue']}"
        if "MaxValue" in declaration and float(item) > float(declaration["MaxValue"]):
            return f"Parameter '{name}' must be a number not greater than {declaration['MaxValue']}"
    if "MinLength" in declaration and len(item) < int(declaration["MinLength"]):
        return f"Parameter '{name}' must contain at least {declaration['MinLength']} characters"
    if "MaxLength" in declaration and len(item) > int(declaration["MaxLength"]):
        return f"Parameter '{name}' must contain at most {declaration['MaxLength']} characters"
    return None


def check_parameters(*, template: dict, values: dict[str, Any]) -> None:
    """Raise moto's ValidationError (HTTP 400, like AWS) for the first bad or missing parameter."""
    from moto.cloudformation.exceptions import ValidationError

    declarations = (template or {}).get("Parameters") or {}
    unknown = sorted(set(values) - set(declarations))
    if unknown:
        raise ValidationError(message=f"Parameters: [{', '.join(unknown)}] do not exist in the template")
    missing = sorted(key for key, decl in declarations.items() if key not in values and "Default" not in decl)
    if missing:
        raise ValidationError(message=f"Parameters: [{', '.join(missing)}] must have values")
    for key, declaration in declarations.items():
        value = values.get(key, declaration.get("Default"))
        if key not in values and declaration.get("Default") == "":
            continue  # an empty default is taken as is by AWS, even against a pattern
        problem = parameter_violation(name=key, declaration=declaration, value=value)
        if problem:
            raise ValidationError(message=problem)


# --- the fixes --------------------------------------------------------------------------------------------

def _fix_apigatewayv2_resources() -> None:
    from . import cfn_apigatewayv2  # lazy: pulls moto; apply_all checks its version first

    cfn_apigatewayv2.register()


def _fix_nested_outputs() -> None:
    from moto.cloudformation import models, parsing
    from moto.cloudformation.exceptions import UnformattedGetAttTemplateException, ValidationError

    original_clean_json = parsing.clean_json

    @functools.wraps(original_clean_json)
    def clean_json(resource_json: Any, resources_map: Any) -> Any:
        # "!GetAtt Child.Outputs.X" reaches moto as ["Child", "Outputs", "X"]; AWS reads it as ("Child", "Outputs.X").
        if isinstance(resource_json, dict) and isinstance(resource_json.get("Fn::GetAtt"), list) \
                and len(resource_json["Fn::GetAtt"]) > 2:
            name, *attribute = resource_json["Fn::GetAtt"]
            resource_json = {**resource_json, "Fn::GetAtt": [name, ".".join(attribute)]}
        return original_clean_json(resource_json, resources_map)

    parsing.clean_json = clean_json

    def get_cfn_attribute(self: Any, attribute_name: str) -> Any:
        if attribute_name.startswith("Outputs."):
            key = attribute_name.split(".", 1)[1]
            for output in self.output_map.values():
                if output is not None and output.key == key:
                    return output.value
            raise ValidationError(message=f"Template error: stack {self.name} has no output {key}")
        raise UnformattedGetAttTemplateException()

    models.Stack.get_cfn_attribute = get_cfn_attribute

    original_create = models.Stack.create_from_cloudformation_json.__func__

    def create_from_cloudformation_json(cls: Any, resource_name: str, cloudformation_json: dict,
                                        account_id: str, region_name: str, **kwargs: Any) -> Any:
        child = original_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        if child.status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            failed = [event.logical_resource_id for event in child.events if event.resource_status.endswith("_FAILED")]
            raise ResourceFailed(
                logical_id=kwargs.get("LogicalId", resource_name), resource_type="AWS::CloudFormation::Stack",
                reason=f"Embedded stack {child.stack_id} was not successfully created: "
                       f"The following resource(s) failed to create: [{', '.join(failed)}]. ",
            )
        return child

    models.Stack.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)


def bucket_and_key_from_template_url(url: str) -> tuple[str, str]:
    """Split an S3 template URL: path-style on IP addresses, localhost and s3.amazonaws.com, else virtual-host.

    Example:
        >>> bucket_and_key_from_template_url("http://127.0.0.1:5000/my-bucket/infra/gpu.yaml")
        ('my-bucket', 'infra/gpu.yaml')
        >>> bucket_and_key_from_template_url("https://b.s3.us-east-1.amazonaws.com/p/t.yaml")
        ('b', 'p/t.yaml')
    """
    parts = urlparse(url)
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
        path_style = True
    except ValueError:
        path_style = host == "localhost" or host.startswith("s3.") or host.startswith("s3-")
    path = parts.path.lstrip("/")
    if path_style:
        bucket, _, key = path.partition("/")
        return bucket, key
    return host.split(".")[0], path


def _fix_local_template_url() -> None:
    from moto.cloudformation import models, responses, utils

    def get_stack_from_s3_url(template_url: str, account_id: str, partition: str) -> str:
        from moto.s3.models import s3_backends

        bucket, key = bucket_and_key_from_template_url(template_url)
        return s3_backends[account_id][partition].get_object(bucket, key).value.decode("utf-8")

    for module in (utils, models, responses):
        module.get_stack_from_s3_url = get_stack_from_s3_url


def _fix_change_set_outputs() -> None:
    from moto.cloudformation import models

    original_apply = models.ChangeSet.apply

    def apply(self: Any) -> None:
        original_apply(self)
        stack = self.stack
        stack.template = self.template
        stack._parse_template()
        stack.description = stack.template_dict.get("Description")
        if self.parameters:
            stack.parameters = self.parameters
        stack.output_map = stack._create_output_map()

    models.ChangeSet.apply = apply


def _fix_parameter_constraints() -> None:
    from moto.cloudformation import models, parsing

    original_load = parsing.ResourceMap.load_parameters

    def load_parameters(self: Any) -> None:
        if self._template:
            check_parameters(template=self._template, values=dict(self.input_parameters or {}))
        original_load(self)

    parsing.ResourceMap.load_parameters = load_parameters

    original_create_change_set = models.CloudFormationBackend.create_change_set

    def create_change_set(self: Any, stack_name: str, change_set_name: str, template: str,
                          parameters: dict, *args: Any, **kwargs: Any) -> Any:
        check_parameters(template=models.Stack.parse_template(template), values=dict(parameters or {}))
        return original_create_change_set(self, stack_name, change_set_name, template, parameters, *args, **kwargs)

    models.CloudFormationBackend.create_change_set = create_change_set


def _add_event(stack: Any, *, logical_id: str, physical_id: str, resource_type: str, status: str,
               reason: str | None) -> None:
    from moto.cloudformation.models import Event

    stack.events.append(Event(
        stack_id=stack.stack_id, stack_name=stack.name, logical_resource_id=logical_id,
        physical_resource_id=physical_id, resource_type=resource_type, resource_status=status,
        resource_status_reason=reason, resource_properties=None,
    ))


def _roll_back(stack: Any, failure: ResourceFailed, *, operation: str) -> None:
    """Record the failure like CloudFormation and delete what this attempt created."""
    _add_event(stack, logical_id=failure.logical_id, physical_id="", resource_type=failure.resource_type,
               status=f"{operation}_FAILED", reason=failure.reason)
    verb = "create" if operation == "CREATE" else "update"
    prefix = "" if operation == "CREATE" else "UPDATE_"
    stack.status = f"{prefix}ROLLBACK_IN_PROGRESS"
    stack._add_stack_event(stack.status, resource_status_reason=(
        f"The following resource(s) failed to {verb}: [{failure.logical_id}]. Rollback requested by user."))
    if operation == "CREATE":
        _delete_created(stack)
        _forget_resources_and_outputs(stack)
        stack.status = "ROLLBACK_COMPLETE"
    else:
        # moto cannot restore the previous resources; say so instead of claiming a clean rollback.
        stack.status = "UPDATE_ROLLBACK_FAILED"
    stack._add_stack_event(stack.status)


def _delete_created(stack: Any) -> None:
    resource_map = stack.resource_map
    for logical_id, resource in list(resource_map._parsed_resources.items()):
        resource_json = resource_map._resource_json_map.get(logical_id)
        if resource_json is None or resource is None or isinstance(resource, (str, int, float, list, dict)):
            continue
        try:
            resource_map._delete_resource(resource, resource_json)
        except Exception:  # noqa: BLE001 - best effort, as CloudFormation's DELETE_SKIPPED
            pass
        resource_map._parsed_resources.pop(logical_id, None)


def _forget_resources_and_outputs(stack: Any) -> None:
    """moto creates resources lazily when outputs or resources are read; after a rollback nothing may be."""
    from moto.cloudformation.parsing import OutputMap

    stack.resource_map._resource_json_map = {}
    stack.output_map = OutputMap(stack.resource_map, {**stack.template_dict, "Outputs": {}}, stack.stack_id)


def _fix_rollback() -> None:
    from moto.cloudformation import models, parsing

    def tag_failures(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def wrapper(logical_id: str, resource_json: dict, *args: Any, **kwargs: Any) -> Any:
            try:
                return original(logical_id, resource_json, *args, **kwargs)
            except ResourceFailed:
                raise
            except Exception as error:  # noqa: BLE001 - every handler error becomes a resource failure
                raise ResourceFailed(logical_id=logical_id, resource_type=resource_json.get("Type", ""),
                                     reason=error_reason(error)) from error
        return wrapper

    parsing.parse_and_create_resource = tag_failures(parsing.parse_and_create_resource)
    parsing.parse_and_update_resource = tag_failures(parsing.parse_and_update_resource)

    original_create_resources = models.Stack.create_resources

    def create_resources(self: Any) -> None:
        try:
            original_create_resources(self)
        except ResourceFailed as failure:
            _roll_back(self, failure, operation="CREATE")

    models.Stack.create_resources = create_resources

    original_update = models.Stack.update

    def update(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            original_update(self, *args, **kwargs)
        except ResourceFailed as failure:
            _roll_back(self, failure, operation="UPDATE")

    models.Stack.update = update

    original_execute = models.CloudFormationBackend.execute_change_set

    def execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
        change_set = self.describe_change_set(change_set_name)
        try:
            original_execute(self, change_set_name, stack_name)
        except ResourceFailed as failure:
            change_set.execution_status = "EXECUTE_FAILED"
            _roll_back(self.stacks[change_set.stack_id], failure, operation=change_set.change_set_type)

    models.CloudFormationBackend.execute_change_set = execute_change_set


def _fix_lambda_code_required() -> None:
    from moto.awslambda import models

    original = models._validate_s3_bucket_and_key

    def validate(account_id: str, partition: str, data: dict) -> Any:
        key = original(account_id, partition=partition, data=data)
        if key is None:
            raise ValueError(
                "InvalidParameterValueException",
                f"Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: The specified "
                f"key does not exist. (s3://{data.get('S3Bucket')}/{data.get('S3Key')})",
            )
        return key

    models._validate_s3_bucket_and_key = validate


# Sizes SageMaker hosting offers for the families infra/gpu.yaml and infra/inferentia.yaml allow; moto's
# EndpointConfig list (5.2.5) predates them.
ADDED_INSTANCE_TYPES = frozenset(
    [f"ml.{family}.{size}" for family in ("g5", "g6")
     for size in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge")]
    + [f"ml.inf2.{size}" for size in ("xlarge", "8xlarge", "24xlarge", "48xlarge")])


def _fix_sagemaker_instance_types() -> None:
    from moto.sagemaker import models

    original = models.FakeEndpointConfig.validate_instance_type

    def validate_instance_type(self: Any, instance_type: str) -> None:
        if instance_type not in ADDED_INSTANCE_TYPES:
            original(self, instance_type)

    models.FakeEndpointConfig.validate_instance_type = validate_instance_type


def _fix_applicationautoscaling_resources() -> None:
    from . import cfn_applicationautoscaling  # lazy: pulls moto; apply_all checks its version first

    cfn_applicationautoscaling.register()


def _fix_cloudwatch_alarms() -> None:
    from . import cfn_cloudwatch  # lazy: pulls moto; apply_all checks its version first

    cfn_cloudwatch.register()


def _fix_conditional_resources() -> None:
    from moto.cloudformation import models

    def stack_resources(self: Any) -> list[Any]:
        # The resource map yields None for a resource whose Condition is false (it is never created).
        return [resource for resource in self.resource_map.values() if resource is not None]

    models.Stack.stack_resources = property(stack_resources)


def _fix_conditional_updates() -> None:
    from moto.cloudformation import parsing

    original = parsing.parse_and_update_resource

    @functools.wraps(original)
    def update_resource(logical_id: str, resource_json: dict, resources_map: Any, account_id: str,
                        region_name: str) -> Any:
        condition = resource_json.get("Condition")
        active = not condition or resources_map.lazy_condition_map[condition]  # already the new parameters'
        existing = resources_map._parsed_resources.get(logical_id)
        if existing is None:
            return parsing.parse_and_create_resource(logical_id, resource_json, resources_map, account_id,
                                                     region_name) if active else None
        if not active:
            resources_map._delete_resource(existing, resource_json)
            return None
        return original(logical_id, resource_json, resources_map, account_id, region_name)

    parsing.parse_and_update_resource = update_resource
    original_update = parsing.ResourceMap.update

    def update(self: Any, template: dict, parameters: dict | None = None) -> None:
        original_update(self, template, parameters)
        # resources whose only change is their Condition's value are not in moto's diff at all
        for logical_id, resource_json in template["Resources"].items():
            condition = resource_json.get("Condition")
            if condition and (self._parsed_resources.get(logical_id) is None) == self.lazy_condition_map[condition]:
                self._parsed_resources[logical_id] = update_resource(
                    logical_id, resource_json, self, self._account_id, self._region_name)

    parsing.ResourceMap.update = update


def _fix_lambda_invoke() -> None:
    from moto.awslambda import models

    from . import lambda_async  # lazy: pulls moto; apply_all checks its version first

    models.LambdaFunction.invoke = lambda_async.invoke_moto_function


def _fix_lambda_async_invoke() -> None:
    from . import lambda_async  # lazy: pulls moto; apply_all checks its version first

    lambda_async.fix_async_invoke()


def _fix_s3_cloudformation_notifications() -> None:
    from . import lambda_async  # lazy: pulls moto; apply_all checks its version first

    lambda_async.fix_cloudformation_notifications()


def _stepfunctions_fix(name: str) -> Callable[[], None]:
    def fix() -> None:
        getattr(stepfunctions, name)()

    fix.__name__ = f"_fix_{name}"
    return fix


FIXES: dict[str, Callable[[], None]] = {
    "apigatewayv2_resources": _fix_apigatewayv2_resources,
    "nested_outputs": _fix_nested_outputs,
    "local_template_url": _fix_local_template_url,
    "change_set_outputs": _fix_change_set_outputs,
    "parameter_constraints": _fix_parameter_constraints,
    "rollback": _fix_rollback,
    "lambda_code_required": _fix_lambda_code_required,
    "sagemaker_instance_types": _fix_sagemaker_instance_types,
    "applicationautoscaling_resources": _fix_applicationautoscaling_resources,
    "cloudwatch_alarms": _fix_cloudwatch_alarms,
    "conditional_resources": _fix_conditional_resources,
    "conditional_updates": _fix_conditional_updates,
    "lambda_invoke": _fix_lambda_invoke,
    "lambda_async_invoke": _fix_lambda_async_invoke,
    "s3_cloudformation_notifications": _fix_s3_cloudformation_notifications,
    "stepfunctions_cloudformation": _stepfunctions_fix("fix_cloudformation_state_machines"),
    "stepfunctions_list_pagination": _stepfunctions_fix("fix_list_objects_pagination"),
    "stepfunctions_item_batcher": _stepfunctions_fix("fix_item_batcher"),
    "stepfunctions_express_children": _stepfunctions_fix("fix_express_children"),
    "stepfunctions_result_writer": _stepfunctions_fix("fix_result_writer"),
    "stepfunctions_tolerance": _stepfunctions_fix("fix_tolerance"),
}


def apply_all(*, skip: tuple[str, ...] = ()) -> list[str]:
    """Apply every fix once (idempotent); returns the names applied. Refuses an unpinned moto version."""
    import moto

    if moto.__version__ != PINNED_MOTO:
        raise RuntimeError(f"localaws patches are written for moto=={PINNED_MOTO}, found {moto.__version__}; "
                           f"run ./setup.sh to install the pinned version")
    for name, fix in FIXES.items():
        if name in skip or name in _applied:
            continue
        fix()
        _applied.add(name)
    return sorted(_applied)
