"""``python -m pipeline step gate`` (the SageMaker path) follows the active project's task:
a regression model is gated by its error and gets the regression pictures, and a binary
label written as text is scored through ``schema.target`` like the run's gate."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from pipeline import schema
from pipeline.cli import main
from pipeline.project import profile, render
from tests.pipeline.regression_case import regression_frame, write_project
from training.train import MODEL_FILE


def _fitted(estimator, frame: pd.DataFrame, categories: list[str], tmp_path: Path) -> Path:
    model = make_pipeline(make_column_transformer((OneHotEncoder(), categories), remainder="passthrough"), estimator)
    model.fit(frame[list(schema.FEATURES)], schema.target(frame))
    (tmp_path / "model").mkdir()
    joblib.dump(model, tmp_path / "model" / MODEL_FILE)
    (tmp_path / "holdout").mkdir()
    frame.to_parquet(tmp_path / "holdout" / "holdout.parquet")
    return tmp_path


def _gate(root: Path) -> dict:
    code = main(["step", "gate", "--input", str(root / "model"), "--input", str(root / "holdout"),
                 "--output", str(root / "out")])
    assert code == 0
    return json.loads((root / "out" / "evaluation.json").read_text())


def test_a_regressor_is_gated_by_its_error_with_the_regression_pictures(use_project, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # no registry: a first model
    frame = regression_frame()
    use_project(write_project(tmp_path, frame))
    evaluation = _gate(_fitted(LinearRegression(), frame, ["region", "group"], tmp_path))
    assert evaluation["gate"] == {"passed": True, "reasons": []}
    assert evaluation["report"]["challenger"]["task"] == "regression" and evaluation["metrics"]["r2"] > 0.95
    assert {p.name for p in (tmp_path / "out" / "plots").iterdir()} == {"predicted_vs_actual.png",
                                                                        "residuals_by_slice.png"}


def test_a_text_binary_label_is_scored_as_its_positive_class(use_project, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    rng = np.random.default_rng(0)
    x = rng.normal(size=2000)
    frame = pd.DataFrame({"x": x, "plan": np.where(np.arange(2000) % 2 == 0, "basic", "pro"),
                          "churned": np.where(x + rng.normal(0, 0.7, 2000) > 0.5, "yes", "no")})
    project = replace(profile(frame, "churned", "binary", model_name="churn"), slices=("plan",))
    (tmp_path / "project.yaml").write_text(render(project))
    use_project(tmp_path / "project.yaml")
    evaluation = _gate(_fitted(LogisticRegression(), frame, ["plan"], tmp_path))
    assert evaluation["metrics"]["roc_auc"] > 0.8
    assert {"roc_curve.png", "precision_recall.png", "calibration.png"} <= {
        p.name for p in (tmp_path / "out" / "plots").iterdir()}
