"""``deliver train --local``: the stack's compiled SageMaker definition, executed here.

The definition comes from the stack's program run under Pulumi's mocks (``infra.mocks``),
so it is the JSON ``pulumi up`` would hand to ``aws.sagemaker.Pipeline``: same compiler,
same stack config, same parameters. It then runs in the images ``make images`` built
(``pipeline.delivery.local_execution``), with S3 on an endpoint given by the caller
(moto's server on 127.0.0.1) and the tracking server given by the caller (the MLflow
image with basic auth), whose address replaces the in-cluster one the definition names.
The jobs read their MLflow credentials from the Secrets Manager secret the definition
names, on the same endpoint, exactly as in AWS. What differs from AWS, by necessity:
instance types, volumes and KMS keys are not enforced (one machine), and the jobs share
this host's network instead of the VPC's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.containers import image as local_image
from pipeline.containers import image_by_digest
from pipeline.delivery.datasets import ensure_bucket
from pipeline.delivery.local_execution import DefinitionExecutor, LocalExecution, podman_runner
from pipeline.sagemaker_compiler import (
    GATE_REFUSED_PREFIX,
    PARAM_GIT_COMMIT,
    PARAM_INPUT_DATA,
    PARAM_PROCESSING_IMAGE,
    PARAM_SERVING_IMAGE,
    PARAM_TRAINING_IMAGE,
    STEP_FAIL,
)

PIPELINE_RESOURCE = "aws:sagemaker/pipeline:Pipeline"
LOCAL_REGION = "us-east-1"


@dataclass(frozen=True)
class StackDefinition:
    """A stack's compiled definition and the names it refers to."""

    pipeline_name: str
    definition: dict[str, Any]
    credentials_secret_arn: str

    def parameter_default(self, name: str) -> str:
        return next(p.get("DefaultValue", "") for p in self.definition["Parameters"] if p["Name"] == name)


def stack_definition(stack: str) -> StackDefinition:
    """Compile ``stack``'s pipeline definition exactly as ``pulumi up`` does (under mocks)."""
    from infra.mocks import capture_stack

    capture = capture_stack(stack)
    found = [r for r in capture.resources if r.type == PIPELINE_RESOURCE]
    if len(found) != 1:
        raise RuntimeError(f"stack {stack} declares {len(found)} SageMaker pipelines; expected one")
    definition = json.loads(found[0].inputs["pipelineDefinition"])
    secrets = {value for step in _processing_steps(definition)
               for key, value in step["Arguments"].get("Environment", {}).items() if key == "MLOPS_MLFLOW_CREDENTIALS_SECRET"}
    return StackDefinition(found[0].inputs["pipelineName"], definition, next(iter(secrets), ""))


def _processing_steps(definition: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def visit(steps: list[dict[str, Any]]) -> None:
        for step in steps:
            if step["Type"] == "Processing":
                found.append(step)
            if step["Type"] == "Condition":
                visit(step["Arguments"].get("IfSteps", []))
                visit(step["Arguments"].get("ElseSteps", []))

    visit(definition["Steps"])
    return found


def execute_locally(stack_def: StackDefinition, *, s3: Any, tracking_uri: str, endpoint_url: str, workdir: Path,
                    git_commit: str = "local", input_data: str | None = None,
                    log: Any = print) -> LocalExecution:
    """Run ``stack_def`` with podman; the jobs reach S3/Secrets Manager at ``endpoint_url``."""
    parameters = {
        PARAM_PROCESSING_IMAGE: local_image("training"), PARAM_TRAINING_IMAGE: local_image("training"),
        PARAM_SERVING_IMAGE: image_by_digest("serving"), PARAM_GIT_COMMIT: git_commit,
    }
    if input_data:
        parameters[PARAM_INPUT_DATA] = input_data
    data_uri = input_data or stack_def.parameter_default(PARAM_INPUT_DATA)
    ensure_bucket(s3, data_uri)
    for step in _processing_steps(stack_def.definition):
        for output in step["Arguments"]["ProcessingOutputConfig"]["Outputs"]:
            uri = output["S3Output"]["S3Uri"]
            first = uri["Std:Join"]["Values"][0] if isinstance(uri, dict) else uri
            ensure_bucket(s3, first)
    env = {
        # The in-cluster address cannot resolve here: the caller's server stands in.
        "MLFLOW_TRACKING_URI": tracking_uri,
        "AWS_ENDPOINT_URL": endpoint_url, "AWS_DEFAULT_REGION": LOCAL_REGION, "AWS_REGION": LOCAL_REGION,
        # The stand-in endpoint accepts any key; real jobs use their execution role.
        "AWS_ACCESS_KEY_ID": "local-execution", "AWS_SECRET_ACCESS_KEY": "local-execution",
    }
    executor = DefinitionExecutor(stack_def.definition, s3=s3, runner=podman_runner(workdir / "logs"), workdir=workdir,
                                  parameters=parameters, env_overrides=env, pipeline_name=stack_def.pipeline_name, log=log)
    started = time.monotonic()
    execution = executor.run()
    log(f"execution {execution.execution_id} {execution.status} in {time.monotonic() - started:.0f} s")
    return execution


def is_gate_refusal(execution: LocalExecution) -> bool:
    """The execution ended in the gate's FailStep (a refusal, not an error)."""
    return execution.failed_step == STEP_FAIL and execution.failure_reason.startswith(GATE_REFUSED_PREFIX)


def seed_credentials_secret(secrets: Any, secret_arn: str, username: str, password: str) -> None:
    """Store MLflow credentials in the stand-in's Secrets Manager under the definition's secret.

    infra/mlflow_server.py writes this secret in AWS; moto resolves a full ARN by its
    last segment (``name-suffix``), so the stand-in secret takes that as its name.
    """
    name = secret_arn.rsplit(":", 1)[-1]
    value = json.dumps({"username": username, "password": password})
    try:
        secrets.put_secret_value(SecretId=name, SecretString=value)
    except secrets.exceptions.ResourceNotFoundException:
        secrets.create_secret(Name=name, SecretString=value)
