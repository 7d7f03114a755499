"""Shared serving fixtures: one trained model per session, loaded in process or served.

Training and logging a model costs ~20 s on CI's two cores, so the registered fixture
model is session-scoped; so is the live server most route tests share. The live server
is started through ``python -m pipeline serve`` on a local store (``MLOPS_HOME``) so the
serve command's defaults are exercised by every test that uses it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serving.process import RunningServer, free_port, running_server
from tests.serving.model_factory import RegisteredFixture, load_sample, train_and_register


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlops-home")


@pytest.fixture(scope="session")
def registered(store_dir: Path) -> RegisteredFixture:
    """The fixture model, registered as ``adult-income`` version 1, alias champion."""
    return train_and_register(store_dir)


@pytest.fixture(scope="session")
def loaded(registered: RegisteredFixture) -> Any:
    from serving.model import load_model

    return load_model("models:/adult-income@champion", tracking_uri=registered.tracking_uri)


@pytest.fixture(scope="session")
def sample_rows() -> list[dict[str, Any]]:
    """Ten JSON-ready feature rows (None where the census has a missing value)."""
    from pipeline import schema

    frame = load_sample(10, seed=123)[list(schema.FEATURES)]
    return [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        for row in frame.astype(object).to_dict(orient="records")
    ]


@pytest.fixture(scope="session")
def capture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("capture")


@pytest.fixture(scope="session")
def live_server(registered: RegisteredFixture, store_dir: Path, capture_dir: Path) -> Iterator[RunningServer]:
    """``python -m pipeline serve`` on the fixture store's champion, capturing everything."""
    port = free_port()
    command = [
        sys.executable, "-m", "pipeline", "serve", "--port", str(port),
        "--capture-dir", str(capture_dir), "--capture-sample-rate", "1.0",
    ]
    with running_server(
        command=command, port=port, env={"MLOPS_HOME": str(store_dir)}, log_path=store_dir / "live-server.log"
    ) as server:
        yield server
