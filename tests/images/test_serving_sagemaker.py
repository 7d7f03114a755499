"""The serving image under SageMaker's hosting contract, run as SageMaker runs it.

``docker run IMAGE serve`` with the model at ``/opt/ml/model`` (read-only), the port
from ``SAGEMAKER_BIND_TO_PORT``; ``/ping`` answers 200 only once the model is loaded;
``/invocations`` takes JSON and CSV and honours ``Accept``; the image's own HEALTHCHECK
passes; SIGTERM under load drains the requests in flight and exits 0.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serving.process import free_port
from tests.images.podman import Container, podman, run_detached
from tests.serving.model_factory import load_sample, train_and_register

READY_TIMEOUT_S = 120

IMAGES_USED = ("serving",)


def sagemaker_model_dir(root: Path) -> Path:
    """What SageMaker extracts from model.tar.gz into /opt/ml/model: the registered MLflow
    model folder, with the version's monitoring baseline beside it."""
    import mlflow.artifacts

    fixture = train_and_register(root / "store")
    model_dir = root / "model"
    mlflow.artifacts.download_artifacts(artifact_uri=fixture.model_uri, dst_path=str(model_dir),
                                        tracking_uri=fixture.tracking_uri)
    (model_dir / "monitoring").mkdir()
    shutil.copy(root / "store" / "baseline.parquet", model_dir / "monitoring" / "baseline.parquet")
    for path in [model_dir, *model_dir.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return model_dir


def wait_ready(base: str, container: Container, timeout: float = READY_TIMEOUT_S) -> float:
    """Seconds until ``/ping`` first answers 200; fails with the container's log."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if not container.running():
            raise AssertionError(f"container exited before it was ready:\n{container.logs()[-3000:]}")
        try:
            if httpx.get(f"{base}/ping", timeout=2).status_code == 200:
                return time.monotonic() - start
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"/ping not 200 within {timeout} s:\n{container.logs()[-3000:]}")


def serve_options(model_dir: Path) -> list[str]:
    return ["-v", f"{model_dir}:/opt/ml/model:ro"]


def serve_env(port: int) -> dict[str, str]:
    # SERVING_HOST keeps the listener on loopback (the image binds 0.0.0.0 for SageMaker).
    return {"SAGEMAKER_BIND_TO_PORT": str(port), "SERVING_HOST": "127.0.0.1",
            "MONITORING_BASELINE": "/opt/ml/model/monitoring/baseline.parquet"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sagemaker-model")
    root.chmod(0o755)
    return sagemaker_model_dir(root)


@pytest.fixture(scope="module")
def served(model_dir: Path) -> Iterator[tuple[str, Container]]:
    port = free_port()
    with run_detached("serving", ["serve"], options=serve_options(model_dir), env=serve_env(port)) as container:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, container)
        yield base, container


def rows_for_request(count: int, seed: int = 11) -> list[dict[str, object]]:
    """``count`` JSON-ready feature rows of the default dataset (None for missing values)."""
    from pipeline import schema

    frame = load_sample(count, seed=seed)[list(schema.FEATURES)]
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
            for r in frame.astype(object).to_dict(orient="records")]


@pytest.fixture(scope="module")
def rows() -> list[dict[str, object]]:
    return rows_for_request(5)


def test_ping_is_200_once_loaded_and_the_baseline_is_read(served: tuple[str, Container]) -> None:
    base, container = served
    response = httpx.get(f"{base}/ping", timeout=5)
    assert response.status_code == 200
    assert response.json()["model_version"]
    # The image reads the parquet baseline with fastparquet (no pyarrow in it).
    assert "mlserve_prediction_drift_psi disabled" not in container.logs()


def test_invocations_json_and_csv(served: tuple[str, Container], rows: list[dict[str, object]]) -> None:
    base, _ = served
    as_json = httpx.post(f"{base}/invocations", json={"dataframe_records": rows}, timeout=30)
    assert as_json.status_code == 200, as_json.text
    body = as_json.json()
    assert len(body["predictions"]) == len(rows) and all(0 <= p <= 1 for p in body["probabilities"])
    from pipeline import schema

    header = ",".join(schema.FEATURES)
    lines = [",".join("" if row[c] is None else str(row[c]) for c in schema.FEATURES) for row in rows]
    as_csv = httpx.post(f"{base}/invocations", content="\n".join([header, *lines]) + "\n",
                        headers={"Content-Type": "text/csv"}, timeout=30)
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.json()["probabilities"] == pytest.approx(body["probabilities"], abs=1e-6)


def test_accept_is_honoured_or_refused_with_406(served: tuple[str, Container], rows: list[dict[str, object]]) -> None:
    base, _ = served
    ok = httpx.post(f"{base}/invocations", json={"dataframe_records": rows}, headers={"Accept": "application/json"}, timeout=30)
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("application/json")
    refused = httpx.post(f"{base}/invocations", json={"dataframe_records": rows}, headers={"Accept": "application/x-protobuf"}, timeout=30)
    assert refused.status_code == 406, refused.text
    assert "application/json" in refused.json()["message"]


def test_execution_parameters_for_batch_transform(served: tuple[str, Container]) -> None:
    base, _ = served
    response = httpx.get(f"{base}/execution-parameters", timeout=5)
    assert response.status_code == 200
    params = response.json()
    assert params["BatchStrategy"] in ("MULTI_RECORD", "SINGLE_RECORD")
    assert 0 < params["MaxPayloadInMB"] <= 6
    assert params["MaxConcurrentTransforms"] >= 1


def test_the_images_own_healthcheck_passes(served: tuple[str, Container]) -> None:
    _, container = served
    result = podman("healthcheck", "run", container.name, check=False, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sigterm_under_load_drains_and_exits_zero(model_dir: Path, rows: list[dict[str, object]]) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with run_detached("serving", ["serve"], options=serve_options(model_dir), env=serve_env(port)) as container:
        wait_ready(base, container)
        statuses: list[int] = []
        errors: list[str] = []
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(timeout=30) as http:
                for _ in range(400):  # bounded: a few seconds of traffic at most
                    if stop.is_set():
                        return
                    try:
                        statuses.append(http.post(f"{base}/invocations", json={"dataframe_records": rows * 20}).status_code)
                    except httpx.ConnectError:
                        return  # the listener is closed: the drain has begun
                    except httpx.TransportError as exc:
                        errors.append(repr(exc))
                        return

        clients = [threading.Thread(target=client) for _ in range(4)]
        for thread in clients:
            thread.start()
        time.sleep(1.5)
        podman("kill", "--signal", "TERM", container.name, timeout=30)
        exit_code = container.wait(timeout=30)
        stop.set()
        for thread in clients:
            thread.join(timeout=30)
        assert exit_code == 0, container.logs()[-3000:]
        assert statuses and set(statuses) == {200}, f"statuses {sorted(set(statuses))}"
        assert not errors, errors[:3]
