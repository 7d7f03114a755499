"""Read a compiled SageMaker pipeline definition the way SageMaker starts its jobs.

The image tests run each job from the definition's own JSON, never from a restatement:
the Processing job's ``ContainerEntrypoint``/``ContainerArguments``, ``Environment`` and
``ProcessingInputs``/``Outputs`` local paths; the Training job's channels and its
hyperparameters, which SageMaker writes to ``hyperparameters.json`` as strings. A value
that is a property reference (``{"Get": ...}``) is resolved by the caller from what the
earlier steps produced.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=4)
def compiled_definition(stack: str = "dev") -> str:
    """The definition ``pulumi up`` would hand to ``aws.sagemaker.Pipeline`` for a typical stack."""
    from pipeline.sagemaker_compiler import PipelineSpec, compile_pipeline_definition
    from pipeline.steps.gate import GateThresholds

    account = "123456789012"
    digest = f"{account}.dkr.ecr.us-east-1.amazonaws.com/mlops-{stack}-training@sha256:" + "a" * 64
    spec = PipelineSpec(
        pipeline_name=f"mlops-{stack}-training", role_arn=f"arn:aws:iam::{account}:role/mlops-{stack}-sagemaker",
        processing_image_uri=digest, training_image_uri=digest, gpu_instance_type="ml.g5.xlarge",
        processing_instance_type="ml.m5.large", data_s3_uri=f"s3://mlops-{stack}-data/datasets/adult-income/",
        artifacts_s3_prefix=f"s3://mlops-{stack}-artifacts/pipeline/",
        kms_key_id=f"arn:aws:kms:us-east-1:{account}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        mlflow_tracking_uri="http://mlflow.mlops.svc.cluster.local:5000", gate=GateThresholds(),
        mlflow_credentials_secret_arn=f"arn:aws:secretsmanager:us-east-1:{account}:secret:mlops-{stack}-mlflow-credentials-AbCdEf",
        hyperparameters={"n_estimators": 60, "max_depth": 5},
    )
    return compile_pipeline_definition(spec)


def steps(definition: str) -> dict[str, dict[str, Any]]:
    """Every step by name, the Condition's branches included."""
    found: dict[str, dict[str, Any]] = {}

    def visit(items: list[dict[str, Any]]) -> None:
        for step in items:
            found[step["Name"]] = step
            args = step.get("Arguments", {})
            if isinstance(args, dict):
                visit(args.get("IfSteps", []))
                visit(args.get("ElseSteps", []))

    visit(json.loads(definition)["Steps"])
    return found


def literal_env(environment: dict[str, Any]) -> dict[str, str]:
    """The job's environment; a property reference here would need an execution to resolve."""
    unresolved = [key for key, value in environment.items() if not isinstance(value, str)]
    if unresolved:
        raise ValueError(f"environment values {unresolved} are property references: resolve them first")
    return dict(environment)
