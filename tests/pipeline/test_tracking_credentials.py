"""Pipeline jobs log into MLflow with credentials read from Secrets Manager at start.

The secret is served by moto on 127.0.0.1. A secret that cannot be read, or a tracking
server that refuses the credentials, is a configuration error (exit 2) that names the
secret: it must never reach the gate as a refusal of the model.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlflow.exceptions import MlflowException

from pipeline.commands import step as step_command_module
from pipeline.exit_codes import ExitCode
from pipeline.tracking_credentials import SECRET_ENV, CredentialsError, is_auth_refusal, load_tracking_credentials
from tests.pipeline.delivery.conftest import aws, moto_endpoint  # noqa: F401 - fixtures

REFUSED = MlflowException("API request to endpoint /api/2.0/mlflow/registered-models/alias failed with error code 401 != 200. Response body: 'You are not authenticated.'")


@pytest.fixture()
def secret_arn(aws: Callable[[str], Any], moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    return aws("secretsmanager").create_secret(Name="mlops-dev-mlflow-credentials",
                                               SecretString=json.dumps({"username": "admin", "password": "s3cret"}))["ARN"]


def test_credentials_come_from_the_secret_named_in_the_environment(secret_arn: str) -> None:
    env = {SECRET_ENV: secret_arn}
    assert load_tracking_credentials(env) == secret_arn
    assert env["MLFLOW_TRACKING_USERNAME"] == "admin" and env["MLFLOW_TRACKING_PASSWORD"] == "s3cret"


def test_explicit_credentials_win_and_no_secret_means_nothing_to_do(secret_arn: str) -> None:
    env = {SECRET_ENV: secret_arn, "MLFLOW_TRACKING_USERNAME": "me", "MLFLOW_TRACKING_PASSWORD": "mine"}
    assert load_tracking_credentials(env) is None and env["MLFLOW_TRACKING_PASSWORD"] == "mine"
    assert load_tracking_credentials({}) is None


def test_an_unreadable_secret_is_an_error_naming_it(secret_arn: str) -> None:
    missing = secret_arn.replace("mlops-dev-mlflow-credentials", "mlops-dev-nope")
    with pytest.raises(CredentialsError, match="mlops-dev-nope"):
        load_tracking_credentials({SECRET_ENV: missing})


def test_a_secret_without_username_and_password_is_refused(aws: Callable[[str], Any], secret_arn: str) -> None:  # noqa: F811
    arn = aws("secretsmanager").create_secret(Name="just-a-string", SecretString="hunter2")["ARN"]
    with pytest.raises(CredentialsError, match="must hold JSON"):
        load_tracking_credentials({SECRET_ENV: arn})


def test_auth_refusals_are_recognised_through_their_causes() -> None:
    assert is_auth_refusal(REFUSED)
    try:
        try:
            raise REFUSED
        except MlflowException as exc:
            raise RuntimeError("could not load the champion") from exc
    except RuntimeError as wrapped:
        assert is_auth_refusal(wrapped)
    assert not is_auth_refusal(MlflowException("RESOURCE_DOES_NOT_EXIST: no model"))
    assert not is_auth_refusal(ValueError("error code 401"))


def test_the_gate_step_reports_refused_credentials_as_configuration_not_refusal(
    secret_arn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(SECRET_ENV, secret_arn)

    def refuse(inputs: list[Path], out: Path, params: dict[str, str]) -> int:
        raise RuntimeError("champion lookup failed") from REFUSED

    monkeypatch.setitem(step_command_module.RUNNERS, "gate", refuse)
    args = argparse.Namespace(name="gate", inputs=[], output=tmp_path / "out", param=[])
    assert step_command_module.step_command(args) == ExitCode.USAGE
    message = capsys.readouterr().err
    assert secret_arn in message and "refused the credentials" in message
    assert not (tmp_path / "out" / "evaluation.json").exists(), "no gate decision is written"


def test_the_gate_itself_lets_an_auth_refusal_through_instead_of_failing_closed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Before the fix the gate turned any registry error, a 401 included, into a refusal."""
    import joblib

    from pipeline.data import load_dataset
    from pipeline.schema import DEFAULT_DATASET

    data = load_dataset(DEFAULT_DATASET).head(400)
    (tmp_path / "holdout").mkdir()
    data.to_parquet(tmp_path / "holdout" / "data.parquet")
    from sklearn.dummy import DummyClassifier

    model = DummyClassifier(strategy="prior").fit(data.drop(columns=["label"]).select_dtypes("number"), data["label"])
    (tmp_path / "model").mkdir()
    joblib.dump(model, tmp_path / "model" / "model.joblib")

    def refused(params: dict[str, str]) -> None:
        raise REFUSED

    monkeypatch.setattr(step_command_module, "_registry_champion", refused)
    monkeypatch.setattr("pipeline.steps.evaluate.predict_proba", lambda m, frame: [0.5] * len(frame))
    monkeypatch.setattr("pipeline.steps.evaluate.evaluate", lambda frame, proba: type("M", (), {"metrics": {}, "slices": {}, "fairness": {}})())
    with pytest.raises(MlflowException):
        step_command_module.run_gate([tmp_path / "model", tmp_path / "holdout"], tmp_path / "out", {})


def test_steps_that_never_touch_the_registry_do_not_read_the_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Validate and Split run with no credentials at all (and no network in the image tests)."""
    monkeypatch.setenv(SECRET_ENV, "arn:aws:secretsmanager:us-east-1:123456789012:secret:unreachable-AbCdEf")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: reading would fail
    ran: list[str] = []
    monkeypatch.setitem(step_command_module.RUNNERS, "validate", lambda inputs, out, params: ran.append("validate") or 0)
    args = argparse.Namespace(name="validate", inputs=[], output=tmp_path / "out", param=[])
    assert step_command_module.step_command(args) == ExitCode.OK
    assert ran == ["validate"]
