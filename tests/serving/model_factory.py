"""A small model of the contract's shape, registered in a throwaway MLflow store.

The trainer lives elsewhere and may change its preprocessing; the server must work with
any sklearn-flavour model that has a signature, so the tests, the deploy tests and the
benchmark build their own fixture here: a scikit-learn ``Pipeline`` (``OrdinalEncoder``
for the categoricals, numerics passed through) feeding an ``XGBClassifier``, trained on a
sample of ``data/adult.csv.gz``, logged with a signature and an input example, registered,
and given the ``champion`` alias (docs/contracts.md, "The model").
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.schema import DEFAULT_DATASET
from pipeline import schema


@dataclass(frozen=True)
class RegisteredFixture:
    """Where a fixture model lives: the store, its registry name and its version."""

    tracking_uri: str
    model_name: str
    version: str
    run_id: str
    model_uri: str


def load_sample(rows: int = 4000, seed: int = 7) -> pd.DataFrame:
    """A reproducible sample of the default dataset, missing values read as NaN."""
    frame = pd.read_csv(DEFAULT_DATASET)
    return frame.sample(n=rows, random_state=seed).reset_index(drop=True)


def build_pipeline(n_estimators: int = 50, **xgb_params: Any) -> Any:
    """An unfitted Pipeline of the contract's common shape (ordinal codes + XGBoost)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder
    from xgboost import XGBClassifier

    encoder = OrdinalEncoder(
        handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1
    )
    preprocess = ColumnTransformer(
        [("categorical", encoder, list(schema.CATEGORICAL_FEATURES)), ("numeric", "passthrough", list(schema.NUMERIC_FEATURES))]
    )
    params = {"max_depth": 4, "learning_rate": 0.2, "n_jobs": 1, "tree_method": "hist"} | xgb_params
    return Pipeline([("preprocess", preprocess), ("model", XGBClassifier(n_estimators=n_estimators, **params))])


def train_and_register(
    store_dir: Path,
    model_name: str = "adult-income",
    *,
    pipeline: Any | None = None,
    rows: int = 4000,
    seed: int = 7,
    alias: str | None = "champion",
    baseline: bool = True,
    tags: dict[str, str] | None = None,
    tracking_uri: str | None = None,
) -> RegisteredFixture:
    """Train ``pipeline`` (default: :func:`build_pipeline`) on a sample, log it with a
    signature and input example into a SQLite store under ``store_dir`` (or the tracking
    server at ``tracking_uri``), register it, optionally log the monitoring baseline the
    contract names, and set ``alias``."""
    import mlflow
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    store_dir.mkdir(parents=True, exist_ok=True)
    remote = tracking_uri is not None
    tracking_uri = tracking_uri or f"sqlite:///{store_dir / 'mlflow.db'}"
    frame = load_sample(rows, seed)
    features, labels = frame[list(schema.FEATURES)], frame[schema.LABEL]
    model = pipeline if pipeline is not None else build_pipeline()
    model.fit(features, labels)
    probabilities = model.predict_proba(features)[:, 1]

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    experiment = f"serving-fixture-{model_name}"
    client = MlflowClient(tracking_uri)
    if client.get_experiment_by_name(experiment) is None:
        # A tracking server chooses the artifact location (its proxied artifact store).
        client.create_experiment(experiment, artifact_location=None if remote else (store_dir / "artifacts").as_uri())
    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run:
        signature = infer_signature(features, probabilities)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=features.head(3),
            registered_model_name=model_name,
            # MLflow 3 saves sklearn models with skops, which refuses unknown types.
            skops_trusted_types=["xgboost.core.Booster", "xgboost.sklearn.XGBClassifier"],
            # Declared, because inferring them starts a subprocess that takes ~10 s.
            pip_requirements=[f"{p}=={installed_version(p)}" for p in ("scikit-learn", "xgboost", "pandas", "numpy")],
        )
        baseline_uri = None
        if baseline:
            base = features.copy()
            base[schema.LABEL] = labels
            base["prediction"] = probabilities
            path = store_dir / "baseline.parquet"
            base.to_parquet(path)
            mlflow.log_artifact(str(path), artifact_path="monitoring")
            baseline_uri = f"{run.info.artifact_uri}/monitoring/baseline.parquet"
    version = str(info.registered_model_version)
    client.set_model_version_tag(model_name, version, "git_commit", "fixture")
    client.set_model_version_tag(model_name, version, "data_source", "data/adult.csv.gz sample")
    if baseline_uri:
        client.set_model_version_tag(model_name, version, "baseline_uri", baseline_uri)
    for key, value in (tags or {}).items():
        client.set_model_version_tag(model_name, version, key, value)
    if alias:
        client.set_registered_model_alias(model_name, alias, version)
    return RegisteredFixture(tracking_uri, model_name, version, run.info.run_id, f"models:/{model_name}/{version}")
