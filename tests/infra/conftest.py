"""Fixtures for the infrastructure tests: the SDK-built pipeline definition and both
stacks' programs captured once per session under Pulumi's mocks.

Capturing a whole stack takes seconds, and many tests read the same graph, so dev and
prod are each built once (in the same process: the program is a function, not a
module-level script) and shared read-only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.mocks import Capture, capture_stack
from infra.plan import write_plan

REPO_ROOT = Path(__file__).resolve().parents[2]
STACKS = ("dev", "prod")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The SageMaker SDK and pulumi_kubernetes warn about their own internals on import."""
    for item in items:
        if "tests/infra/" in str(item.fspath):
            item.add_marker(pytest.mark.filterwarnings("ignore::DeprecationWarning"))
            item.add_marker(pytest.mark.filterwarnings("ignore::SyntaxWarning"))


@pytest.fixture(scope="session")
def sdk_definition() -> str:
    """A SageMaker pipeline definition built by the SDK 3.x through our compiler."""
    from pipeline.sagemaker_compiler import PipelineSpec, compile_pipeline_definition

    registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    spec = PipelineSpec(
        pipeline_name="mlops-test-training",
        role_arn="arn:aws:iam::123456789012:role/mlops-test-training-sagemaker",
        processing_image_uri=f"{registry}/mlops-test/serving@sha256:{'a' * 64}",
        training_image_uri=f"{registry}/mlops-test/training@sha256:{'b' * 64}",
        gpu_instance_type="ml.g5.xlarge", processing_instance_type="ml.m5.xlarge",
        data_s3_uri="s3://mlops-test-artifacts/datasets/adult-income/",
        artifacts_s3_prefix="s3://mlops-test-artifacts/sagemaker",
        kms_key_id="arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        mlflow_tracking_uri="http://internal-mlflow.elb.eu-west-1.amazonaws.com",
        mlflow_credentials_secret_arn="arn:aws:secretsmanager:eu-west-1:123456789012:secret:mlops-test-mlflow-credentials-AbCdEf")
    return compile_pipeline_definition(spec)


@pytest.fixture(scope="session")
def captured(sdk_definition: str) -> dict[str, Capture]:
    """Both stacks' whole programs, from their real stack files, built under mocks."""
    return {stack: capture_stack(stack) for stack in STACKS}


@pytest.fixture(scope="session")
def plans(captured: dict[str, Capture], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """The offline plan files (inventory, kubernetes.yaml, plan.json) of both stacks."""
    root = tmp_path_factory.mktemp("plan")
    return {stack: write_plan(capture, root / stack) for stack, capture in captured.items()}
