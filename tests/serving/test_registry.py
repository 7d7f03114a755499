"""The registry look-up in its helper process: same answer as in process, errors of the
same kind, one helper for the retries, and nothing of it left for the workers to inherit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from serving.model import ModelLoadError, ModelNotYetAvailable, load_model
from serving.registry import RegistryResolver, resolve

pytestmark = pytest.mark.slow


def test_the_helper_answers_what_resolve_answers(registered: Any) -> None:
    uri = "models:/adult-income@champion"
    with RegistryResolver() as resolver:
        remote = resolver.submit(uri, registered.tracking_uri).result(timeout=120)
    local = resolve(uri, registered.tracking_uri)
    assert remote == local
    assert (remote.name, remote.version, remote.run_id) == ("adult-income", registered.version, registered.run_id)
    assert (Path(remote.model_dir) / "MLmodel").is_file()
    assert remote.baseline_path is not None and Path(remote.baseline_path).is_file()


def test_a_missing_alias_is_not_yet_available_across_the_process(registered: Any) -> None:
    with RegistryResolver() as resolver:
        with pytest.raises(ModelNotYetAvailable, match="cannot resolve"):
            resolver.submit("models:/adult-income@nobody", registered.tracking_uri).result(timeout=120)
        # A version number that does not exist will not appear by waiting: a plain load error.
        with pytest.raises(ModelLoadError, match="cannot resolve") as refused:
            resolver.submit("models:/adult-income/999", registered.tracking_uri).result(timeout=120)
        assert not isinstance(refused.value, ModelNotYetAvailable)


def test_retries_reuse_one_helper_and_a_dead_one_is_replaced(registered: Any) -> None:
    uri = "models:/adult-income@champion"
    with RegistryResolver() as resolver:
        resolver.submit(uri, registered.tracking_uri).result(timeout=120)
        first = resolver._process
        resolver.submit(uri, registered.tracking_uri).result(timeout=120)
        assert resolver._process is first
        assert first is not None
        first.kill()
        first.wait()
        assert resolver.submit(uri, registered.tracking_uri).result(timeout=120).version == registered.version
        assert resolver._process is not first


def test_start_launches_the_helper_at_once_and_the_first_request_uses_it(registered: Any) -> None:
    # The server starts the helper before its own imports, so MLflow's import overlaps them.
    with RegistryResolver() as resolver:
        resolver.start()
        started = resolver._process
        assert started is not None and started.poll() is None
        found = resolver.submit("models:/adult-income@champion", registered.tracking_uri).result(timeout=120)
        assert found.version == registered.version
        assert resolver._process is started

def test_close_leaves_no_pipe_to_inherit(registered: Any) -> None:
    # Workers fork after close(): an inherited pipe end would keep the helper alive.
    resolver = RegistryResolver()
    resolver.submit("models:/adult-income@champion", registered.tracking_uri).result(timeout=120)
    process = resolver._process
    assert process is not None and process.stdin is not None and process.stdout is not None
    resolver.close()
    assert process.stdin.closed and process.stdout.closed
    assert process.wait(30) == 0  # it ends at the end of its input


def test_the_server_path_loads_through_the_helper(registered: Any) -> None:
    with RegistryResolver() as resolver:
        model = load_model("models:/adult-income@champion", tracking_uri=registered.tracking_uri, resolver=resolver)
        assert resolver._process is not None
    assert (model.name, model.version, model.fast_path) == ("adult-income", registered.version, True)
    assert model.lineage["git_commit"] == "fixture"
    assert model.baseline_predictions is not None and model.baseline_predictions.size > 0


def test_the_helper_runs_this_serving_package_from_any_directory(
        registered: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # From another working directory and without PYTHONPATH, `python -m serving.registry`
    # would find another installed copy of the package, or none.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    with RegistryResolver() as resolver:
        found = resolver.submit("models:/adult-income@champion", registered.tracking_uri).result(timeout=120)
    assert found.version == registered.version
