"""The ``deliver`` stages through the CLI, against moto's server on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.exit_codes import ExitCode

from .test_aws_clients import DEFINITION, ROLE, push_image

FRESH_IMAGES = {
    "training": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops-training@sha256:" + "c" * 64,
    "serving": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops-serving@sha256:" + "d" * 64,
}


def test_train_stage_starts_waits_and_writes_the_release(aws: Any, moto_endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The stage names the release from the execution's registration.json (moto runs no
    step, so the test writes what the register step would: v2 passed the gate against v1)."""
    from pipeline.delivery import sagemaker_runs
    from pipeline.delivery.release import read_release, registration_uri

    from .release_harness import build_registry

    aws("sagemaker").create_pipeline(PipelineName="mlops-dev-training", PipelineDefinition=DEFINITION, RoleArn=ROLE)
    aws("s3").create_bucket(Bucket="mlops-dev-artifacts")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{build_registry(tmp_path / 'mlflow.db')}")
    real_wait = sagemaker_runs.wait_for_execution

    def wait(arn: str, **kwargs: Any) -> Any:
        bucket, key = registration_uri("s3://mlops-dev-artifacts/pipeline", arn)[5:].split("/", 1)
        aws("s3").put_object(Bucket=bucket, Key=key, Body=json.dumps({"version": "2", "promoted": True, "alias": "candidate"}).encode())
        return real_wait(arn, **kwargs)

    monkeypatch.setattr(sagemaker_runs, "wait_for_execution", wait)
    images = tmp_path / "images.json"
    images.write_text(json.dumps(FRESH_IMAGES))
    code = main(["deliver", "train", "--endpoint-url", moto_endpoint, "--pipeline-name", "mlops-dev-training", "--git-commit", "abc123",
                 "--images", str(images), "--poll-s", "1", "--timeout-s", "30", "--artifacts-prefix", "s3://mlops-dev-artifacts/pipeline",
                 "--release-out", str(tmp_path / "release.json")])
    out = capsys.readouterr().out
    assert code == ExitCode.OK, out
    assert "train: ok" in out and "Succeeded" in out
    arn = out.split("started ", 1)[1].split()[0]
    release = read_release(tmp_path / "release.json")
    assert (release.release_id, release.version, release.base_champion, release.image, release.git_commit) == (
        arn, "2", "1", FRESH_IMAGES["serving"], "abc123")
    # What moto's server received in start_pipeline_execution: this push's digests.
    params = aws("sagemaker").list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
    assert {p["Name"]: p["Value"] for p in params} == {
        "GitCommit": "abc123",
        "ServingImageUri": FRESH_IMAGES["serving"],
        "TrainingImageUri": FRESH_IMAGES["training"],
        "ProcessingImageUri": FRESH_IMAGES["training"],
    }


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ({"training": "r/mlops-training:abc123", "serving": "r/mlops-serving@sha256:" + "a" * 64}, "training='r/mlops-training:abc123' is not referenced by digest"),
        ({"serving": "r/mlops-serving@sha256:" + "a" * 64}, "no 'training' image"),
        ({"training": "r/mlops-training@sha256:" + "b" * 64}, "no 'serving' image"),
        ({"training": "r/mlops-training@sha256:" + "b" * 63, "serving": "r/mlops-serving@sha256:" + "a" * 64}, "not referenced by digest"),
    ],
)
def test_train_stage_refuses_images_not_by_digest_before_starting(aws: Any, moto_endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], images: dict[str, str], message: str) -> None:
    sagemaker = aws("sagemaker")
    sagemaker.create_pipeline(PipelineName="mlops-dev-training", PipelineDefinition=DEFINITION, RoleArn=ROLE)
    path = tmp_path / "images.json"
    path.write_text(json.dumps(images))
    code = main(["deliver", "train", "--endpoint-url", moto_endpoint, "--pipeline-name", "mlops-dev-training", "--images", str(path), "--poll-s", "1"])
    assert code == ExitCode.USAGE
    err = capsys.readouterr().err
    assert message in err and "nothing was started" in err
    assert sagemaker.list_pipeline_executions(PipelineName="mlops-dev-training")["PipelineExecutionSummaries"] == []


def test_train_stage_refuses_an_images_file_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "images.json"
    path.write_text(json.dumps(["r/mlops-training@sha256:" + "b" * 64]))
    with pytest.raises(SystemExit, match="must be a JSON object"):
        main(["deliver", "train", "--pipeline-name", "mlops-dev-training", "--images", str(path)])


def test_train_stage_fails_on_missing_pipeline(aws: Any, moto_endpoint: str) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        main(["deliver", "train", "--endpoint-url", moto_endpoint, "--pipeline-name", "absent", "--poll-s", "1"])


def test_build_images_stage_writes_digests_or_refuses(aws: Any, moto_endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ecr = aws("ecr")
    digests = {name: push_image(ecr, name, "abc123") for name in ("mlops-training", "mlops-serving")}
    for name, digest in digests.items():
        ecr.start_image_scan(repositoryName=name, imageId={"imageDigest": digest})
    out_file = tmp_path / "images.json"
    argv = ["deliver", "build-images", "--skip-build", "--endpoint-url", moto_endpoint, "--tag", "abc123", "--out", str(out_file)]
    assert main(argv) == ExitCode.OK, capsys.readouterr()
    assert json.loads(out_file.read_text()) == {"training": f"mlops-training@{digests['mlops-training']}", "serving": f"mlops-serving@{digests['mlops-serving']}"}
    # moto's default result has a HIGH finding: refused when HIGH blocks too.
    out_file.unlink()
    assert main([*argv, "--fail-on", "CRITICAL,HIGH"]) == ExitCode.ERROR
    assert "scan findings block the release" in capsys.readouterr().err
    assert not out_file.exists()


def test_build_images_needs_a_registry_to_push(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ECR_REGISTRY", raising=False)
    assert main(["deliver", "build-images", "--tag", "abc"]) == ExitCode.USAGE
    assert "--registry" in capsys.readouterr().err
