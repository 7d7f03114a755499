"""CloudWatch alarm states, read during the canary's bake.

The Monitoring component's serving alarms (5xx, 4xx, latency p99, prediction drift)
are the same signals the canary analysis judges; an alarm in ALARM during the bake
rolls the canary back even when the sampled metrics looked fine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.delivery.aws import make_client


@dataclass(frozen=True)
class AlarmState:
    """One alarm's name, state and CloudWatch's reason for it."""

    name: str
    state: str
    reason: str


def alarm_states(names: Sequence[str] = (), *, prefix: str | None = None, client: Any = None, endpoint_url: str | None = None) -> list[AlarmState]:
    """The states of the named alarms (or every alarm whose name starts with ``prefix``).

    A named alarm that does not exist is an error: a typo must not read as "all clear".
    """
    if not names and not prefix:
        raise ValueError("give alarm names or a name prefix")
    client = client or make_client("cloudwatch", endpoint_url=endpoint_url)
    request: dict[str, Any] = {"AlarmTypes": ["MetricAlarm", "CompositeAlarm"]}
    if names:
        request["AlarmNames"] = list(names)
    else:
        request["AlarmNamePrefix"] = prefix
    found: list[AlarmState] = []
    for page in client.get_paginator("describe_alarms").paginate(**request):
        for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
            found.append(AlarmState(alarm["AlarmName"], alarm["StateValue"], alarm.get("StateReason", "")))
    missing = sorted(set(names) - {a.name for a in found})
    if missing:
        raise LookupError(f"alarms not found: {', '.join(missing)}")
    return found


def firing(states: Sequence[AlarmState]) -> list[AlarmState]:
    """The alarms in ALARM state (INSUFFICIENT_DATA is not firing: a quiet canary has no data)."""
    return [s for s in states if s.state == "ALARM"]
