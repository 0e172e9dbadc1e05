"""Read and evaluate CloudFormation templates for the infra tests.

Templates are read with cfn-lint's own CFN-tag-aware loader (``!Sub``, ``!GetAtt`` ... become the long
``Fn::`` form), then evaluated for concrete parameter values by :class:`StackView`: conditions are
decided, inactive resources dropped, and ``Ref``/``Fn::Sub``/``Fn::Select``/``Fn::Split``/``Fn::If``
resolved, so tests assert what CloudFormation would actually create rather than the raw YAML.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

REPO_ROOT = Path(__file__).resolve().parents[3]
ROOT_TEMPLATE = REPO_ROOT / "template.yaml"
NESTED_TEMPLATES = {"gpu": REPO_ROOT / "infra" / "gpu.yaml", "inferentia": REPO_ROOT / "infra" / "inferentia.yaml"}
ALL_TEMPLATES = [ROOT_TEMPLATE, *NESTED_TEMPLATES.values()]

PSEUDO_PARAMETERS = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "det",
}
NO_VALUE = object()


def load_template(path: Path) -> dict:
    """Parse a template with cfn-lint's loader; a parse error fails loudly.

    Example:
        >>> load_template(ROOT_TEMPLATE)["Parameters"]["Backend"]["Default"]
        'lambda'
    """
    template, matches = decode(str(path))
    if matches or template is None:
        raise AssertionError(f"{path} does not parse: {[str(m) for m in matches]}")
    return template


def ref_token(name: str) -> str:
    """Placeholder a resolved ``Ref`` to a resource becomes, e.g. ``ref(HttpApi)``."""
    return f"ref({name})"


def getatt_token(resource: str, attribute: str) -> str:
    """Placeholder a resolved ``Fn::GetAtt`` becomes, e.g. ``getatt(GpuStack.Outputs.EndpointArn)``."""
    return f"getatt({resource}.{attribute})"


class StackView:
    """A template as it would deploy with ``parameters`` (missing ones take their Default).

    Example:
        >>> view = StackView(load_template(NESTED_TEMPLATES["gpu"]), {"ModelS3Uri": "s3://b/m/"})
        >>> view.resolve(view.resources["Model"]["Properties"]["PrimaryContainer"]["ModelDataUrl"])
        's3://b/m/gpu/model.tar.gz'
    """

    def __init__(self, template: dict, parameters: dict[str, Any]):
        self.template = template
        declared = template.get("Parameters", {})
        unknown = set(parameters) - set(declared)
        if unknown:
            raise KeyError(f"parameters not declared by the template: {sorted(unknown)}")
        self.parameters: dict[str, Any] = {}
        for name, spec in declared.items():
            if name in parameters:
                value = parameters[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise KeyError(f"parameter {name} has no Default and was not given")
            if spec["Type"] == "CommaDelimitedList" and isinstance(value, str):
                value = [item.strip() for item in value.split(",")]
            self.parameters[name] = value
        self._conditions: dict[str, bool] = {}
        self.resources = {
            name: resource
            for name, resource in template["Resources"].items()
            if "Condition" not in resource or self.condition(resource["Condition"])
        }

    def condition(self, name: str) -> bool:
        """Evaluate a named condition (memoised)."""
        if name not in self._conditions:
            self._conditions[name] = bool(self._eval_condition(self.template["Conditions"][name]))
        return self._conditions[name]

    def _eval_condition(self, node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            (key, args), = node.items()
            if key == "Condition":
                return self.condition(args)
            if key == "Fn::Equals":
                left, right = (self._eval_condition(arg) for arg in args)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self._eval_condition(args[0])
            if key == "Fn::And":
                return all(self._eval_condition(arg) for arg in args)
            if key == "Fn::Or":
                return any(self._eval_condition(arg) for arg in args)
        return self.resolve(node)

    def resolve(self, node: Any) -> Any:
        """Resolve intrinsics in ``node``; resources become ``ref(X)``/``getatt(X.Attr)`` tokens.

        Referring to a resource that is inactive for these parameters raises, as CloudFormation would.
        """
        if isinstance(node, list):
            return [item for item in (self.resolve(v) for v in node) if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, args), = node.items()
            handler = {
                "Ref": self._ref,
                "Fn::GetAtt": self._getatt,
                "Fn::Sub": self._sub,
                "Fn::If": self._if,
                "Fn::Select": lambda a: self.resolve(a[1])[int(self.resolve(a[0]))],
                "Fn::Split": lambda a: self.resolve(a[1]).split(a[0]),
                "Fn::Join": lambda a: a[0].join(str(v) for v in self.resolve(a[1])),
            }.get(key)
            if handler is not None:
                return handler(args)
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if name in self.parameters:
            return self.parameters[name]
        self._require_active(name)
        return ref_token(name)

    def _getatt(self, args: Any) -> str:
        resource, attribute = args.split(".", 1) if isinstance(args, str) else args
        self._require_active(resource)
        return getatt_token(resource, attribute)

    def _require_active(self, name: str) -> None:
        if name not in self.resources:
            raise LookupError(f"{name} is referenced but not created with {self.parameters}")

    def _if(self, args: list) -> Any:
        condition, when_true, when_false = args
        return self.resolve(when_true if self.condition(condition) else when_false)

    def _sub(self, args: Any) -> str:
        text, variables = (args, {}) if isinstance(args, str) else args
        values = {key: self.resolve(value) for key, value in variables.items()}

        def substitute(match: re.Match) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in values:
                return str(values[name])
            if "." in name and name.split(".", 1)[0] not in PSEUDO_PARAMETERS:
                return self._getatt(name)
            return str(self._ref(name))

        return re.sub(r"\$\{([^}]+)\}", substitute, text)
