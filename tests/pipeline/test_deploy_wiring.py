"""The deploy step at the end of the commit pipeline: a promoted champion is served on
127.0.0.1 and smoke-tested; a failed smoke test rolls ``champion`` back, ends the run with
DEPLOY_FAILED, and a re-run registers and deploys afresh instead of replaying the
rolled-back promotion from the cache.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from mlflow import MlflowClient

from pipeline.exit_codes import ExitCode
from pipeline.local_store import LocalStore
from pipeline.runner import RunConfig, run_pipeline
from pipeline.steps import deploy as deploy_module
from pipeline.steps.smoke_test import SmokeCheck, SmokeReport

pytestmark = pytest.mark.slow
QUIET = lambda line: None  # noqa: E731 - progress sink for tests


def _aliases(store: LocalStore) -> dict[str, str]:
    client = MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
    return {alias: str(version) for alias, version in client.get_registered_model("adult-income").aliases.items()}


def _failing_smoke_test(url: str, expected, model_name: str, version: str, **_: object) -> SmokeReport:
    return SmokeReport(url, (SmokeCheck("known_prediction", False, "served 0.93, expected 0.07"),))


def test_promotion_is_deployed_then_a_failed_smoke_test_rolls_back(
    adult_sample_csv: Path, fast_hyperparameters, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path / "store")
    config = RunConfig(data=adult_sample_csv, store=store, hyperparameters=fast_hyperparameters)

    first = run_pipeline(config, progress=QUIET)
    assert first.exit_code == ExitCode.OK, first.message
    assert "passed 5 smoke checks" in first.message
    deploy_report = json.loads((first.report_path.parent / "deploy.json").read_text())
    assert deploy_report["passed"] is True and deploy_report["version"] == "1"

    # A second, different candidate (more trees) clears the gate but fails its smoke test.
    monkeypatch.setattr(deploy_module, "run_smoke_test", _failing_smoke_test)
    challenger = replace(config, hyperparameters=replace(fast_hyperparameters, n_estimators=90))
    failed = run_pipeline(challenger, progress=QUIET)
    assert failed.exit_code == ExitCode.DEPLOY_FAILED, failed.message
    assert failed.status == "rolled_back"
    assert failed.champion_version == "1"
    assert any("known_prediction" in reason for reason in failed.reasons)
    assert _aliases(store)["champion"] == "1", "the rolled-back version must not stay champion"

    # With the smoke test healthy again, the same candidate is registered and deployed anew.
    monkeypatch.undo()
    again = run_pipeline(challenger, progress=QUIET)
    assert again.exit_code == ExitCode.OK, again.message
    assert again.model_version == "3" and _aliases(store)["champion"] == "3"


def test_no_deploy_stops_after_register(adult_sample_csv: Path, fast_hyperparameters, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    config = RunConfig(data=adult_sample_csv, store=store, hyperparameters=fast_hyperparameters, deploy=False)
    result = run_pipeline(config, progress=QUIET)
    assert result.exit_code == ExitCode.OK, result.message
    assert "smoke" not in result.message
    assert not (result.report_path.parent / "deploy.json").exists()
    assert _aliases(store)["champion"] == "1"
