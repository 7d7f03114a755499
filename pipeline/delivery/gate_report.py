"""Read the gate's outcome that the SageMaker pipeline left in S3.

The EvaluateAndGate step writes ``evaluation.json`` (docs/contracts.md) under
``<artifacts prefix>/<execution id>/EvaluateAndGate/evaluation/``; the ``train`` stage
prints it so a refusal's reasons and metrics are in the CodeBuild log, not only in the
SageMaker console.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pipeline.delivery.aws import make_client
from pipeline.sagemaker_compiler import EVALUATION_FILE, EVALUATION_OUTPUT, STEP_EVALUATE


@dataclass(frozen=True)
class GateOutcome:
    """The gate's decision, its reasons and the metrics it judged."""

    passed: bool
    reasons: tuple[str, ...]
    metrics: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        """A short report for a log: decision, each reason, each metric."""
        lines = [f"gate: {'PASSED' if self.passed else 'REFUSED'}"]
        lines += [f"  - {reason}" for reason in self.reasons]
        lines += [f"  {name} = {value}" for name, value in sorted(self.metrics.items())]
        return "\n".join(lines)


def parse_evaluation(document: Any) -> GateOutcome:
    """A :class:`GateOutcome` from a parsed ``evaluation.json``; refuses other shapes."""
    if not isinstance(document, dict) or not isinstance(document.get("gate"), dict):
        raise ValueError("evaluation.json must be an object with a 'gate' object")
    gate = document["gate"]
    if not isinstance(gate.get("passed"), bool):
        raise ValueError("evaluation.json: gate.passed must be true or false")
    reasons = gate.get("reasons", [])
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise ValueError("evaluation.json: gate.reasons must be a list of strings")
    metrics = document.get("metrics", {})
    if not isinstance(metrics, dict):
        raise ValueError("evaluation.json: metrics must be an object")
    return GateOutcome(passed=gate["passed"], reasons=tuple(reasons), metrics=metrics)


def evaluation_uri(artifacts_s3_prefix: str, execution_arn: str) -> str:
    """Where the execution's ``evaluation.json`` is, from the compiler's layout."""
    if not artifacts_s3_prefix.startswith("s3://"):
        raise ValueError(f"artifacts prefix {artifacts_s3_prefix!r} is not an s3:// URI")
    execution_id = execution_arn.rsplit("/", 1)[-1]
    return f"{artifacts_s3_prefix.rstrip('/')}/{execution_id}/{STEP_EVALUATE}/{EVALUATION_OUTPUT}/{EVALUATION_FILE}"


def read_gate_outcome(uri: str, *, client: Any = None, endpoint_url: str | None = None) -> GateOutcome:
    """Fetch and parse ``evaluation.json`` at the ``s3://`` ``uri``."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    bucket, key = uri[5:].split("/", 1)
    client = client or make_client("s3", endpoint_url=endpoint_url)
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    try:
        document = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{uri} is not JSON: {exc}") from exc
    return parse_evaluation(document)
