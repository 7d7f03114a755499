"""The fresh local registry made in a helper process (pipeline/fresh_registry.py): it is
published whole or not at all, never replaces a database that exists, and leaves nothing
behind when the run ends first."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pipeline import fresh_registry

pytestmark = pytest.mark.slow


def _tables(database: Path) -> set[str]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_the_helper_publishes_a_complete_registry_that_mlflow_opens_as_it_is(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    database = tmp_path / "mlflow.db"
    preparation = fresh_registry.start(database)
    assert preparation is not None
    fresh_registry.wait_for(database)
    assert {"alembic_version", "experiments", "registered_models", "model_versions", "logged_models"} <= _tables(database)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]  # no private file left
    before = database.read_bytes()
    uri = f"sqlite:///{database}"
    assert [e.name for e in MlflowClient(tracking_uri=uri).search_experiments()] == ["Default"]
    assert database.read_bytes() == before  # at MLflow's head already: nothing migrated


def test_an_existing_database_is_never_replaced(tmp_path: Path) -> None:
    database = tmp_path / "mlflow.db"
    database.write_bytes(b"someone else's")
    assert fresh_registry.start(database) is None
    # One that appears while the helper works (another run, or register's own fallback) wins.
    database.unlink()
    preparation = fresh_registry.start(database)
    assert preparation is not None
    database.write_bytes(b"someone else's")
    assert preparation.wait() is True
    assert database.read_bytes() == b"someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]


def test_a_run_that_ends_first_stops_the_helper_and_leaves_nothing(tmp_path: Path) -> None:
    database = tmp_path / "mlflow.db"
    preparation = fresh_registry.start(database)
    assert preparation is not None
    preparation.close()
    assert preparation.process.poll() is not None
    assert list(tmp_path.iterdir()) == []
    fresh_registry.wait_for(database)  # nothing pending any more: returns at once
    assert not database.exists()
