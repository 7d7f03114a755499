"""The serving model version and its monitoring baseline, from the MLflow registry.

The registering run saves ``monitoring/baseline.parquet`` (training rows: features,
the label, ``prediction``: the probability of the positive class for a binary model, the
predicted value for regression) and tags the model version with ``baseline_uri``
(docs/contracts.md, "The model"). The monitor resolves the alias that serves (``champion``
by default), downloads that artifact and normalises its types to what the capture reader
produces. Every way this can fail on bad input (no such model or alias, no tag, an
artifact that is gone or lacks columns) is a ``BaselineError`` that says which.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import pandas as pd

from pipeline.monitoring.errors import BaselineError
from pipeline import schema

if TYPE_CHECKING:
    from mlflow import MlflowClient

BASELINE_TAG: Final = "baseline_uri"
PREDICTION_COLUMN: Final = "prediction"
HOLDOUT_PREFIX: Final = "holdout_"
HOLDOUT_AUC_METRIC: Final = HOLDOUT_PREFIX + "roc_auc"
"""The registering run's metric holding the version's ROC AUC on the frozen holdout
(docs/contracts.md: metrics live on the version's run, not in its tags); a regression
version's run holds ``holdout_rmse`` and ``holdout_mae`` alike."""


@dataclass(frozen=True)
class ServingBaseline:
    """The model version that serves and the training rows it is monitored against."""

    model_name: str
    model_version: str
    alias: str
    run_id: str
    baseline_uri: str
    frame: pd.DataFrame
    holdout_roc_auc: float | None = None
    tags: dict[str, str] = field(default_factory=dict)
    holdout_metrics: dict[str, float] = field(default_factory=dict)
    """The version's holdout metrics of the active task by name (``roc_auc``, or
    ``rmse`` and ``mae``), those the run logged."""


def normalise_baseline(frame: pd.DataFrame, origin: str) -> pd.DataFrame:
    """The baseline with numeric features as float64 and categoricals as ``str``/``None``;
    the label, when present, becomes the model's target (``schema.target``: 0/1 for the
    positive class or not, the value for regression), as the labels file's are.

    Raises ``BaselineError`` naming the missing columns, or when the frame has no rows.
    """
    missing = [c for c in (*schema.FEATURES, PREDICTION_COLUMN) if c not in frame.columns]
    if missing:
        raise BaselineError(f"baseline {origin} lacks column(s): {', '.join(missing)}")
    if frame.empty:
        raise BaselineError(f"baseline {origin} has no rows")
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for column in schema.NUMERIC_FEATURES:
        out[column] = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    for column in schema.CATEGORICAL_FEATURES:
        values = frame[column].astype(object).to_numpy()
        out[column] = [None if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA else str(v) for v in values]
    out[PREDICTION_COLUMN] = pd.to_numeric(frame[PREDICTION_COLUMN], errors="coerce").to_numpy(dtype=np.float64)
    if schema.LABEL in frame.columns:
        if schema.IS_CLASSIFIER:
            out[schema.LABEL] = np.asarray(schema.target(frame), dtype=np.float64)
        else:
            out[schema.LABEL] = pd.to_numeric(frame[schema.LABEL], errors="coerce").to_numpy(dtype=np.float64)
    return out.loc[:, [*schema.FEATURES, PREDICTION_COLUMN, *([schema.LABEL] if schema.LABEL in frame.columns else [])]]


def _holdout_metrics(client: MlflowClient, run_id: str | None) -> dict[str, float]:
    """The run's ``holdout_<metric>`` for each metric of the active task, by metric name,
    leaving out what is absent or impossible (an AUC outside [0, 1], a negative or
    infinite error). Empty when the version has no run or the run is gone; the monitor
    then measures the reference on the baseline rows."""
    from mlflow.exceptions import MlflowException

    from pipeline.project import TASKS

    if not run_id:
        return {}
    try:
        logged = client.get_run(run_id).data.metrics
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    found = {}
    for metric in TASKS[schema.TASK].metrics:
        value = logged.get(HOLDOUT_PREFIX + metric)
        if value is None or not np.isfinite(value) or value < 0 or (metric == "roc_auc" and value > 1.0):
            continue
        found[metric] = float(value)
    return found


def load_serving_baseline(tracking_uri: str, model_name: str, alias: str = "champion") -> ServingBaseline:
    """Resolve ``model_name@alias`` and load its monitoring baseline.

    Raises ``BaselineError`` when the model or alias does not exist, the version has no
    ``baseline_uri`` tag, or the artifact cannot be downloaded or read. Errors reaching
    the tracking server itself propagate (they are outages, not bad input).
    """
    import mlflow.artifacts
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        version = client.get_model_version_by_alias(model_name, alias)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            raise BaselineError(f"model {model_name!r} has no version with alias {alias!r} in {tracking_uri}") from error
        raise
    tags = dict(version.tags or {})
    uri = tags.get(BASELINE_TAG)
    if not uri:
        raise BaselineError(
            f"model {model_name!r} version {version.version} (alias {alias!r}) has no {BASELINE_TAG!r} tag: "
            "it was registered without a monitoring baseline, so there is nothing to compare against"
        )
    with tempfile.TemporaryDirectory(prefix="baseline-") as folder:
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder, tracking_uri=tracking_uri))
            frame = pd.read_parquet(local)
        except (MlflowException, OSError, ValueError) as error:
            raise BaselineError(f"cannot read the baseline {uri} of {model_name!r} version {version.version}: {error}") from error
    holdout = _holdout_metrics(client, version.run_id)
    return ServingBaseline(
        model_name=model_name,
        model_version=str(version.version),
        alias=alias,
        run_id=version.run_id or "",
        baseline_uri=uri,
        frame=normalise_baseline(frame, uri),
        holdout_roc_auc=holdout.get("roc_auc"),
        tags=tags,
        holdout_metrics=holdout,
    )
