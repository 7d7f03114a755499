"""Local deploy and smoke test: a good version stays champion; a bad one is rolled back.

These run the real server as a subprocess on 127.0.0.1 against a throwaway SQLite
registry; the smoke checker's refusing paths are driven by a tiny stub HTTP server that
answers the wrong version or the wrong prediction.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipeline.steps.deploy import SMOKE_TAG, deploy
from pipeline.steps.smoke_test import KnownPrediction, run_smoke_test
from tests.serving.model_factory import train_and_register

pytestmark = pytest.mark.slow


def client(tracking_uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deploy-store")


@pytest.fixture(scope="module")
def first(store: Path) -> Any:
    return train_and_register(store, baseline=False)


def test_good_version_passes_and_stays_champion(first: Any, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from pipeline.steps import deploy as deploy_module

    # The offline score runs while the server starts (issue 15: deploy time): it only
    # proceeds once the server's log exists, which a score-then-start order never reaches.
    log_file = store / "logs" / f"serve-adult-income-v{first.version}.log"
    real_known_prediction = deploy_module.known_prediction

    def after_server_started(*args: Any) -> Any:
        deadline = time.monotonic() + 60
        while not log_file.exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the server was not started while the input example was scored")
            time.sleep(0.01)
        return real_known_prediction(*args)

    monkeypatch.setattr(deploy_module, "known_prediction", after_server_started)

    # The process-global registry points elsewhere: deploy must use only the URI it is given.
    elsewhere = f"sqlite:///{store / 'elsewhere.db'}"
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(elsewhere)
    mlflow.set_registry_uri(elsewhere)
    try:
        result = deploy(first.tracking_uri, "adult-income", first.version, None, log_dir=store / "logs")
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])
    assert result.passed, result.checks
    assert [c.name for c in result.checks] == ["known_input", "server_start", "health", "known_prediction", "version"]
    assert result.rolled_back_to is None and not result.alias_deleted
    assert result.url is not None and result.url.startswith("http://127.0.0.1:")
    assert result.log_path.exists() and "serving adult-income version 1" in result.log_path.read_text()
    registry = client(first.tracking_uri)
    assert str(registry.get_model_version_by_alias("adult-income", "champion").version) == first.version
    assert registry.get_model_version("adult-income", first.version).tags[SMOKE_TAG] == "passed"


def test_broken_version_is_rolled_back_to_the_previous_champion(first: Any, store: Path) -> None:
    second = train_and_register(store, baseline=False, seed=11)
    assert second.version == "2"
    # Break the new version's artifacts the way a bad upload would.
    newest = max(store.glob("artifacts/**/model.skops"), key=lambda p: p.stat().st_mtime)
    newest.write_bytes(b"not a model")
    result = deploy(first.tracking_uri, "adult-income", "2", first.version, log_dir=store / "logs")
    assert not result.passed
    assert result.checks[0].name == "known_input" and not result.checks[0].passed
    assert result.rolled_back_to == first.version and "moved back to version 1" in result.message
    registry = client(first.tracking_uri)
    assert str(registry.get_model_version_by_alias("adult-income", "champion").version) == first.version
    assert registry.get_model_version("adult-income", "2").tags[SMOKE_TAG] == "failed"


def test_server_that_will_not_start_deletes_a_first_champion(store: Path) -> None:
    other = train_and_register(store, model_name="other-model", baseline=False)
    # A server option it refuses makes the process exit before it is healthy.
    result = deploy(
        other.tracking_uri, "other-model", other.version, None, log_dir=store / "logs",
        server_args=["--max-body-bytes", "0"], startup_timeout_s=60,
    )
    assert not result.passed
    assert [c.name for c in result.checks if not c.passed] == ["server_start"]
    assert result.alias_deleted and result.rolled_back_to is None
    assert "deleted" in result.message
    assert client(other.tracking_uri).get_registered_model("other-model").aliases == {}


def test_alias_moved_by_someone_else_is_left_alone(first: Any, store: Path) -> None:
    registry = client(first.tracking_uri)
    registry.set_registered_model_alias("adult-income", "champion", "1")
    result = deploy(first.tracking_uri, "adult-income", "2", "1", log_dir=store / "logs")
    assert not result.passed and result.rolled_back_to is None and not result.alias_deleted
    assert "left as it is" in result.message


@pytest.fixture()
def stub_server() -> Iterator[tuple[str, dict]]:
    answers: dict[str, Any] = {"version": "3", "probabilities": [0.25], "predictions": [0]}

    class Handler(BaseHTTPRequestHandler):
        def _send(self, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/version":
                self._send({"model_name": "m", "model_version": answers["version"]})
            else:
                self._send({"status": "ok"})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self._send({"predictions": answers["predictions"], "probabilities": answers["probabilities"]})

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", answers
    server.shutdown()
    server.server_close()


def test_smoke_checks_each_fail_on_their_own(stub_server: tuple[str, dict]) -> None:
    url, answers = stub_server
    expected = KnownPrediction({"instances": [{}]}, [0], [0.25])
    assert run_smoke_test(url, expected, "m", "3").passed
    answers["probabilities"] = [0.2501]
    report = run_smoke_test(url, expected, "m", "3")
    assert [c.name for c in report.checks if not c.passed] == ["known_prediction"]
    answers["probabilities"] = [0.25]
    report = run_smoke_test(url, expected, "m", "4")
    assert [c.name for c in report.checks if not c.passed] == ["version"]


def test_smoke_test_against_nothing_fails_every_check() -> None:
    from serving.process import free_port

    report = run_smoke_test(f"http://127.0.0.1:{free_port()}", KnownPrediction({}, [0], [0.5]), "m", "1", timeout_s=2)
    assert not report.passed and all(not c.passed for c in report.checks)
