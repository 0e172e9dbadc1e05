"""CloudFormation handlers for ``AWS::ApplicationAutoScaling::{ScalableTarget,ScalingPolicy}`` on moto's
applicationautoscaling backend.

moto 5.2.5 has the Application Auto Scaling API but no CloudFormation models for it, so the nested GPU and
Inferentia stacks' autoscaling resources were skipped ("No Moto CloudFormation support", CREATE_COMPLETE with
nothing registered). These register real scalable targets and policies. Like AWS, a SageMaker target must
name an existing endpoint variant. Records only: nothing scales here.

Ref values follow AWS: a ScalableTarget's Ref is ``resource-id|scalable-dimension|service-namespace`` (what a
policy's ``ScalingTargetId`` takes); a ScalingPolicy's Ref is its ARN.

Example:
    >>> split_target_id("endpoint/e/variant/AllTraffic|sagemaker:variant:DesiredInstanceCount|sagemaker")
    ('sagemaker', 'endpoint/e/variant/AllTraffic', 'sagemaker:variant:DesiredInstanceCount')
"""

from __future__ import annotations

from typing import Any

from moto.applicationautoscaling.models import applicationautoscaling_backends
from moto.core.common_models import CloudFormationModel

from .cfn_models import AttributeModel


def _backend(account_id: str, region_name: str) -> Any:
    return applicationautoscaling_backends[account_id][region_name]


def target_id(*, namespace: str, resource_id: str, dimension: str) -> str:
    """The Ref of a ScalableTarget, as CloudFormation returns it."""
    return f"{resource_id}|{dimension}|{namespace}"


def split_target_id(value: str) -> tuple[str, str, str]:
    """``(namespace, resource_id, dimension)`` from a ScalableTarget Ref; a clear error for anything else."""
    parts = value.split("|")
    if len(parts) != 3 or not all(parts):
        raise ValueError("ValidationException",
                         f"ScalingTargetId {value!r} is not a ScalableTarget id (resource-id|dimension|namespace)")
    resource_id, dimension, namespace = parts
    return namespace, resource_id, dimension


def _require_sagemaker_variant(*, resource_id: str, account_id: str, region_name: str) -> None:
    """AWS refuses a SageMaker target whose endpoint variant does not exist; so does this."""
    from moto.sagemaker.models import sagemaker_backends

    parts = resource_id.split("/")
    if len(parts) != 4 or parts[0] != "endpoint" or parts[2] != "variant":
        raise ValueError("ValidationException",
                         f"Unsupported resource ID {resource_id!r}: use endpoint/<name>/variant/<variant>")
    endpoint = sagemaker_backends[account_id][region_name].endpoints.get(parts[1])
    variants = [v["VariantName"] for v in endpoint.production_variants] if endpoint else []
    if parts[3] not in variants:
        raise ValueError("ValidationException", f"The endpoint variant {resource_id} does not exist")


class CfnScalableTarget(AttributeModel, CloudFormationModel):
    """``AWS::ApplicationAutoScaling::ScalableTarget``: Ref = ``resource-id|dimension|namespace``."""

    CFN_ATTRIBUTES = {"Id": "physical_resource_id"}

    def __init__(self, *, namespace: str, resource_id: str, dimension: str):
        self.namespace = namespace
        self.resource_id = resource_id
        self.dimension = dimension

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApplicationAutoScaling::ScalableTarget"

    @property
    def physical_resource_id(self) -> str:
        return target_id(namespace=self.namespace, resource_id=self.resource_id, dimension=self.dimension)

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict, account_id: str, region_name: str, **kwargs: Any
    ) -> "CfnScalableTarget":
        props = cloudformation_json.get("Properties", {})
        namespace, resource_id = props["ServiceNamespace"], props["ResourceId"]
        if namespace == "sagemaker":
            _require_sagemaker_variant(resource_id=resource_id, account_id=account_id, region_name=region_name)
        target = _backend(account_id, region_name).register_scalable_target(
            namespace, resource_id, props["ScalableDimension"],
            min_capacity=int(props["MinCapacity"]), max_capacity=int(props["MaxCapacity"]),
            role_arn=props.get("RoleARN", ""), suspended_state=props.get("SuspendedState"),
        )
        return cls(namespace=target.service_namespace, resource_id=target.resource_id,
                   dimension=target.scalable_dimension)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[override]
        cls, original_resource: "CfnScalableTarget", new_resource_name: str, cloudformation_json: dict,
        account_id: str, region_name: str,
    ) -> "CfnScalableTarget":
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        backend = _backend(account_id, region_name)
        if backend._scalable_target_exists(self.resource_id, self.dimension):
            backend.deregister_scalable_target(self.namespace, self.resource_id, self.dimension)


class CfnScalingPolicy(AttributeModel, CloudFormationModel):
    """``AWS::ApplicationAutoScaling::ScalingPolicy``: Ref = policy ARN; GetAtt Arn."""

    CFN_ATTRIBUTES = {"Arn": "arn"}

    def __init__(self, *, arn: str, name: str, namespace: str, resource_id: str, dimension: str):
        self.arn = arn
        self.name = name
        self.namespace = namespace
        self.resource_id = resource_id
        self.dimension = dimension

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApplicationAutoScaling::ScalingPolicy"

    @property
    def physical_resource_id(self) -> str:
        return self.arn

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict, account_id: str, region_name: str, **kwargs: Any
    ) -> "CfnScalingPolicy":
        props = cloudformation_json.get("Properties", {})
        if props.get("ScalingTargetId"):
            namespace, resource_id, dimension = split_target_id(props["ScalingTargetId"])
        else:
            namespace, resource_id, dimension = (props["ServiceNamespace"], props["ResourceId"],
                                                 props["ScalableDimension"])
        backend = _backend(account_id, region_name)
        if not backend._scalable_target_exists(resource_id, dimension):
            raise ValueError("ObjectNotFoundException",
                             f"No scalable target registered for service namespace: {namespace}, resource ID: "
                             f"{resource_id}, scalable dimension: {dimension}")
        policy_type = props.get("PolicyType")
        body = props.get("TargetTrackingScalingPolicyConfiguration") if policy_type == "TargetTrackingScaling" \
            else props.get("StepScalingPolicyConfiguration")
        if policy_type == "TargetTrackingScaling" and body and "TargetValue" in body:
            body = {**body, "TargetValue": float(body["TargetValue"])}  # template parameters arrive as strings
        name = props.get("PolicyName", resource_name)
        policy = backend.put_scaling_policy(name, namespace, resource_id, dimension, body or {}, policy_type)
        return cls(arn=policy.policy_arn, name=name, namespace=namespace, resource_id=resource_id,
                   dimension=dimension)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[override]
        cls, original_resource: "CfnScalingPolicy", new_resource_name: str, cloudformation_json: dict,
        account_id: str, region_name: str,
    ) -> "CfnScalingPolicy":
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        try:
            _backend(account_id, region_name).delete_scaling_policy(self.name, self.namespace, self.resource_id,
                                                                     self.dimension)
        except Exception:  # noqa: BLE001 - already gone (e.g. removed with its target): nothing to delete
            pass


def register() -> None:
    """Make moto's CloudFormation parser see the classes above (its type maps are lru-cached)."""
    from moto.cloudformation import parsing

    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
    missing = {cls.cloudformation_type() for cls in (CfnScalableTarget, CfnScalingPolicy)}
    missing -= set(parsing.get_model_map())
    if missing:
        raise RuntimeError(f"localaws: CloudFormation handlers not registered: {sorted(missing)}")
