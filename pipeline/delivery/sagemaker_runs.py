"""Start a SageMaker pipeline execution, wait for it, and say how it ended.

The ``train`` delivery stage starts the pipeline compiled by
``pipeline.sagemaker_compiler`` and must fail the CodeBuild stage when the execution
fails, is stopped, or outlives its time budget. A gate refusal is a failure of the
execution (the pipeline's FailStep), told apart from other failures by the FailStep's
message prefix so the stage can exit with ``GATE_REFUSED`` instead of ``ERROR``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.delivery.aws import make_client
from pipeline.sagemaker_compiler import GATE_REFUSED_PREFIX, IMAGE_PARAMETERS, PARAM_GIT_COMMIT, PARAM_INPUT_DATA, STEP_FAIL, is_digest_image

TERMINAL_OK = "Succeeded"
TERMINAL_BAD = ("Failed", "Stopped")
RUNNING = ("Executing", "Stopping")


class ExecutionFailed(Exception):
    """The execution ended Failed or Stopped, or did not end in time."""

    def __init__(self, arn: str, status: str, reason: str) -> None:
        super().__init__(f"SageMaker pipeline execution {arn} {status.lower()}: {reason}")
        self.arn = arn
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class ExecutionResult:
    """A finished execution: its ARN, terminal status and how long we waited."""

    arn: str
    status: str
    waited_s: float
    polls: int


def execution_parameters(images: Mapping[str, str] | None, *, git_commit: str, input_data: str | None = None) -> dict[str, str]:
    """The execution parameters for one push: its commit and its freshly built images.

    The definition was compiled at ``pulumi up`` with that moment's digests as defaults;
    a push that changed training code built new images, and without overriding
    ``ProcessingImageUri``/``TrainingImageUri`` the pipeline would train with the old
    ones. ``images`` is ``images.json`` from ``deliver build-images`` (role -> image);
    when given, the training and serving images must be in it (Register records the
    serving one for Deploy) and every value must be referenced by digest, else
    ``ValueError`` before anything is started. ``None`` (a run by hand without an
    images file) keeps the definition's defaults.
    """
    parameters = {PARAM_GIT_COMMIT: git_commit}
    if input_data:
        parameters[PARAM_INPUT_DATA] = input_data
    if images is None:
        return parameters
    problems = [f"{role}={uri!r} is not referenced by digest (repo@sha256:<64 hex>)" for role, uri in sorted(images.items()) if not is_digest_image(uri)]
    # The serving digest is required too: Register records it as the version's
    # image_digest, which is what the Deploy stage later rolls out.
    missing = sorted(set(IMAGE_PARAMETERS.values()) - set(images))
    problems += [f"no {role!r} image" for role in missing]
    if problems:
        raise ValueError("images file refused: " + "; ".join(problems))
    for name, role in IMAGE_PARAMETERS.items():
        if role in images:
            parameters[name] = images[role]
    return parameters


def start_execution(
    pipeline_name: str,
    parameters: Mapping[str, str],
    *,
    display_name: str | None = None,
    client: Any = None,
    endpoint_url: str | None = None,
) -> str:
    """Start ``pipeline_name`` with ``parameters``; returns the execution ARN.

    Parameters are the compiled pipeline's (``InputDataUri``, ``GitCommit``,
    ``ServingImageUri``, ``ProcessingImageUri``, ``TrainingImageUri``: see
    :func:`execution_parameters`); an empty name is refused before any call is made.
    """
    if not pipeline_name:
        raise ValueError("pipeline_name is required to start an execution")
    client = client or make_client("sagemaker", endpoint_url=endpoint_url)
    request: dict[str, Any] = {
        "PipelineName": pipeline_name,
        "PipelineParameters": [{"Name": k, "Value": str(v)} for k, v in sorted(parameters.items())],
    }
    if display_name:
        request["PipelineExecutionDisplayName"] = display_name[:82]
    return str(client.start_pipeline_execution(**request)["PipelineExecutionArn"])


def wait_for_execution(
    arn: str,
    *,
    timeout_s: float,
    poll_s: float = 30.0,
    client: Any = None,
    endpoint_url: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ExecutionResult:
    """Poll the execution until it ends; raise :class:`ExecutionFailed` unless Succeeded.

    On timeout the execution is stopped (so a stuck GPU job stops costing money) and
    the error says so. ``sleep``/``clock`` are injectable so tests need not wait.
    """
    if timeout_s <= 0 or poll_s <= 0:
        raise ValueError(f"timeout_s and poll_s must be positive, got {timeout_s} and {poll_s}")
    client = client or make_client("sagemaker", endpoint_url=endpoint_url)
    start = clock()
    polls = 0
    while True:
        described = client.describe_pipeline_execution(PipelineExecutionArn=arn)
        polls += 1
        status = str(described.get("PipelineExecutionStatus", "Unknown"))
        if status == TERMINAL_OK:
            return ExecutionResult(arn=arn, status=status, waited_s=clock() - start, polls=polls)
        if status in TERMINAL_BAD:
            raise ExecutionFailed(arn, status, str(described.get("FailureReason") or "no reason given"))
        if status not in RUNNING:
            raise ExecutionFailed(arn, status, f"unexpected execution status {status!r}")
        if clock() - start >= timeout_s:
            # The token (32-128 chars) makes a retried stop idempotent for this execution.
            token = hashlib.sha256(f"stop:{arn}".encode()).hexdigest()
            client.stop_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken=token)
            raise ExecutionFailed(arn, "TimedOut", f"still {status} after {timeout_s:.0f} s; stop requested")
        sleep(poll_s)


def failed_step_reasons(arn: str, *, client: Any = None, endpoint_url: str | None = None) -> dict[str, str]:
    """``{step name: failure reason}`` for every failed step of the execution.

    moto does not implement ``list_pipeline_execution_steps``: its tests use a recording
    double (docs/delivery.md says so).
    """
    client = client or make_client("sagemaker", endpoint_url=endpoint_url)
    reasons: dict[str, str] = {}
    token: str | None = None
    while True:
        request: dict[str, Any] = {"PipelineExecutionArn": arn, "SortOrder": "Ascending"}
        if token:
            request["NextToken"] = token
        page = client.list_pipeline_execution_steps(**request)
        for step in page.get("PipelineExecutionSteps", []):
            if step.get("StepStatus") == "Failed":
                reasons[str(step["StepName"])] = str(step.get("FailureReason") or "")
        token = page.get("NextToken")
        if not token:
            return reasons


def gate_refusal_reason(step_reasons: Mapping[str, str], execution_reason: str = "") -> str | None:
    """The gate's refusal message when the execution failed at the gate, else None.

    The FailStep's message starts with the compiler's ``GATE_REFUSED_PREFIX``; the
    execution-level ``FailureReason`` repeats it, so either is enough.
    """
    for text in (step_reasons.get(STEP_FAIL, ""), execution_reason):
        if GATE_REFUSED_PREFIX in text:
            return text[text.index(GATE_REFUSED_PREFIX) + len(GATE_REFUSED_PREFIX):].strip()
    return None
