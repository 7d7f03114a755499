"""A regression project for the monitor's and the generator's tests, written in tmp_path.

The data is scikit-learn's diabetes set (442 patients, disease progression after a year;
bundled with scikit-learn, so nothing is downloaded), shaped like a team's file: integer
``age`` and ``s3``, float measurements, ``sex`` as a category, the label ``progression``.
``write_project`` profiles it with ``pipeline.project.profile`` (what ``python -m
pipeline init`` does) and writes the YAML a team would edit, with ``sex`` as slice and
sensitive attribute. Tests activate it with the ``use_project`` fixture.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

LABEL = "progression"
MODEL_NAME = "diabetes-progression"


def diabetes_frame() -> pd.DataFrame:
    """The 442 rows, with integer, float and category columns and a float label."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": LABEL})
    frame["age"] = frame["age"].astype("int64")
    frame["s3"] = frame["s3"].astype("int64")
    frame["sex"] = frame["sex"].map({1.0: "one", 2.0: "two"}).astype(object)
    return frame


def write_project(folder: Path, frame: pd.DataFrame, *, sensitive: str | None = "sex",
                  slices: tuple[str, ...] = ("sex",), **changes: Any) -> Path:
    """``folder/project.yaml`` describing ``frame`` as a regression task; returns its path."""
    from pipeline.project import profile, render

    project = profile(frame, LABEL, "regression", model_name=MODEL_NAME)
    project = dataclasses.replace(project, slices=slices, sensitive_attribute=sensitive, **changes)
    path = folder / "project.yaml"
    path.write_text(render(project), encoding="utf-8")
    return path


def fit_regressor(train: pd.DataFrame) -> Any:
    """A small linear model on the active contract's features (scaled numbers, one-hot categories)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from pipeline import schema

    pre = ColumnTransformer([
        ("num", StandardScaler(), list(schema.NUMERIC_FEATURES)),
        ("cat", OneHotEncoder(handle_unknown="ignore"), list(schema.CATEGORICAL_FEATURES)),
    ])
    return make_pipeline(pre, Ridge(alpha=1.0)).fit(train.loc[:, list(schema.FEATURES)], train[schema.LABEL])


def rmse(truth: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(predicted, dtype=float) - np.asarray(truth, dtype=float)) ** 2)))
