"""Fixtures for the delivery tests: moto's server on 127.0.0.1 and a recording double.

Every boto3 call the delivery code makes is exercised against moto's real HTTP server
(started once per session on a free loopback port, always stopped). Where moto lacks a
call or cannot produce a state (a Failed execution, a step list), ``RecordingClient``
stands in: it records the exact request so the test asserts what AWS would be sent.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


OLD_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops-serving@sha256:" + "1" * 64
NEW_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops-serving@sha256:" + "2" * 64


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def put_fake_on_path(name: str, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``fakes/NAME`` on PATH as ``NAME``, run by this interpreter: a fresh machine's
    ``python3`` need not have the project's packages the fake imports."""
    import os
    import sys

    bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / name
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).parent / "fakes" / name}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture()
def aws(moto_endpoint: str) -> Iterator[Callable[[str], Any]]:
    """A client factory bound to moto; the backend is reset after each test."""
    import boto3
    import requests

    yield lambda service: boto3.client(service, region_name="us-east-1", endpoint_url=moto_endpoint)
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10)


class RecordingClient:
    """A test double for one boto3 client: scripted answers, every request recorded.

    ``answers`` maps an operation name to a list of responses (or exceptions) handed
    out in order; the last one repeats. ``calls`` holds ``(operation, kwargs)``.
    """

    def __init__(self, answers: dict[str, list[Any]]) -> None:
        self.answers = {k: list(v) for k, v in answers.items()}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, operation: str) -> Callable[..., Any]:
        if operation not in self.answers:
            raise AttributeError(operation)

        def call(**kwargs: Any) -> Any:
            self.calls.append((operation, kwargs))
            queue = self.answers[operation]
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
            if isinstance(answer, Exception):
                raise answer
            return answer

        return call


@pytest.fixture(scope="session")
def registry_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with v1 (serving) and v2 (champion), built once per session: MLflow's migrations take ~10 s."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("registry") / "mlflow.db"
    uri = f"sqlite:///{path}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("adult-income")
    for image in (OLD_IMAGE, NEW_IMAGE):
        client.create_model_version("adult-income", source=str(path.parent), tags={"image_digest": image})
    client.set_registered_model_alias("adult-income", "champion", "2")
    return path


@pytest.fixture()
def tracking_uri(tmp_path: Path, registry_template: Path) -> str:
    shutil.copy(registry_template, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(scope="session")
def release_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The release tests' registry (``release_harness.build_registry``): built once, copied per test."""
    from .release_harness import build_registry

    return build_registry(tmp_path_factory.mktemp("release-registry") / "mlflow.db")
