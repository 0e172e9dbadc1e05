"""CloudFormation handler for ``AWS::CloudWatch::Alarm`` on moto's CloudWatch backend.

moto 5.2.5 has the PutMetricAlarm API but no CloudFormation model for alarms, so a stack's alarms were skipped
("not supported by moto's CloudFormation implementation", no record). This puts each one as a real alarm
record (metric or metric-math form, actions, thresholds): DescribeAlarms lists what the template asked for.
Records only: nothing evaluates metrics here. Ref = the alarm name, GetAtt Arn = its ARN, as on AWS.

Example:
    >>> metric_queries([{"Id": "e", "Expression": "100 * a / b", "ReturnData": True}])[0].expression
    '100 * a / b'
"""

from __future__ import annotations

from typing import Any

from moto.cloudwatch.models import Dimension, Metric, MetricDataQuery, MetricStat, cloudwatch_backends
from moto.core.common_models import CloudFormationModel

from .cfn_models import AttributeModel


def _optional_int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def metric_queries(metrics: list[dict] | None) -> list[MetricDataQuery] | None:
    """The template's ``Metrics`` (metric math) as moto's query objects."""
    if not metrics:
        return None
    queries = []
    for query in metrics:
        stat = query.get("MetricStat")
        metric_stat = None
        if stat:
            metric = stat["Metric"]
            metric_stat = MetricStat(
                metric=Metric(metric_name=metric["MetricName"], namespace=metric.get("Namespace"),
                              dimensions=[Dimension(d["Name"], d["Value"]) for d in metric.get("Dimensions", [])]),
                period=str(stat["Period"]), stat=stat["Stat"], unit=stat.get("Unit"))
        queries.append(MetricDataQuery(query_id=query["Id"], label=query.get("Label"), period=query.get("Period"),
                                       return_data=query.get("ReturnData", True), expression=query.get("Expression"),
                                       metric_stat=metric_stat))
    return queries


class CfnAlarm(AttributeModel, CloudFormationModel):
    """``AWS::CloudWatch::Alarm``: Ref = alarm name."""

    CFN_ATTRIBUTES = {"Arn": "arn"}

    def __init__(self, *, name: str, arn: str):
        self.name = name
        self.arn = arn

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudWatch::Alarm"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "AlarmName"

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict, account_id: str, region_name: str, **kwargs: Any
    ) -> "CfnAlarm":
        props = cloudformation_json.get("Properties", {})
        alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=props.get("AlarmName") or resource_name,
            namespace=props.get("Namespace"),
            metric_name=props.get("MetricName"),
            metric_data_queries=metric_queries(props.get("Metrics")),
            comparison_operator=props["ComparisonOperator"],
            evaluation_periods=int(props["EvaluationPeriods"]),
            datapoints_to_alarm=_optional_int(props.get("DatapointsToAlarm")),
            period=_optional_int(props.get("Period")),
            threshold=float(props["Threshold"]),
            statistic=props.get("Statistic"),
            extended_statistic=props.get("ExtendedStatistic"),
            description=props.get("AlarmDescription", ""),
            dimensions=props.get("Dimensions", []),
            alarm_actions=props.get("AlarmActions", []),
            ok_actions=props.get("OKActions", []),
            insufficient_data_actions=props.get("InsufficientDataActions", []),
            unit=props.get("Unit"),
            actions_enabled=str(props.get("ActionsEnabled", True)).lower() != "false",
            treat_missing_data=props.get("TreatMissingData"),
        )
        return cls(name=alarm.name, arn=alarm.alarm_arn)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[override]
        cls, original_resource: "CfnAlarm", new_resource_name: str, cloudformation_json: dict,
        account_id: str, region_name: str,
    ) -> "CfnAlarm":
        name = cloudformation_json.get("Properties", {}).get("AlarmName") or original_resource.name
        return cls.create_from_cloudformation_json(name, cloudformation_json, account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        cloudwatch_backends[account_id][region_name].delete_alarms([self.name])


def register() -> None:
    """Make moto's CloudFormation parser see CfnAlarm (its type maps are lru-cached)."""
    from moto.cloudformation import parsing

    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
    if CfnAlarm.cloudformation_type() not in parsing.get_model_map():
        raise RuntimeError("localaws: CloudFormation handler for AWS::CloudWatch::Alarm not registered")
