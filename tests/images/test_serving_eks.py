"""The serving image as the ModelService's pod runs it on EKS.

The pod spec comes from the dev stack's offline plan: non-root UID, read-only root
filesystem, no capabilities, only the volumes the manifest mounts, the MLflow
credentials file from its Secret. The model is resolved from the MLflow image (basic
auth, PostgreSQL, S3 on moto) by alias over HTTP. At the first ``pulumi up`` no
``champion`` exists yet: the pod must stay running and not ready (never crash-loop),
and serve as soon as the alias appears.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serving.process import free_port
from tests.images.pod_spec import plan_manifests, pod_template, podman_run_for, with_arg
from tests.images.podman import Container, run_detached
from tests.images.services import MlflowServer, mlflow_stack
from tests.serving.model_factory import train_and_register

MODEL_NAME = "adult-income"
NOT_READY_WINDOW_S = 15

IMAGES_USED = ("serving", "mlflow")


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    root = tmp_path_factory.mktemp("eks-serving")
    root.chmod(0o755)
    with mlflow_stack(root) as (server, _, _):
        yield server


@pytest.fixture(scope="module")
def serving_pod(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("plan")
    return pod_template(plan_manifests("dev", str(out)), "Deployment", "model-server")


def start_pod_container(pod: dict[str, object], tracking: MlflowServer, workdir: Path):  # noqa: ANN201
    from infra.model_service import mlflow_credentials_file

    workdir.mkdir(parents=True, exist_ok=True)
    run = podman_run_for(pod, "server", workdir, secrets={
        "mlflow-credentials": {"credentials": mlflow_credentials_file(tracking.admin_user, tracking.admin_password)}})
    port = free_port()
    env = dict(run.env)
    # What cannot exist here, overridden by name: the tracking server's address, and the
    # in-cluster CloudWatch agent (a closed loopback port: EMF losses are never fatal).
    env["MLFLOW_TRACKING_URI"] = tracking.url
    env["AWS_EMF_AGENT_ENDPOINT"] = f"tcp://127.0.0.1:{free_port()}"
    env.pop("CAPTURE_S3_URI", None)
    args = with_arg(with_arg(run.args, "--host", "127.0.0.1"), "--port", str(port))
    return run, port, run_detached("serving", args, options=run.options, env=env)


def status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.TransportError:
        return None


def test_the_pod_runs_hardened(serving_pod: dict[str, object], tracking: MlflowServer, tmp_path: Path) -> None:
    run, _, _ = start_pod_container(serving_pod, tracking, tmp_path)
    assert "--read-only" in run.options
    assert run.options[run.options.index("--cap-drop") + 1] == "ALL"
    assert "no-new-privileges" in run.options
    assert run.options[run.options.index("--user") + 1].startswith("10001:")


def test_waits_not_ready_for_the_first_champion_then_serves_it(
    serving_pod: dict[str, object], tracking: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, port, context = start_pod_container(serving_pod, tracking, tmp_path / "pod")
    base = f"http://127.0.0.1:{port}"
    container: Container
    with context as container:
        deadline = time.monotonic() + NOT_READY_WINDOW_S
        live_seen = False
        while time.monotonic() < deadline:
            assert container.running(), f"the pod's container exited (crash loop):\n{container.logs()[-3000:]}"
            assert status(f"{base}/ping") != 200, "ready although no champion exists"
            live_seen = live_seen or status(f"{base}/livez") == 200
            time.sleep(0.5)
        assert live_seen, f"/livez never answered 200 while waiting:\n{container.logs()[-2000:]}"
        assert status(f"{base}/invocations") in (405, 503)

        for key, value in {"MLFLOW_TRACKING_USERNAME": tracking.admin_user,
                           "MLFLOW_TRACKING_PASSWORD": tracking.admin_password}.items():
            monkeypatch.setenv(key, value)
        fixture = train_and_register(tmp_path / "model", MODEL_NAME, tracking_uri=tracking.url, rows=2000)

        deadline = time.monotonic() + 120
        while status(f"{base}/ping") != 200:
            assert container.running(), container.logs()[-3000:]
            assert time.monotonic() < deadline, f"champion set but never served:\n{container.logs()[-3000:]}"
            time.sleep(0.5)
        version = httpx.get(f"{base}/version", timeout=5).json()
        assert version["model_name"] == MODEL_NAME and version["model_version"] == fixture.version
        from tests.images.test_serving_sagemaker import rows_for_request

        answer = httpx.post(f"{base}/invocations", json={"dataframe_records": rows_for_request(3)}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["predictions"]) == 3
