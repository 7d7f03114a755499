"""The MLflow image as the MlflowServer component runs it, against real services.

The image's own entrypoint reads the database secret from Secrets Manager (moto's server)
and talks to a real PostgreSQL over TLS; artifacts go to S3 (moto) through the server's
artifact proxy; basic auth is on. Two replicas given the same Flask secret key accept
each other's session and CSRF token, as two pods behind one Service must; a replica with
another key refuses it, which is why the Deployment shares one key.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.images.services import (
    MlflowServer,
    MlflowSettings,
    Moto,
    client_env,
    mlflow_container,
    mlflow_settings,
    moto_server,
    postgres_with_tls,
)

SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"
FIGURES = Path(__file__).resolve().parents[2] / "build" / "images" / "figures.tsv"

IMAGES_USED = ("mlflow",)


@pytest.fixture(scope="module")
def backing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Moto, MlflowSettings]]:
    root = tmp_path_factory.mktemp("mlflow-image")
    root.chmod(0o755)
    with ExitStack() as stack:
        postgres = stack.enter_context(postgres_with_tls())
        moto = stack.enter_context(moto_server())
        yield root, moto, mlflow_settings(root, postgres, moto, secrets.token_hex(32))


@pytest.fixture(scope="module")
def replicas(backing: tuple[Path, Moto, MlflowSettings]) -> Iterator[tuple[MlflowServer, MlflowServer]]:
    _, _, settings = backing
    start = time.monotonic()
    with mlflow_container(settings) as first:
        ready_s = time.monotonic() - start
        FIGURES.parent.mkdir(parents=True, exist_ok=True)
        with FIGURES.open("a") as out:
            out.write(f"mlflow_first_health_s\t{ready_s:.1f}\n")
        with mlflow_container(settings) as second:
            yield first, second


def test_anonymous_and_wrong_password_get_401_admin_gets_200(replicas: tuple[MlflowServer, MlflowServer]) -> None:
    server, _ = replicas
    assert httpx.get(server.url + SEARCH, timeout=10).status_code == 401
    assert httpx.get(server.url + SEARCH, auth=(server.admin_user, "not-the-password"), timeout=10).status_code == 401
    response = httpx.get(server.url + SEARCH, auth=server.auth, timeout=10)
    assert response.status_code == 200, response.text


def test_runs_go_to_postgres_and_artifacts_to_s3(replicas: tuple[MlflowServer, MlflowServer],
                                                 backing: tuple[Path, Moto, MlflowSettings],
                                                 monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    first, second = replicas
    _, moto, settings = backing
    for key, value in client_env(first).items():
        monkeypatch.setenv(key, value)
    client = MlflowClient(first.url)
    experiment = client.create_experiment(f"image-test-{secrets.token_hex(4)}")
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "auc", 0.93)
    (tmp_path / "report.md").write_text("# gate report\n")
    client.log_artifact(run.info.run_id, str(tmp_path / "report.md"))
    # The other replica sees the same run: the state is in PostgreSQL, not in a pod.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", second.url)
    assert MlflowClient(second.url).get_run(run.info.run_id).data.metrics["auc"] == 0.93
    bucket = settings.env["MLFLOW_ARTIFACTS_DESTINATION"].split("/")[2]
    keys = [o["Key"] for o in moto.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert any(key.endswith(f"{run.info.run_id}/artifacts/report.md") for key in keys), keys
    downloaded = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="report.md",
                                                     dst_path=str(tmp_path / "back"), tracking_uri=second.url)
    assert Path(downloaded).read_text() == "# gate report\n"


def _signup_form(server: MlflowServer) -> tuple[httpx.Cookies, str]:
    page = httpx.get(server.url + "/signup", auth=server.auth, timeout=10)
    assert page.status_code == 200, page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text[:500]
    return page.cookies, token.group(1)


def _create_user_ui(server: MlflowServer, cookies: httpx.Cookies, token: str, username: str) -> httpx.Response:
    return httpx.post(server.url + "/api/2.0/mlflow/users/create-ui", auth=server.auth, cookies=cookies, timeout=10,
                      data={"csrf_token": token, "username": username, "password": "A-long-password-" + secrets.token_hex(4)})


def test_replicas_sharing_the_secret_key_accept_each_others_session(
    replicas: tuple[MlflowServer, MlflowServer]
) -> None:
    first, second = replicas
    cookies, token = _signup_form(first)
    username = "user" + secrets.token_hex(3)
    response = _create_user_ui(second, cookies, token, username)
    assert response.status_code == 200, response.text
    assert httpx.get(second.url + f"/api/2.0/mlflow/users/get?username={username}", auth=second.auth,
                     timeout=10).status_code == 200


def test_a_replica_with_another_secret_key_refuses_that_session(
    replicas: tuple[MlflowServer, MlflowServer], backing: tuple[Path, Moto, MlflowSettings]
) -> None:
    """Why the Deployment must give every replica the same key."""
    first, _ = replicas
    _, _, settings = backing
    other = MlflowSettings(env={**settings.env, "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32)},
                           admin_dir=settings.admin_dir, admin_user=settings.admin_user,
                           admin_password=settings.admin_password)
    cookies, token = _signup_form(first)
    with mlflow_container(other) as stranger:
        response = _create_user_ui(stranger, cookies, token, "user" + secrets.token_hex(3))
    assert response.status_code == 400, response.text
    assert "CSRF" in response.text


def test_a_missing_secret_key_fails_fast_with_its_name(backing: tuple[Path, Moto, MlflowSettings]) -> None:
    from tests.images.podman import run_to_completion

    _, _, settings = backing
    env = {k: v for k, v in settings.env.items() if k != "MLFLOW_FLASK_SERVER_SECRET_KEY"}
    result = run_to_completion("mlflow", options=["--network", "host", "-v",
                               f"{settings.admin_dir}:/var/run/secrets/mlflow-admin:ro"], env=env, timeout=120)
    assert result.returncode != 0
    assert "MLFLOW_FLASK_SERVER_SECRET_KEY is required" in result.stderr
