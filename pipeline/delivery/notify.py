"""SNS notifications of each delivery stage's outcome.

The Monitoring component's topic is where people and chat integrations already listen
for alarms; stage outcomes go to the same topic with message attributes, so a
subscription filter can pick only failures.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.delivery.aws import make_client


def notify_stage(topic_arn: str, stage: str, ok: bool, detail: str, *, stack: str = "", client: Any = None, endpoint_url: str | None = None) -> str:
    """Publish one stage outcome; returns the SNS message id."""
    if not topic_arn.startswith("arn:aws"):
        raise ValueError(f"{topic_arn!r} is not an SNS topic ARN")
    client = client or make_client("sns", endpoint_url=endpoint_url)
    outcome = "succeeded" if ok else "failed"
    response = client.publish(
        TopicArn=topic_arn,
        Subject=f"[{stack or 'mlops'}] delivery stage {stage} {outcome}"[:100],
        Message=json.dumps({"stage": stage, "outcome": outcome, "detail": detail, "stack": stack}),
        MessageAttributes={
            "stage": {"DataType": "String", "StringValue": stage},
            "outcome": {"DataType": "String", "StringValue": outcome},
        },
    )
    return str(response["MessageId"])
