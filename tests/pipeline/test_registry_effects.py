"""A cache never replays an effect on the registry; the registry says what was registered.

An operator moves ``champion`` back (v2 -> v1). Re-running v2's commit must leave that
move alone: no smoke test of v2 against what v1 serves (which once rewrote v2's verdict
to ``failed``), no duplicate v3 promoted over the rollback. A refused candidate re-run
against the same champion is refused again without registering a duplicate.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from mlflow import MlflowClient

from pipeline.exit_codes import ExitCode
from pipeline.local_store import LocalStore
from pipeline.registry import SMOKE_TAG
from pipeline.runner import RunConfig, run_pipeline
from pipeline.steps.gate import GateThresholds
from pipeline.wiring import commit_pipeline

pytestmark = pytest.mark.slow
QUIET = lambda line: None  # noqa: E731 - progress sink for tests


def _client(store: LocalStore) -> MlflowClient:
    return MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)


def _versions(store: LocalStore) -> list[str]:
    return sorted(str(v.version) for v in _client(store).search_model_versions("name = 'adult-income'"))


def test_steps_with_effects_are_never_cached() -> None:
    steps = {step.name: step for step in commit_pipeline()}
    assert "registry" in steps["register"].effects and not steps["register"].cacheable
    assert not steps["deploy"].cacheable and not steps["resume"].cacheable


def test_an_operator_rollback_is_respected_by_a_rerun(
    adult_sample_csv: Path, fast_hyperparameters, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "store")
    first = RunConfig(data=adult_sample_csv, store=store, hyperparameters=fast_hyperparameters, deploy=False)
    assert run_pipeline(first, progress=QUIET).exit_code == ExitCode.OK
    second = replace(first, hyperparameters=replace(fast_hyperparameters, n_estimators=90))
    promoted = run_pipeline(second, progress=QUIET)
    assert promoted.exit_code == ExitCode.OK and promoted.champion_version == "2", promoted.message

    client = _client(store)
    client.set_registered_model_alias("adult-income", "champion", "1")  # the operator's rollback
    tags_before = dict(client.get_model_version("adult-income", "2").tags)

    for attempt in range(2):
        again = run_pipeline(replace(second, deploy=True), progress=QUIET)
        assert again.exit_code == ExitCode.OK, (attempt, again.message)
        assert again.status == "rollback_respected" and "respected" in again.message
        assert again.champion_version == "1" and again.model_version == "2"
        assert str(client.get_model_version_by_alias("adult-income", "champion").version) == "1"
        assert _versions(store) == ["1", "2"], "a duplicate of the rolled-back candidate was registered"
        tags_after = dict(client.get_model_version("adult-income", "2").tags)
        assert tags_after == tags_before, "v2's verdict was rewritten although it was never served again"
        assert SMOKE_TAG not in tags_after

    forced = run_pipeline(replace(second, force=True), progress=QUIET)
    assert forced.exit_code == ExitCode.OK and forced.model_version == "3", "--force registers a new version"


def test_a_refused_candidate_is_not_registered_twice(
    adult_sample_csv: Path, fast_hyperparameters, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "store")
    config = RunConfig(data=adult_sample_csv, store=store, hyperparameters=fast_hyperparameters, deploy=False)
    assert run_pipeline(config, progress=QUIET).exit_code == ExitCode.OK
    refused_config = replace(
        config,
        hyperparameters=replace(fast_hyperparameters, n_estimators=3, max_depth=1),
        gate=GateThresholds(min_roc_auc=0.99),
    )
    refused = run_pipeline(refused_config, progress=QUIET)
    assert refused.exit_code == ExitCode.GATE_REFUSED and refused.model_version == "2", refused.message
    again = run_pipeline(refused_config, progress=QUIET)
    assert again.exit_code == ExitCode.GATE_REFUSED, again.message
    assert again.model_version == "2" and again.reasons, again.reasons
    assert _versions(store) == ["1", "2"]
