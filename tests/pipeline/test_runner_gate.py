"""The runner end to end on a real-data sample: a first champion, then challengers built to
fail one gate rule each (worse overall, a regressed slice, a fairness violation), each
refused with the champion unchanged; and a re-run with nothing changed does nothing.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from pipeline.exit_codes import ExitCode
from pipeline.local_store import LocalStore
from pipeline.runner import RunConfig, run_pipeline
from pipeline.steps.gate import GateThresholds
from pipeline.steps.register import LINEAGE_TAGS
from pipeline.steps.split import SplitParams, row_buckets

pytestmark = pytest.mark.slow
QUIET = lambda line: None  # noqa: E731 - progress sink for tests


@pytest.fixture(scope="module")
def champion_store(adult_sample_csv: Path, fast_hyperparameters, tmp_path_factory: pytest.TempPathFactory):
    store = LocalStore(tmp_path_factory.mktemp("store"))
    config = RunConfig(data=adult_sample_csv, store=store, hyperparameters=fast_hyperparameters)
    result = run_pipeline(config, progress=QUIET)
    assert result.exit_code == ExitCode.OK, result.message
    return store, config, result


def _client(store: LocalStore) -> MlflowClient:
    return MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)


def _champion(store: LocalStore) -> str:
    return str(_client(store).get_model_version_by_alias("adult-income", "champion").version)


def _training_rows(frame: pd.DataFrame) -> pd.Series:
    """Rows outside the frozen holdout: corrupting them leaves the holdout's digest unchanged."""
    return row_buckets(frame, SplitParams().salt) >= int(SplitParams().holdout_fraction * 10_000)


def test_first_model_is_promoted_with_complete_lineage(champion_store) -> None:
    store, _, result = champion_store
    assert result.status == "promoted" and result.gate_passed is True
    assert result.champion_version == result.model_version == "1"
    client = _client(store)
    version = client.get_model_version("adult-income", "1")
    assert set(LINEAGE_TAGS) <= set(version.tags)
    # A few structured tags; parameters and metrics are the run's, not copied into tags.
    assert not [k for k in version.tags if k.startswith(("param.", "metric."))], version.tags
    assert len(version.tags) <= 15, sorted(version.tags)
    assert set(client.get_registered_model("adult-income").aliases) == {"champion", "challenger"}
    run = client.get_run(version.run_id)
    assert 0.5 < run.data.metrics["holdout_roc_auc"] <= 1 and "train.max_depth" in run.data.params
    card = version.description
    assert card.startswith("# adult-income: candidate") and "**Gate: passed** with no champion" in card
    assert version.tags["data_digest"] in card and version.tags["git_commit"] in card and version.run_id in card
    assert f"{run.data.metrics['holdout_roc_auc']:.4f}" in card and "## Slices" in card and "## Fairness" in card
    contexts = {t.value for i in run.inputs.dataset_inputs for t in i.tags if t.key == "mlflow.data.context"}
    assert {"training", "validation", "holdout"} <= contexts
    from pipeline.plots import GATE_PLOT_FILES

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    # The first model has no champion, so no bootstrap picture (docs/pipeline.md, "Pictures").
    assert artifacts == {f"plots/{name}" for name in GATE_PLOT_FILES} - {"plots/bootstrap_auc_difference.png"}
    logged = Path(run.info.artifact_uri.removeprefix("file://")) / "plots"
    assert all((logged / Path(a).name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for a in artifacts)
    baseline = Path(version.tags["baseline_uri"].removeprefix("file://"))
    frame = pd.read_parquet(baseline)
    assert {"label", "prediction", "age"} <= set(frame.columns) and frame["prediction"].between(0, 1).all()
    assert Path(version.tags["gate_report"].removeprefix("file://")).is_file()
    import mlflow

    from pipeline.mlflow_scope import mlflow_uris

    with mlflow_uris(store.tracking_uri):
        model_info = mlflow.models.get_model_info("models:/adult-income/1")
    assert [c.name for c in model_info.signature.inputs.inputs][0] == "age"
    assert result.report_path is not None and "PROMOTE" in result.report_path.read_text()


def test_rerun_with_nothing_changed_does_nothing(champion_store) -> None:
    store, config, _ = champion_store
    result = run_pipeline(config, progress=QUIET)
    assert result.exit_code == ExitCode.OK and result.status == "nothing_to_do"
    states = {s.name: s.state for s in result.steps}
    assert [states[n] for n in ("ingest", "validate", "split", "train", "evaluate")] == ["cached"] * 5
    assert states["resume"] == "done"  # the registry check for an unfinished deploy always runs
    assert _champion(store) == "1"


def _refused(result, store: LocalStore, champion_before: str) -> None:
    assert result.exit_code == ExitCode.GATE_REFUSED, result.message
    assert result.gate_passed is False
    assert _champion(store) == champion_before
    client = _client(store)
    refused = client.get_model_version("adult-income", result.model_version)
    assert refused.tags["gate_passed"] == "false"
    assert set(LINEAGE_TAGS) <= set(refused.tags)
    assert "**Gate: refused** against champion v" + champion_before in refused.description
    assert all(reason[:200] in refused.description for reason in result.reasons)
    assert str(client.get_model_version_by_alias("adult-income", "challenger").version) == result.model_version
    report = json.loads(Path(refused.tags["gate_report"].removeprefix("file://")).read_text())
    assert report["passed"] is False and report["reasons"] == result.reasons


def test_worse_challenger_is_refused(champion_store) -> None:
    store, config, _ = champion_store
    before = _champion(store)
    weak = replace(config.hyperparameters or config.resolved().hyperparameters, n_estimators=2, max_depth=1)
    result = run_pipeline(replace(config, hyperparameters=weak, gate=GateThresholds(min_roc_auc=0.6)), progress=QUIET)
    _refused(result, store, before)
    assert any(r.startswith("paired bootstrap:") for r in result.reasons), result.reasons
    run_id = _client(store).get_model_version("adult-income", result.model_version).run_id
    assert "plots/bootstrap_auc_difference.png" in {a.path for a in _client(store).list_artifacts(run_id, "plots")}


def test_slice_regression_is_refused(champion_store, adult_sample: pd.DataFrame, tmp_path: Path) -> None:
    store, config, _ = champion_store
    before = _champion(store)
    data = adult_sample.copy()
    rows = _training_rows(data) & (data["race"] == "Black")
    data.loc[rows, "label"] = 1 - data.loc[rows, "label"]
    path = tmp_path / "black_inverted.csv"
    data.to_csv(path, index=False)
    result = run_pipeline(replace(config, data=path), progress=QUIET)
    _refused(result, store, before)
    assert any(r.startswith("slice regression: race=Black") for r in result.reasons), result.reasons


def test_fairness_violation_is_refused(champion_store, adult_sample: pd.DataFrame, tmp_path: Path) -> None:
    store, config, _ = champion_store
    before = _champion(store)
    data = adult_sample.copy()
    data.loc[_training_rows(data) & (data["sex"] == "Female"), "label"] = 0
    path = tmp_path / "female_zeroed.csv"
    data.to_csv(path, index=False)
    result = run_pipeline(replace(config, data=path), progress=QUIET)
    _refused(result, store, before)
    assert any(r.startswith("fairness: equal-opportunity difference") for r in result.reasons), result.reasons
