"""Holdout metrics agree with scikit-learn; fairness gaps are computed per group."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from pipeline.steps.evaluate import classification_metrics, evaluate, fairness_metrics, roc_auc


def test_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    p = np.round(np.clip(y * 0.3 + rng.random(2000) * 0.7, 0, 1), 2)  # rounded: many ties
    m = classification_metrics(y, p)
    assert abs(m["roc_auc"] - roc_auc_score(y, p)) < 1e-12
    assert abs(m["accuracy"] - accuracy_score(y, p >= 0.5)) < 1e-12
    assert abs(m["f1"] - f1_score(y, p >= 0.5)) < 1e-12
    assert np.isnan(roc_auc(np.zeros(5), np.arange(5)))


def test_fairness_gaps() -> None:
    frame = pd.DataFrame({"sex": ["Male"] * 4 + ["Female"] * 4, "label": [1, 1, 0, 0, 1, 1, 0, 0]})
    proba = np.array([0.9, 0.9, 0.9, 0.1, 0.9, 0.1, 0.1, 0.1])
    f = fairness_metrics(frame, proba)
    assert f["demographic_parity_difference"] == 0.75 - 0.25
    assert f["equal_opportunity_difference"] == 1.0 - 0.5


def test_evaluate_refuses_mismatched_lengths(adult_sample: pd.DataFrame) -> None:
    import pytest

    with pytest.raises(ValueError, match="probabilities"):
        evaluate(adult_sample.head(10), np.zeros(9))
