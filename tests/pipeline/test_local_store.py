"""A local store that is moved or copied keeps working: its registry's artifact paths follow it.

MLflow records absolute ``file://`` artifact URIs; before relocation, moving the store (or
renaming the checkout that holds ``.mlops/``) made every artifact "not found".
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient

from pipeline.local_store import MARKER, LocalStore
from tests.serving.model_factory import train_and_register

pytestmark = pytest.mark.slow


def _load_champion(store: LocalStore):
    import mlflow

    from pipeline.mlflow_scope import mlflow_uris

    with mlflow_uris(store.tracking_uri):
        return mlflow.sklearn.load_model("models:/adult-income@champion")


@pytest.mark.parametrize("how", ["move", "copy", "move_without_marker"])
def test_a_relocated_store_finds_its_artifacts(how: str, tmp_path: Path) -> None:
    original = tmp_path / "first" / "store"
    train_and_register(original, rows=1500)
    if how != "move_without_marker":
        assert LocalStore(original).relocate() is None and (original / MARKER).is_file()
    moved = LocalStore(tmp_path / "renamed-checkout" / ".mlops")
    moved.root.parent.mkdir()
    (shutil.copytree if how == "copy" else shutil.move)(original, moved.root)

    note = moved.relocate()
    assert note is not None and str(original) in note and str(moved.root) in note
    assert _load_champion(moved) is not None
    client = MlflowClient(tracking_uri=moved.tracking_uri, registry_uri=moved.tracking_uri)
    version = client.get_model_version("adult-income", "1")
    baseline = version.tags["baseline_uri"]
    assert baseline.startswith(moved.root.as_uri() + "/") and Path(baseline.removeprefix("file://")).is_file()
    assert moved.relocate() is None, "a second look must find nothing to rewrite"
    if how == "copy":
        assert _load_champion(LocalStore(original)) is not None, "the original must keep its own paths"


def test_serve_relocates_a_moved_store_before_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve`` on a moved store used to load from the old artifact paths (found only after a ``run``)."""
    import argparse

    from pipeline.commands import serve as serve_command

    original = tmp_path / "first" / "store"
    train_and_register(original, rows=1500)
    LocalStore(original).relocate()
    moved = tmp_path / "renamed" / ".mlops"
    moved.parent.mkdir()
    shutil.move(original, moved)
    monkeypatch.setenv("MLOPS_HOME", str(moved))
    loaded: list[object] = []

    def fake_server(options: object) -> int:
        loaded.append(_load_champion(LocalStore(moved)))
        return 0

    monkeypatch.setattr("serving.server.run", fake_server)
    monkeypatch.setattr("serving.server.options_from_args", lambda args: args)
    args = argparse.Namespace(tracking_uri=None, model_uri=None, model_name=None, no_capture=True, capture_dir=None)
    assert serve_command.run(args) == 0
    assert loaded and loaded[0] is not None
