"""Datasets are pushed to content-addressed prefixes (moto's S3 server on 127.0.0.1).

An execution's ``InputDataUri`` names exactly the bytes it trained on: pushing the same
file twice gives the same prefix and one object, a different file a different prefix,
and an earlier push is never overwritten.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.delivery.datasets import push_dataset
from pipeline.schema import REPO_ROOT

DATA_URI = "s3://mlops-dev-data/datasets/adult-income/"


@pytest.fixture()
def s3(aws: Callable[[str], Any]) -> Any:
    client = aws("s3")
    client.create_bucket(Bucket="mlops-dev-data")
    return client


def keys(s3: Any) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket="mlops-dev-data").get("Contents", []))


def test_a_push_lands_at_its_content_address_and_repeats_are_no_ops(s3: Any, tmp_path: Path) -> None:
    first = tmp_path / "adult.csv"
    first.write_text("age,label\n39,0\n")
    uri = push_dataset(s3, first, DATA_URI)
    assert uri.startswith(DATA_URI + "sha256-") and uri.endswith("/")
    assert push_dataset(s3, first, DATA_URI) == uri
    assert keys(s3) == ["datasets/adult-income/LATEST.json", uri.removeprefix("s3://mlops-dev-data/") + "adult.csv"]


def test_new_data_gets_a_new_prefix_and_the_old_push_stays(s3: Any, tmp_path: Path) -> None:
    path = tmp_path / "adult.csv"
    path.write_text("age,label\n39,0\n")
    old = push_dataset(s3, path, DATA_URI)
    path.write_text("age,label\n39,0\n50,1\n")
    new = push_dataset(s3, path, DATA_URI)
    assert new != old
    body = s3.get_object(Bucket="mlops-dev-data", Key=old.removeprefix("s3://mlops-dev-data/") + "adult.csv")["Body"].read()
    assert body == b"age,label\n39,0\n", "an earlier execution's data is never overwritten"


def test_push_data_cli_prints_the_uri_and_refuses_bad_input(s3: Any, moto_endpoint: str, tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("age,label\n1,0\n")
    base = [sys.executable, "-m", "pipeline", "deliver", "push-data", "--endpoint-url", moto_endpoint]
    env = {"PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}
    ok = subprocess.run([*base, str(data), "--data-uri", DATA_URI, "--out", str(tmp_path / "data.json")],
                        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads((tmp_path / "data.json").read_text())["input_data"] == ok.stdout.splitlines()[0]
    missing = subprocess.run([*base, str(tmp_path / "nope.csv"), "--data-uri", DATA_URI], cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no dataset file" in missing.stderr
    bad_uri = subprocess.run([*base, str(data), "--data-uri", "https://example.com/x"], cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert bad_uri.returncode == 2 and "is not an s3:// URI" in bad_uri.stderr


def test_the_train_stage_trains_on_the_latest_push(aws: Callable[[str], Any], moto_endpoint: str, s3: Any, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli import main
    from pipeline.exit_codes import ExitCode

    from .test_aws_clients import DEFINITION, ROLE

    aws("sagemaker").create_pipeline(PipelineName="mlops-dev-training", PipelineDefinition=DEFINITION, RoleArn=ROLE)
    stage = ["deliver", "train", "--endpoint-url", moto_endpoint, "--pipeline-name", "mlops-dev-training",
             "--data-uri", DATA_URI, "--poll-s", "1", "--timeout-s", "30"]
    assert main(stage) == ExitCode.USAGE, "nothing pushed yet: the stage must not train on an empty or mixed prefix"
    assert "no dataset pushed under" in capsys.readouterr().err
    path = tmp_path / "adult.csv"
    path.write_text("age,label\n39,0\n")
    push_dataset(s3, path, DATA_URI)
    path.write_text("age,label\n39,0\n50,1\n")
    newest = push_dataset(s3, path, DATA_URI)
    # moto's execution "succeeds" without running a step: no register step wrote
    # registration.json, so the stage cannot name a release and must fail, not pass.
    assert main([*stage, "--artifacts-prefix", "s3://mlops-dev-artifacts/pipeline", "--release-out", str(tmp_path / "release.json")]) == ExitCode.ERROR
    captured = capsys.readouterr()
    assert "its release cannot be written" in captured.err and not (tmp_path / "release.json").exists()
    arn = captured.out.split("started ", 1)[1].split()[0]
    params = aws("sagemaker").list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
    assert {p["Name"]: p["Value"] for p in params}["InputDataUri"] == newest
