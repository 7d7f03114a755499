"""Holdout metrics agree with scikit-learn; fairness gaps are computed per group."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
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


def test_fairness_figures_are_pinned_on_a_small_frame() -> None:
    """Figures worked out by hand: per group, selection rate = predicted positives / rows and
    true-positive rate = predicted positives among actual positives; a missing attribute is
    its own group; a group with no positives has no TPR and is left out of that gap."""
    frame = pd.DataFrame({
        "sex": ["Male"] * 5 + ["Female"] * 4 + [None] * 3,
        "label": [1, 1, 1, 0, 0] + [1, 1, 0, 0] + [0, 0, 0],
    })
    proba = np.array([0.9, 0.8, 0.2, 0.7, 0.1] + [0.6, 0.3, 0.1, 0.1] + [0.9, 0.2, 0.2])
    f = fairness_metrics(frame, proba)
    # Male: predicted 1,1,0,1,0 -> 3/5 selected; positives 3, two caught -> 2/3.
    # Female: 1,0,0,0 -> 1/4; positives 2, one caught -> 1/2.  <missing>: 1/3; no positives.
    assert f["groups"] == {
        "<missing>": {"rows": 3, "positives": 0, "selection_rate": pytest.approx(1 / 3), "true_positive_rate": pytest.approx(float("nan"), nan_ok=True)},
        "Female": {"rows": 4, "positives": 2, "selection_rate": 0.25, "true_positive_rate": 0.5},
        "Male": {"rows": 5, "positives": 3, "selection_rate": 0.6, "true_positive_rate": pytest.approx(2 / 3)},
    }
    assert f["demographic_parity_difference"] == pytest.approx(0.6 - 0.25)
    assert f["equal_opportunity_difference"] == pytest.approx(2 / 3 - 0.5)


def test_a_yes_no_label_without_a_sensitive_attribute(use_project, tmp_path) -> None:
    """The label is read through ``schema.target`` (a "yes"/"no" label scores like 1/0), and
    a project with no sensitive attribute reports no fairness gaps and is not refused for them."""
    from dataclasses import replace

    from sklearn.metrics import roc_auc_score

    from pipeline.project import profile, render
    from pipeline.steps.gate import GateThresholds, judge

    rng = np.random.default_rng(0)
    x = rng.normal(size=600)
    frame = pd.DataFrame({"x": x, "label": np.where(x + rng.normal(0, 0.5, 600) > 0, "yes", "no")})
    project = replace(profile(frame, "label", "binary", model_name="yes-no"), sensitive_attribute=None)
    assert project.data.positive_class == "yes"
    (tmp_path / "project.yaml").write_text(render(project))
    use_project(tmp_path / "project.yaml")
    proba = 1 / (1 + np.exp(-3 * x))
    result = evaluate(frame, proba)
    assert result.metrics["roc_auc"] == pytest.approx(roc_auc_score(frame["label"] == "yes", proba))
    assert result.fairness["attribute"] is None and result.fairness["groups"] == {}
    report = judge(frame, proba, None, GateThresholds(min_roc_auc=0.8))
    assert report.passed, report.reasons
    assert report.fairness["notes"] == ["no sensitive attribute is configured: fairness is not judged"]
    assert "## Fairness\n\n- no sensitive attribute is configured" in report.to_markdown()
    assert "`None`" not in report.to_markdown()
