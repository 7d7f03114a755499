"""Where the monitor finds the serving version's holdout ROC AUC: the registering run's
``holdout_roc_auc`` metric (docs/contracts.md), not a tag."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from pipeline.monitoring.baseline import _holdout_metrics, load_serving_baseline
from tests.pipeline.monitoring.conftest import MODEL_NAME


@pytest.mark.slow  # the registry fixture trains and registers a model
def test_the_reference_auc_is_the_registering_runs_metric(registry) -> None:
    serving = load_serving_baseline(registry.tracking_uri, MODEL_NAME)
    assert serving.holdout_roc_auc == pytest.approx(0.9)
    assert not [k for k in serving.tags if k.startswith("metric.")]


def test_a_run_without_the_metric_or_no_run_gives_no_reference(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("x", artifact_location=(tmp_path / "a").as_uri())
    bare = client.create_run(experiment).info.run_id
    odd = client.create_run(experiment).info.run_id
    client.log_metric(odd, "holdout_roc_auc", 1.5)
    assert _holdout_metrics(client, bare) == {}
    assert _holdout_metrics(client, odd) == {}, "an AUC outside [0, 1] is not a reference"
    assert _holdout_metrics(client, None) == {}
    assert _holdout_metrics(client, "0" * 32) == {}
