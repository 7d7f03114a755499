"""The stack's compiled SageMaker definition, executed end to end in the built images.

``deliver train --local`` compiles the dev stack's definition as ``pulumi up`` does and
runs every step in the training image: S3 and Secrets Manager on moto's server, the
MLflow image (basic auth, PostgreSQL with TLS) as the tracking server. The jobs log in
with the credentials they read from the secret the definition names. A good dataset
ends registered and gated; a worse model and invalid data end refused with the
champion unchanged; a wrong password ends as a configuration error naming the secret.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient

from pipeline.delivery import datasets, local_train
from pipeline.schema import DEFAULT_DATASET, REPO_ROOT
from pipeline import schema
from tests.images.services import MlflowServer, Moto, mlflow_stack

IMAGES_USED = ("training", "mlflow")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MlflowServer, Moto]]:
    root = tmp_path_factory.mktemp("local-execution")
    root.chmod(0o755)
    with mlflow_stack(root) as (server, moto, _):
        yield server, moto


@pytest.fixture(scope="module")
def dev_definition() -> local_train.StackDefinition:
    return local_train.stack_definition("dev")


def registry(server: MlflowServer) -> MlflowClient:
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = server.auth
    return MlflowClient(tracking_uri=server.url, registry_uri=server.url)


def champion(server: MlflowServer, alias: str = "champion") -> str | None:
    try:
        return str(registry(server).get_model_version_by_alias(schema.DEFAULT_MODEL_NAME, alias).version)
    except Exception:  # noqa: BLE001 - no model or no alias yet
        return None


def run_locally(definition: local_train.StackDefinition, server: MlflowServer, moto: Moto, data: Path, workdir: Path,
                password: str | None = None) -> Any:
    local_train.seed_credentials_secret(moto.client("secretsmanager"), definition.credentials_secret_arn,
                                        server.admin_user, password or server.admin_password)
    s3 = moto.client("s3")
    datasets.ensure_bucket(s3, definition.parameter_default("InputDataUri"))  # `pulumi up` made it in AWS
    uri = datasets.push_dataset(s3, data, definition.parameter_default("InputDataUri"))
    return local_train.execute_locally(definition, s3=s3, tracking_uri=server.url, endpoint_url=moto.endpoint,
                                       workdir=workdir, input_data=uri)


def test_deliver_train_local_registers_and_gates_a_good_dataset(platform: tuple[MlflowServer, Moto], tmp_path: Path) -> None:
    server, moto = platform
    tmp_path.chmod(0o755)
    env = dict(os.environ, MLFLOW_TRACKING_USERNAME=server.admin_user, MLFLOW_TRACKING_PASSWORD=server.admin_password,
               AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "deliver", "train", "--local", "--stack", "dev", "--endpoint-url", moto.endpoint,
         "--tracking-uri", server.url, "--data", str(DEFAULT_DATASET), "--workdir", str(tmp_path / "work"), "--git-commit", "c0ffee",
         "--release-out", str(tmp_path / "release.json")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for step in ("Validate", "Split", "Train", "EvaluateAndGate", "GateCheck", "Register"):
        assert f"{step}: Succeeded" in result.stdout, result.stdout
    # The delivery path: a candidate, named in release.json; champion moves only when
    # the release's canary and smoke test pass (done here as SmokeTest would).
    version = champion(server, "candidate")
    assert version is not None and champion(server) is None, "the registered version is the candidate, not yet champion"
    from pipeline.delivery.registry import promote_if_unchanged
    from pipeline.delivery.release import read_release

    release = read_release(tmp_path / "release.json")
    assert (release.version, release.base_champion, release.git_commit) == (version, None, "c0ffee")
    assert release.image and "/serving@sha256:" in release.image, "the release names its serving image by digest"
    details = registry(server).get_model_version(schema.DEFAULT_MODEL_NAME, version)
    assert details.tags.get("git_commit") == "c0ffee"
    artifacts = [a.path for a in registry(server).list_artifacts(details.run_id)]
    assert any(path.startswith("gate") for path in artifacts), f"the gate report is attached to the run: {artifacts}"
    promote_if_unchanged(server.url, schema.DEFAULT_MODEL_NAME, expected=release.base_champion, version=release.version)
    assert champion(server) == version


def test_a_worse_model_is_refused_by_the_gate_and_the_champion_stays(
    platform: tuple[MlflowServer, Moto], dev_definition: local_train.StackDefinition, tmp_path: Path
) -> None:
    server, moto = platform
    before = champion(server)
    assert before is not None, "needs the champion registered by the first test"
    data = pd.read_csv(DEFAULT_DATASET)
    # Labels shuffled: a model trained on this is no better than chance.
    data[schema.LABEL] = data[schema.LABEL].sample(frac=1.0, random_state=7).to_numpy()
    shuffled = tmp_path / "shuffled.csv.gz"
    with gzip.open(shuffled, "wt") as handle:
        data.to_csv(handle, index=False)
    tmp_path.chmod(0o755)
    execution = run_locally(dev_definition, server, moto, shuffled, tmp_path / "work")
    assert local_train.is_gate_refusal(execution), (execution.failed_step, execution.failure_reason)
    assert "ROC AUC" in execution.failure_reason and "below the floor" in execution.failure_reason
    assert champion(server) == before


def test_invalid_data_stops_at_validate_and_the_champion_stays(
    platform: tuple[MlflowServer, Moto], dev_definition: local_train.StackDefinition, tmp_path: Path
) -> None:
    server, moto = platform
    before = champion(server)
    bad = tmp_path / "bad.csv"
    bad.write_text("age,sex\n-4,Martian\n")
    tmp_path.chmod(0o755)
    execution = run_locally(dev_definition, server, moto, bad, tmp_path / "work")
    assert execution.failed_step == "Validate" and "exited 4" in execution.failure_reason
    assert [step.name for step in execution.steps] == ["Validate"]
    assert champion(server) == before


def test_a_wrong_password_is_a_configuration_error_naming_the_secret(
    platform: tuple[MlflowServer, Moto], dev_definition: local_train.StackDefinition, tmp_path: Path
) -> None:
    server, moto = platform
    before = champion(server)
    tmp_path.chmod(0o755)
    execution = run_locally(dev_definition, server, moto, DEFAULT_DATASET, tmp_path / "work", password="not-the-password")
    assert not local_train.is_gate_refusal(execution), "wrong credentials judge no model"
    assert execution.failed_step == "EvaluateAndGate" and "exited 2" in execution.failure_reason
    assert dev_definition.credentials_secret_arn in execution.failure_reason
    assert "refused the credentials" in execution.failure_reason
    assert champion(server) == before


def test_the_prod_definition_executes_end_to_end(platform: tuple[MlflowServer, Moto], tmp_path: Path) -> None:
    """Prod's definition (its own names, bucket and GPU type) runs every step and registers."""
    server, moto = platform
    before = champion(server)
    prod = local_train.stack_definition("prod")
    assert prod.pipeline_name.startswith("mlops-prod")
    tmp_path.chmod(0o755)
    execution = run_locally(prod, server, moto, DEFAULT_DATASET, tmp_path / "work")
    assert execution.succeeded, (execution.failed_step, execution.failure_reason)
    assert [s.name for s in execution.steps] == ["Validate", "Split", "Train", "EvaluateAndGate", "GateCheck", "Register"]
    # Same data and training as the dev champion: the gate finds no regression; the new
    # version becomes the candidate and champion stays until its release finishes.
    assert champion(server, "candidate") not in (None, before) and champion(server) == before
