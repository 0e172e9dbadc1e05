"""CloudFormation handlers for ``AWS::ApiGatewayV2::{Api,Integration,Route,Stage}`` on moto's apigatewayv2 backend.

moto 5.2.5 has the apigatewayv2 control plane but no CloudFormation models for it: its stack parser logs
"No Moto CloudFormation support" and reports CREATE_COMPLETE with nothing behind. These classes subclass
moto's ``CloudFormationModel`` so its parser finds them (``register()`` clears the parser's type caches).

Example:
    >>> from localaws import cfn_apigatewayv2
    >>> cfn_apigatewayv2.register()  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from moto.apigatewayv2.models import apigatewayv2_backends
from moto.core.common_models import CloudFormationModel


def _backend(account_id: str, region_name: str) -> Any:
    return apigatewayv2_backends[account_id][region_name]


def _lower_first(value: Any) -> Any:
    """CloudFormation spells keys ``ThrottlingBurstLimit``, the API model ``throttlingBurstLimit``."""
    if isinstance(value, dict):
        return {key[:1].lower() + key[1:]: _lower_first(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_lower_first(item) for item in value]
    return value


class CfnHttpApi(CloudFormationModel):
    """``AWS::ApiGatewayV2::Api``: Ref = ApiId; GetAtt ApiEndpoint / ApiId."""

    def __init__(self, api: Any, account_id: str, region_name: str):
        self.api = api
        self.account_id = account_id
        self.region_name = region_name

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Api"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @property
    def physical_resource_id(self) -> str:
        return self.api.api_id

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("ApiEndpoint", "ApiId")

    def get_cfn_attribute(self, attribute_name: str) -> str:
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        if attribute_name == "ApiEndpoint":
            return self.api.api_endpoint
        if attribute_name == "ApiId":
            return self.api.api_id
        raise UnformattedGetAttTemplateException()

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict, account_id: str, region_name: str, **kwargs: Any
    ) -> "CfnHttpApi":
        props = cloudformation_json.get("Properties", {})
        api = _backend(account_id, region_name).create_api(
            api_key_selection_expression=props.get("ApiKeySelectionExpression"),
            cors_configuration=_lower_first(props.get("CorsConfiguration")),
            description=props.get("Description"),
            disable_schema_validation=props.get("DisableSchemaValidation"),
            disable_execute_api_endpoint=props.get("DisableExecuteApiEndpoint"),
            name=props.get("Name", resource_name),
            protocol_type=props.get("ProtocolType", "HTTP"),
            route_selection_expression=props.get("RouteSelectionExpression"),
            tags=props.get("Tags") or {},
            version=props.get("Version"),
        )
        return cls(api, account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[override]
        cls, original_resource: "CfnHttpApi", new_resource_name: str, cloudformation_json: dict,
        account_id: str, region_name: str,
    ) -> "CfnHttpApi":
        # Updated in place, as AWS does: the API id (and so the URL) stays the same.
        props = cloudformation_json.get("Properties", {})
        api = original_resource.api
        api.name = props.get("Name", api.name)
        api.description = props.get("Description")
        api.cors_configuration = _lower_first(props.get("CorsConfiguration"))
        return original_resource

    def delete(self, account_id: str, region_name: str) -> None:
        _backend(account_id, region_name).delete_api(self.api.api_id)


class _ApiChild:
    """A resource living inside one HTTP API (integration, route, stage); moto lists only direct
    subclasses of ``CloudFormationModel``, so each concrete class names it as a base too."""

    def __init__(self, api_id: str, child_id: str, account_id: str, region_name: str):
        self.api_id = api_id
        self.child_id = child_id
        self.account_id = account_id
        self.region_name = region_name

    @property
    def physical_resource_id(self) -> str:
        return self.child_id

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[override]
        cls, original_resource: "_ApiChild", new_resource_name: str, cloudformation_json: dict,
        account_id: str, region_name: str,
    ) -> "_ApiChild":
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

    def _api(self, account_id: str, region_name: str) -> Any:
        return _backend(account_id, region_name).apis.get(self.api_id)


class CfnIntegration(_ApiChild, CloudFormationModel):
    """``AWS::ApiGatewayV2::Integration``: Ref = IntegrationId."""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Integration"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict, account_id: str, region_name: str, **kwargs: Any
    ) -> "CfnIntegration":
        props = cloudformation_json.get("Properties", {})
        api = _backend(account_id, region_name).get_api(props["ApiId"])
        integration = api.create_integration(
            connection_type=props.get("ConnectionType"),
            description=props.get("Description"),
            integration_method=props.get("IntegrationMethod"),
            integration_type=props["IntegrationType"],
            integration_uri=props.get("IntegrationUri"),
            payload_format_version=props.get("PayloadFormatVersion"),
            timeout_in_millis=props.get("TimeoutInMillis"),
        )
        return cls(api.api_id, integration.id, account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        api = self._api(account_id, region_name)
        if api is not None:
            api.integrations.pop(self.child_id, None)


class CfnRoute(_ApiChild, CloudFormationModel):
    """``AWS::ApiGatewayV2::Route``: Ref = RouteId."""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Route"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict, account_id: str, region_name: str, **kwargs: Any
    ) -> "CfnRoute":
        props = cloudformation_json.get("Properties", {})
        api = _backend(account_id, region_name).get_api(props["ApiId"])
        route = api.create_route(
            api_key_required=props.get("ApiKeyRequired", False),
            authorization_scopes=props.get("AuthorizationScopes", []),
            route_key=props["RouteKey"],
            target=props.get("Target"),
            authorization_type=props.get("AuthorizationType", "NONE"),
            authorizer_id=props.get("AuthorizerId"),
        )
        return cls(api.api_id, route.route_id, account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        api = self._api(account_id, region_name)
        if api is not None:
            api.routes.pop(self.child_id, None)


class CfnStage(_ApiChild, CloudFormationModel):
    """``AWS::ApiGatewayV2::Stage``: Ref = StageName."""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Stage"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict, account_id: str, region_name: str, **kwargs: Any
    ) -> "CfnStage":
        props = cloudformation_json.get("Properties", {})
        api = _backend(account_id, region_name).get_api(props["ApiId"])
        config = _lower_first({key: value for key, value in props.items() if key != "ApiId"})
        stage = api.create_stage(config)
        return cls(api.api_id, stage.name, account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        api = self._api(account_id, region_name)
        if api is not None:
            api.stages.pop(self.child_id, None)


def register() -> None:
    """Make moto's CloudFormation parser see the classes above (its type maps are lru-cached)."""
    from moto.cloudformation import parsing

    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
    missing = {cls.cloudformation_type() for cls in (CfnHttpApi, CfnIntegration, CfnRoute, CfnStage)}
    missing -= set(parsing.get_model_map())
    if missing:
        raise RuntimeError(f"localaws: CloudFormation handlers not registered: {sorted(missing)}")
