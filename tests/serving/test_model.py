"""Model loading and scoring: the fast path must equal the pipeline it replaces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline import schema
from serving.model import ModelLoadError, fast_predictor, generic_predictor, load_model
from serving.payload import validate
from tests.serving.model_factory import build_pipeline, load_sample

pytestmark = pytest.mark.slow


def _batch(frame: Any, columns: Any) -> Any:
    values = [[None if isinstance(v, float) and v != v else v for v in frame[c].astype(object)] for c in frame.columns]
    return validate(list(frame.columns), values, columns)


def _awkward_rows() -> Any:
    """Held-out rows plus unseen categories and missing values in every categorical."""
    frame = load_sample(1500, seed=2024)[list(schema.FEATURES)].copy()
    for offset, column in enumerate(schema.CATEGORICAL_FEATURES):
        frame.loc[offset, column] = "never-seen-in-training"
    for offset, column in enumerate(schema.NULLABLE_FEATURES):
        frame.loc[offset + 20, column] = np.nan
    return frame


def test_loader_resolves_alias_and_reports_lineage(loaded: Any, registered: Any) -> None:
    assert (loaded.name, loaded.version) == ("adult-income", registered.version)
    assert loaded.uri == f"models:/adult-income/{registered.version}"
    assert loaded.run_id == registered.run_id
    assert loaded.lineage["git_commit"] == "fixture"
    assert [c.name for c in loaded.columns] == list(schema.FEATURES)
    assert {c.name for c in loaded.columns if not c.required} == {"workclass", "occupation", "native_country"}
    assert loaded.fast_path
    assert loaded.baseline_predictions is not None and loaded.baseline_predictions.size == 4000


def test_fast_path_equals_the_pipeline(loaded: Any) -> None:
    frame = _awkward_rows()
    expected = loaded.sklearn_model.predict_proba(frame)[:, 1]
    fast = loaded.predict(_batch(frame, loaded.columns))
    np.testing.assert_allclose(fast.probabilities, expected, rtol=0, atol=1e-7)
    assert fast.labels == loaded.sklearn_model.predict(frame).tolist()
    generic = generic_predictor(loaded.sklearn_model)(_batch(frame, loaded.columns))
    np.testing.assert_allclose(generic.probabilities, expected, rtol=0, atol=1e-7)


def test_fast_path_honours_early_stopping_best_iteration(loaded: Any) -> None:
    frame = load_sample(3000, seed=5)
    model = build_pipeline(n_estimators=200, early_stopping_rounds=3, eval_metric="logloss")
    features, labels = frame[list(schema.FEATURES)], frame[schema.LABEL]
    encoded = model[:-1].fit(features, labels).transform(features)
    model[-1].fit(encoded, labels, eval_set=[(encoded[:500], labels[:500])], verbose=False)
    assert model[-1].best_iteration < 199
    fast = fast_predictor(model, loaded.columns)
    assert fast is not None
    rows = _awkward_rows()
    np.testing.assert_allclose(
        fast(_batch(rows, loaded.columns)).probabilities, model.predict_proba(rows)[:, 1], rtol=0, atol=1e-7
    )


def test_other_shapes_use_the_pipeline(loaded: Any) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = load_sample(2000, seed=3)
    features, labels = frame[list(schema.FEATURES)], frame[schema.LABEL]
    model = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("cat", OneHotEncoder(handle_unknown="ignore"), list(schema.CATEGORICAL_FEATURES)),
                        ("num", StandardScaler(), list(schema.NUMERIC_FEATURES)),
                    ]
                ),
            ),
            ("clf", LogisticRegression(max_iter=300)),
        ]
    ).fit(features.fillna("missing"), labels)
    assert fast_predictor(model, loaded.columns) is None
    rows = _awkward_rows().fillna("missing")
    scored = generic_predictor(model)(_batch(rows, loaded.columns))
    np.testing.assert_allclose(scored.probabilities, model.predict_proba(rows)[:, 1], atol=1e-12)
    assert scored.labels == model.predict(rows).tolist()


def test_local_directory_without_mlmodel_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no MLmodel"):
        load_model(str(tmp_path))


def test_unknown_registry_alias_is_refused(registered: Any) -> None:
    with pytest.raises(ModelLoadError, match="cannot resolve"):
        load_model("models:/adult-income@nonexistent", tracking_uri=registered.tracking_uri)


def test_model_without_signature_is_refused(tmp_path: Path) -> None:
    import mlflow.sklearn
    from sklearn.dummy import DummyClassifier

    model = DummyClassifier().fit([[0], [1]], [0, 1])
    mlflow.sklearn.save_model(model, str(tmp_path / "m"), serialization_format="cloudpickle", pip_requirements=["scikit-learn"])
    with pytest.raises(ModelLoadError, match="no signature"):
        load_model(str(tmp_path / "m"))


def test_local_directory_loads_with_given_labels(registered: Any, tmp_path: Path) -> None:
    import mlflow.artifacts

    from pipeline.mlflow_scope import mlflow_uris

    # MLflow resolves a models:/ download against the global registry URI, whatever
    # tracking_uri says (the quirk serving/model.py works around).
    with mlflow_uris(registered.tracking_uri):
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=registered.model_uri, dst_path=str(tmp_path), tracking_uri=registered.tracking_uri
        )
    model = load_model(local, name="adult-income", version="7")
    assert (model.name, model.version, model.fast_path) == ("adult-income", "7", True)
    assert model.baseline_predictions is None


def test_the_trainers_own_shape_gets_the_fast_path(loaded: Any) -> None:
    """training.model's preprocessor (passthrough first, NaN for unknown and missing
    categories) must be recognised and scored exactly like its pipeline."""
    from sklearn.pipeline import Pipeline
    from xgboost import XGBClassifier

    from training.model import build_preprocessor

    frame = load_sample(3000, seed=8)
    features, labels = frame[list(schema.FEATURES)], frame[schema.LABEL]
    model = Pipeline(
        [("preprocess", build_preprocessor()), ("classifier", XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1))]
    ).fit(features, labels)
    fast = fast_predictor(model, loaded.columns)
    assert fast is not None
    rows = _awkward_rows()
    np.testing.assert_allclose(
        fast(_batch(rows, loaded.columns)).probabilities, model.predict_proba(rows)[:, 1], rtol=0, atol=1e-7
    )
