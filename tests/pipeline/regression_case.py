"""A small regression project and its data, for the tests of the regression gate, its
report, pictures and model card: a numeric label that two features explain, a slice
column (``region``) and a sensitive attribute (``group``) with a thin third group.

Predictions are built as the label plus noise of a chosen spread per row, so a test
states exactly which rows a model errs on and by how much, instead of training one.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.project import Gate, RegressionThresholds, profile, render

ROWS = 3000
THIN_GROUP_ROWS = 60


def regression_frame(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """``price = 3 size + 2 age + N(0, 1)``; region thirds; group F/M with ``THIN_GROUP_ROWS`` X."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(0, 10, rows)
    age = rng.uniform(0, 5, rows)
    group = np.where(np.arange(rows) % 2 == 0, "F", "M").astype(object)
    group[-THIN_GROUP_ROWS:] = "X"
    return pd.DataFrame({
        "size": size,
        "age": age,
        "region": np.array(["north", "south", "east"])[np.arange(rows) % 3],
        "group": group,
        "price": 3 * size + 2 * age + rng.normal(0, 1, rows),
    })


def write_project(folder: Path, frame: pd.DataFrame, *, metric: str = "rmse",
                  sensitive: str | None = "group", **thresholds: Any) -> Path:
    """A regression ``project.yaml`` for ``frame`` in ``folder`` (written as ``init`` would,
    then given slices, a sensitive attribute and the gate's metric and thresholds)."""
    project = profile(frame, "price", "regression", model_name="prices")
    settings = {"bootstrap_samples": 300, "max_group_error_ratio": 1.5, **thresholds}
    project = replace(project, slices=("region",), sensitive_attribute=sensitive,
                      gate=Gate(metric=metric, thresholds=RegressionThresholds(**settings)))
    path = folder / "project.yaml"
    path.write_text(render(project))
    return path


def noisy(frame: pd.DataFrame, spread: float | np.ndarray, seed: int) -> np.ndarray:
    """The label plus normal noise of ``spread`` (one number, or one per row)."""
    return frame["price"].to_numpy() + np.random.default_rng(seed).normal(0, 1, len(frame)) * spread
