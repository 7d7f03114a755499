"""Fixtures for the monitor's tests, made here in exactly the contract's formats.

A small scikit-learn model is trained on a sample of ``data/adult.csv.gz``, logged and
registered in a temporary SQLite MLflow store with the ``monitoring/baseline.parquet``
artifact and the ``baseline_uri`` tag (docs/contracts.md, "The model"); capture files are
written line by line as the server writes them ("Serving"). Shifted traffic is made by
moving ages and hours up and changing the workclass mix, so the drift is known.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipeline.schema import DEFAULT_DATASET
from pipeline import schema

MODEL_NAME = "adult-income"


def _json_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_capture(
    folder: Path,
    frame: pd.DataFrame,
    probabilities: np.ndarray | None,
    *,
    version: str,
    predictions: np.ndarray | None = None,
    model_name: str = MODEL_NAME,
    request_size: int = 25,
    prefix: str = "req",
    name: str = "capture-0001.jsonl",
) -> list[str]:
    """Write ``frame`` as capture lines of ``request_size`` rows; returns the request ids.

    A classifier's lines carry ``probabilities`` and the 0/1 predictions at 0.5; a
    regression model's (``probabilities=None``) its predicted values and null
    probabilities, as the server writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    ids: list[str] = []
    with (folder / name).open("a") as handle:
        for start in range(0, len(frame), request_size):
            chunk = frame.iloc[start : start + request_size]
            if probabilities is None:
                assert predictions is not None, "a regression capture needs its predicted values"
                probs = None
                predicted: list[float] = [float(v) for v in predictions[start : start + request_size]]
            else:
                probs = [float(p) for p in probabilities[start : start + request_size]]
                predicted = [int(p >= 0.5) for p in probs]
            request_id = f"{prefix}-{start // request_size:05d}"
            ids.append(request_id)
            record = {
                "request_id": request_id,
                "timestamp": "2026-11-30T00:00:00+00:00",
                "model_name": model_name,
                "model_version": version,
                "columns": list(schema.FEATURES),
                "rows": [[_json_value(v) for v in row] for row in chunk.loc[:, list(schema.FEATURES)].itertuples(index=False)],
                "predictions": predicted,
                "probabilities": probs,
            }
            handle.write(json.dumps(record) + "\n")
    return ids


def write_labels(path: Path, request_ids: list[str], labels: np.ndarray, request_size: int = 25) -> Path:
    """Labels CSV ``request_id,row,label`` for rows written by ``write_capture`` (whole
    numbers as integers, other numbers as written, text as is)."""
    lines = ["request_id,row,label"]
    for position, label in enumerate(labels):
        text = str(label) if isinstance(label, str) else (str(int(label)) if float(label).is_integer() else repr(float(label)))
        lines.append(f"{request_ids[position // request_size]},{position % request_size},{text}")
    path.write_text("\n".join(lines) + "\n")
    return path


def shift(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The world changed: people are older, work longer, more are self-employed, and
    more are married (which moves the model's predictions up)."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    out["age"] = np.clip(out["age"] + 15, 17, 90)
    out["hours_per_week"] = np.clip(out["hours_per_week"] * 1.4, 1, 99).round()
    out.loc[rng.random(len(out)) < 0.4, "workclass"] = "Self-emp-inc"
    out.loc[rng.random(len(out)) < 0.5, "marital_status"] = "Married-civ-spouse"
    return out


@dataclass(frozen=True)
class Registry:
    """A temporary MLflow store holding the trained model (see the ``registry`` fixture)."""

    tracking_uri: str
    root: Path
    trained: Trained
    version: str = "1"


def _fit(train: pd.DataFrame) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), list(schema.NUMERIC_FEATURES)),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"), OneHotEncoder(handle_unknown="ignore")
                ),
                list(schema.CATEGORICAL_FEATURES),
            ),
        ]
    )
    model = make_pipeline(pre, LogisticRegression(max_iter=300))
    return model.fit(train.loc[:, list(schema.FEATURES)], train[schema.LABEL])


@pytest.fixture(scope="session")
def adult() -> pd.DataFrame:
    frame = pd.read_csv(DEFAULT_DATASET).sample(n=9000, random_state=7).reset_index(drop=True)
    for column in schema.CATEGORICAL_FEATURES:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


@dataclass(frozen=True)
class Trained:
    """A small fitted model, the rows it was trained on and rows it never saw."""

    model: Any
    train: pd.DataFrame
    holdout: pd.DataFrame

    def probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(frame.loc[:, list(schema.FEATURES)])[:, 1]


@pytest.fixture(scope="session")
def trained(adult: pd.DataFrame) -> Trained:
    train, holdout = adult.iloc[:5000].reset_index(drop=True), adult.iloc[5000:].reset_index(drop=True)
    return Trained(model=_fit(train), train=train, holdout=holdout)


@pytest.fixture(scope="session")
def baseline_frame(trained: Trained) -> pd.DataFrame:
    """The baseline the registering run saves (features, label, prediction) as the
    monitor normalises it."""
    from pipeline.monitoring.baseline import normalise_baseline

    frame = trained.train.loc[:, [*schema.FEATURES, schema.LABEL]].copy()
    frame["prediction"] = trained.probabilities(trained.train)
    return normalise_baseline(frame, "fixture")


@pytest.fixture(scope="session")
def registry(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Log and register the model with its monitoring baseline: v1 is ``champion`` and
    carries ``baseline_uri``; v2 (alias ``bare``) was registered without one."""
    import mlflow
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlops")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    baseline = trained.train.loc[:, [*schema.FEATURES, schema.LABEL]].copy()
    baseline["prediction"] = trained.probabilities(trained.train)
    baseline_file = root / "baseline.parquet"
    baseline.to_parquet(baseline_file)

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment_id = client.create_experiment("train", artifact_location=(root / "artifacts").as_uri())
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        with mlflow.start_run(experiment_id=experiment_id) as run:
            import mlflow.sklearn

            mlflow.sklearn.log_model(
                trained.model, name="model", pip_requirements=["scikit-learn"], skops_trusted_types=["numpy.dtype"]
            )
            mlflow.log_artifact(str(baseline_file), artifact_path="monitoring")
            mlflow.log_metric("holdout_roc_auc", 0.9)
            artifact_uri = run.info.artifact_uri
        client.create_registered_model(MODEL_NAME)
        v1 = client.create_model_version(MODEL_NAME, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
        client.set_model_version_tag(MODEL_NAME, v1.version, "baseline_uri", f"{artifact_uri}/monitoring/baseline.parquet")
        client.set_registered_model_alias(MODEL_NAME, "champion", v1.version)
        v2 = client.create_model_version(MODEL_NAME, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
        client.set_registered_model_alias(MODEL_NAME, "bare", v2.version)
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    yield Registry(tracking_uri=tracking_uri, root=root, trained=trained, version=str(v1.version))
