"""Read CloudWatch Embedded Metric Format records the way CloudWatch Logs does, failing on anything it would reject.

The rules checked (from the EMF specification): ``_aws.Timestamp`` is epoch milliseconds, each
``CloudWatchMetrics`` directive names a namespace, dimension sets of at most 30 names whose values are
top-level strings, and metrics whose values are top-level numbers, each with a CloudWatch unit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

CLOUDWATCH_UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
    "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
    "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
    "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
}


@dataclass(frozen=True)
class Datum:
    namespace: str
    name: str
    unit: str
    value: float
    dimensions: tuple[tuple[str, str], ...]


def emf_data(record: dict) -> list[Datum]:
    """Every metric datum CloudWatch would extract from one log record (AssertionError if it is malformed)."""
    aws = record["_aws"]
    assert isinstance(aws["Timestamp"], int) and aws["Timestamp"] > 1_500_000_000_000, aws["Timestamp"]
    data = []
    for directive in aws["CloudWatchMetrics"]:
        namespace = directive["Namespace"]
        assert isinstance(namespace, str) and 1 <= len(namespace) <= 255
        for dimension_set in directive["Dimensions"]:
            assert 1 <= len(dimension_set) <= 30
            for name in dimension_set:
                assert isinstance(record.get(name), str) and record[name], f"dimension {name}: {record.get(name)!r}"
        for metric in directive["Metrics"]:
            name, unit = metric["Name"], metric.get("Unit", "None")
            assert unit in CLOUDWATCH_UNITS, f"{name}: unit {unit!r}"
            value = record.get(name)
            assert isinstance(value, (int, float)) and not isinstance(value, bool), f"metric {name}: {value!r}"
            for dimension_set in directive["Dimensions"]:
                data.append(Datum(namespace, name, unit, value, tuple((d, record[d]) for d in dimension_set)))
    return data


def emf_records(log_text: str) -> list[dict]:
    """The JSON lines of a function log that carry an ``_aws`` block (START/END/REPORT lines skipped)."""
    records = []
    for line in log_text.splitlines():
        line = line.strip()
        if line.startswith("{") and '"_aws"' in line:
            records.append(json.loads(line))
    return records
