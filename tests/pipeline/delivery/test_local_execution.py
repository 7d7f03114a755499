"""The local executor evaluates a compiled definition as SageMaker does.

The jobs here are test doubles (a runner that writes what each step's container would
write into its mounts), so these tests pin the engine: step order from property
references, S3 staging in and out, SageMaker's training contract, the condition over
the property file, the Fail step's message, and failures that stop the execution.
tests/images/test_local_execution.py runs the same engine on the real images.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.delivery.local_execution import ContainerJob, DefinitionError, DefinitionExecutor
from tests.images.sagemaker_definition import compiled_definition

DATA_URI = "s3://mlops-dev-data/datasets/adult-income/"


class FakeJobs:
    """Plays each step's container: reads its input mounts, writes its output mounts."""

    def __init__(self, *, gate_passed: bool = True, fail: str | None = None) -> None:
        self.gate_passed = gate_passed
        self.fail = fail
        self.jobs: list[ContainerJob] = []

    def __call__(self, job: ContainerJob) -> tuple[int, str]:
        self.jobs.append(job)
        if job.step == self.fail:
            return 4, "validation failed: 3 problems"
        mounts = {path: host for host, path, _ in job.mounts}
        outputs = {path: host for host, path, read_only in job.mounts if not read_only}
        if job.step == "Validate":
            text = (mounts["/opt/ml/processing/input/data"] / "adult.csv").read_text()
            (outputs["/opt/ml/processing/output/validated"] / "data.csv").write_text(text + "validated\n")
        elif job.step == "Split":
            validated = (mounts["/opt/ml/processing/input/validated"] / "data.csv").read_text()
            for name in ("train", "validation", "holdout"):
                (outputs[f"/opt/ml/processing/output/{name}"] / f"{name}.csv").write_text(validated + name)
        elif job.step == "Train":
            hyper = json.loads((mounts["/opt/ml/input/config"] / "hyperparameters.json").read_text())
            train = (mounts["/opt/ml/input/data/train"] / "train.csv").read_text()
            (outputs["/opt/ml/model"] / "model.json").write_text(json.dumps({"hyper": hyper, "trained_on": train}))
        elif job.step == "EvaluateAndGate":
            reasons = [] if self.gate_passed else ["roc_auc 0.61 < 0.85"]
            (outputs["/opt/ml/processing/output/evaluation"] / "evaluation.json").write_text(
                json.dumps({"gate": {"passed": self.gate_passed, "reasons": reasons}}))
        elif job.step == "Register":
            (outputs["/opt/ml/processing/output/registered"] / "registration.json").write_text('{"version": "1"}')
        return 0, f"{job.step} done"


@pytest.fixture(scope="module")
def definition() -> str:
    return compiled_definition("dev")


@pytest.fixture()
def s3(aws: Callable[[str], Any]) -> Any:
    client = aws("s3")
    for bucket in ("mlops-dev-data", "mlops-dev-artifacts"):
        client.create_bucket(Bucket=bucket)
    client.put_object(Bucket="mlops-dev-data", Key="datasets/adult-income/adult.csv", Body=b"age,label\n39,0\n")
    return client


def execute(definition: str, s3: Any, tmp_path: Path, jobs: FakeJobs, **kwargs: Any) -> Any:
    executor = DefinitionExecutor(definition, s3=s3, runner=jobs, workdir=tmp_path,
                                  env_overrides={"MLFLOW_TRACKING_URI": "http://127.0.0.1:5999", "AWS_ENDPOINT_URL": "http://127.0.0.1:1"},
                                  **kwargs)
    return executor.run()


def test_a_passing_gate_runs_every_step_in_order_and_registers(definition: str, s3: Any, tmp_path: Path) -> None:
    jobs = FakeJobs(gate_passed=True)
    execution = execute(definition, s3, tmp_path, jobs)
    assert execution.succeeded, execution.failure_reason
    assert [step.name for step in execution.steps] == ["Validate", "Split", "Train", "EvaluateAndGate", "GateCheck", "Register"]
    assert [job.step for job in jobs.jobs] == ["Validate", "Split", "Train", "EvaluateAndGate", "Register"]
    # Each output reached S3 under this execution's folder, and the next step's input came from there.
    model = execution.properties["Train"]["ModelArtifacts"]["S3ModelArtifacts"]
    assert model.startswith(f"s3://mlops-dev-artifacts/pipeline/{execution.execution_id}/Train/") and model.endswith("/output/model/")
    bucket, key = model[5:].split("/", 1)
    trained = json.loads(s3.get_object(Bucket=bucket, Key=key + "model.json")["Body"].read())
    assert trained["trained_on"] == "age,label\n39,0\nvalidated\ntrain"
    assert trained["hyper"] == {"max_depth": "5", "n_estimators": "60"}, "hyperparameters reach the job as strings"


def test_jobs_run_with_the_definitions_image_entrypoint_and_environment(definition: str, s3: Any, tmp_path: Path) -> None:
    jobs = FakeJobs()
    execute(definition, s3, tmp_path, jobs, parameters={"ProcessingImageUri": "localhost/x/training:test",
                                                        "TrainingImageUri": "localhost/x/training:test", "GitCommit": "abc123"})
    validate, _, train, gate, register = jobs.jobs
    assert validate.image == "localhost/x/training:test"
    assert validate.entrypoint == ["job-entry", "python", "-m", "pipeline", "step", "validate"]
    assert validate.args == ["--input", "/opt/ml/processing/input/data", "--output", "/opt/ml/processing/output/validated"]
    assert validate.env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5999", "the in-cluster address is replaced"
    assert validate.env["MLOPS_MLFLOW_CREDENTIALS_SECRET"].startswith("arn:aws:secretsmanager:")
    assert all(read_only for _, path, read_only in validate.mounts if path.startswith("/opt/ml/processing/input"))
    assert train.entrypoint is None and train.args == ["train"]
    assert train.env["MLOPS_GIT_COMMIT"] == "abc123" and train.env["TRAINING_JOB_NAME"].endswith("-Train")
    assert not any(key.startswith("SM_") for key in train.env), "SageMaker sets no SM_* variables for a custom image"
    assert "--param" in gate.args and "min_roc_auc=0.85" in gate.args
    assert "git_commit=abc123" in register.args


def test_a_refusing_gate_ends_in_the_fail_step_with_its_reasons(definition: str, s3: Any, tmp_path: Path) -> None:
    jobs = FakeJobs(gate_passed=False)
    execution = execute(definition, s3, tmp_path, jobs)
    assert execution.status == "Failed" and execution.failed_step == "GateRefused"
    assert execution.failure_reason == 'Gate refused the challenger: ["roc_auc 0.61 < 0.85"]'
    assert "Register" not in [job.step for job in jobs.jobs]


def test_a_failing_job_stops_the_execution_with_its_exit_code_and_logs(definition: str, s3: Any, tmp_path: Path) -> None:
    jobs = FakeJobs(fail="Validate")
    execution = execute(definition, s3, tmp_path, jobs)
    assert execution.failed_step == "Validate"
    assert "exited 4" in execution.failure_reason and "validation failed" in execution.failure_reason
    assert [job.step for job in jobs.jobs] == ["Validate"]


def test_an_empty_input_prefix_fails_the_step_that_reads_it(definition: str, s3: Any, tmp_path: Path) -> None:
    execution = execute(definition, s3, tmp_path, FakeJobs(), parameters={"InputDataUri": "s3://mlops-dev-data/datasets/nothing-here/"})
    assert execution.failed_step == "Validate"
    assert "no objects under s3://mlops-dev-data/datasets/nothing-here/" in execution.failure_reason


def test_unknown_execution_parameters_are_refused(definition: str, s3: Any, tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="unknown execution parameter"):
        DefinitionExecutor(definition, s3=s3, runner=FakeJobs(), workdir=tmp_path, parameters={"InputDataURI": "s3://x/"})


def test_a_reference_to_a_step_that_never_ran_is_an_error_not_a_guess(s3: Any, tmp_path: Path) -> None:
    definition = {"Parameters": [], "Steps": [{"Name": "Only", "Type": "Fail", "Arguments": {
        "ErrorMessage": {"Get": "Steps.Missing.ProcessingOutputConfig.Outputs['x'].S3Output.S3Uri"}}}]}
    execution = DefinitionExecutor(definition, s3=s3, runner=FakeJobs(), workdir=tmp_path).run()
    assert execution.failed_step == "Only" and "step Missing has not run" in execution.failure_reason
