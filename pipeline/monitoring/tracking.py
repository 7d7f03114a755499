"""Log a monitor run to MLflow, linked to the model version it judged.

Each run of the monitor becomes an MLflow run in the ``monitoring`` experiment, tagged
``model_name``, ``model_version`` and ``verdict`` (so the registry's history of a version
can be found with one search), with the scores as metrics, the thresholds as parameters
and the report folder as artifacts. With the embedded SQLite store the experiment's
artifacts go beside the database (``artifacts/``), as the local store lays them out,
rather than into a ``mlruns/`` folder in whatever directory the command ran from.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from pipeline.mlflow_ui import classic_experiment
from pipeline.monitoring.analysis import MonitorResult

EXPERIMENT: Final = "monitoring"
REPORT_ARTIFACT_PATH: Final = "monitor_report"


def _artifact_location(tracking_uri: str) -> str | None:
    """Where a new experiment's artifacts go: beside a SQLite database, else the server's choice."""
    if tracking_uri.startswith("sqlite:///"):
        database = Path(tracking_uri.removeprefix("sqlite:///"))
        return (database.parent / "artifacts").resolve().as_uri()
    return None


HISTORY_WINDOWS: Final = 50
"""How many earlier monitor runs the drift-over-time picture shows at most."""
_PSI_PREFIX: Final = "psi."


@dataclass(frozen=True)
class DriftWindow:
    """One judged window as the drift-over-time picture needs it."""

    time: datetime
    model_version: str
    psi: dict[str, float]


def drift_history(tracking_uri: str, model_name: str, limit: int = HISTORY_WINDOWS) -> list[DriftWindow]:
    """The earlier monitor runs of ``model_name`` (any version), oldest first, at most
    ``limit``: when each window was judged, which version served, each feature's PSI.
    An empty list when the ``monitoring`` experiment does not exist yet."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    quoted = model_name.replace("'", "\\'")
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.model_name = '{quoted}'",
        order_by=["attributes.start_time DESC"], max_results=limit,
    )
    windows = [
        DriftWindow(
            time=datetime.fromtimestamp(run.info.start_time / 1000, tz=UTC),
            model_version=run.data.tags.get("model_version", "?"),
            psi={k.removeprefix(_PSI_PREFIX): v for k, v in run.data.metrics.items() if k.startswith(_PSI_PREFIX)},
        )
        for run in runs
    ]
    return [w for w in reversed(windows) if w.psi]


def _metric_key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", name)


def log_monitor_run(result: MonitorResult, report_dir: Path, tracking_uri: str) -> str:
    """Log ``result`` and the report folder as one MLflow run; returns the run id."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment_id = classic_experiment(client, EXPERIMENT, _artifact_location(tracking_uri))
    tags = {
        "model_name": result.model_name,
        "model_version": result.model_version,
        "model_alias": result.alias,
        "verdict": result.verdict.value,
        "capture_source": result.capture["source"],
        "baseline_uri": result.baseline_uri,
        "mlflow.runName": f"monitor-{result.model_name}-v{result.model_version}",
        # MLflow caps a tag value at 8,000 characters; the full reasons are in the report.
        "mlflow.note.content": "\n".join(f"- {r}" for r in result.reasons)[:7000],
    }
    run = client.create_run(experiment_id, tags=tags)
    run_id = run.info.run_id
    metrics = {
        "window_rows": float(result.capture["rows"]),
        "malformed_lines": float(result.capture["malformed_lines"]),
        "feature_drift_score": result.feature_drift_score,
        "prediction_drift_score": result.prediction_drift_score,
        "drifted_feature_count": float(len(result.drifted_features)) if result.features else None,
    }
    if result.performance is not None:
        metrics["labelled_rows"] = float(result.performance.labelled_rows)
        metrics["live_roc_auc"] = result.performance.live_roc_auc
        metrics["live_rmse"] = result.performance.live_rmse
        metrics["live_mae"] = result.performance.live_mae
        metrics["performance_drop"] = result.performance.drop
    for item in result.features:
        metrics[_metric_key(f"{_PSI_PREFIX}{item.feature}")] = item.psi
    timestamp = int(run.info.start_time)
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), timestamp, 0) for k, v in metrics.items() if v is not None],
        params=[Param(f"threshold.{k}", str(v)) for k, v in asdict(result.thresholds).items()],
    )
    client.log_artifacts(run_id, str(report_dir), REPORT_ARTIFACT_PATH)
    client.set_terminated(run_id)
    return run_id
