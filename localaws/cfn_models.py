"""What localaws's own CloudFormation resource models share: ``Fn::GetAtt`` names read from the object."""

from __future__ import annotations

from typing import ClassVar

from moto.cloudformation.exceptions import UnformattedGetAttTemplateException


class AttributeModel:
    """Mixed in before ``CloudFormationModel`` (moto finds models among its direct subclasses only): GetAtt
    attributes are attributes of the object, ``CFN_ATTRIBUTES`` mapping each CloudFormation name (``Arn``) to the
    Python attribute holding it (``arn``)."""

    CFN_ATTRIBUTES: ClassVar[dict[str, str]] = {}

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.CFN_ATTRIBUTES

    def get_cfn_attribute(self, attribute_name: str) -> str:
        if attribute_name not in self.CFN_ATTRIBUTES:
            raise UnformattedGetAttTemplateException()
        return getattr(self, self.CFN_ATTRIBUTES[attribute_name])
