"""The gate's rules, each on its refusing path, with probabilities built to break one rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.steps.evaluate import predict_proba, roc_auc
from pipeline.steps.gate import GateRefused, GateThresholds, enforce, judge, paired_bootstrap_auc, refusal
from pipeline.steps.split import SplitParams, split


@pytest.fixture(scope="module")
def scored(adult_sample: pd.DataFrame, fast_hyperparameters) -> tuple[pd.DataFrame, np.ndarray]:
    from training.model import fit_model

    parts = split(adult_sample, SplitParams())
    model = fit_model(parts.train, parts.validation, fast_hyperparameters).model
    return parts.holdout, predict_proba(model, parts.holdout)


def test_first_model_is_judged_on_floor_and_fairness_only(scored) -> None:
    holdout, proba = scored
    report = judge(holdout, proba, None, GateThresholds())
    assert report.passed, report.reasons
    assert report.bootstrap is None and report.champion is None
    refused = judge(holdout, proba, None, GateThresholds(min_roc_auc=0.99))
    assert not refused.passed
    assert refused.reasons[0].startswith("floor:")


def test_identical_challenger_passes_the_paired_comparison(scored) -> None:
    holdout, proba = scored
    report = judge(holdout, proba, proba.copy(), GateThresholds(), champion_version="1")
    assert report.passed, report.reasons
    assert report.bootstrap["ci_low"] == pytest.approx(0.0) == report.bootstrap["ci_high"]


def test_worse_challenger_is_refused_by_the_bootstrap(scored) -> None:
    holdout, proba = scored
    noisy = np.clip(proba + np.random.default_rng(0).normal(0, 0.25, len(proba)), 0, 1)
    assert roc_auc(holdout["label"].to_numpy(), noisy) > 0.80  # still above the lowered floor
    report = judge(holdout, noisy, proba, GateThresholds(min_roc_auc=0.7), champion_version="1")
    assert not report.passed
    assert any(r.startswith("paired bootstrap:") for r in report.reasons), report.reasons
    assert report.bootstrap["ci_high"] < 0


def test_slice_regression_is_refused_and_small_slices_are_skipped(scored) -> None:
    holdout, proba = scored
    broken = proba.copy()
    black = (holdout["race"] == "Black").to_numpy()
    broken[black] = np.random.default_rng(1).random(black.sum())
    thresholds = GateThresholds(auc_tolerance=0.05)
    report = judge(holdout, broken, proba, thresholds, champion_version="1")
    assert not report.passed
    assert any(r.startswith("slice regression: race=Black") for r in report.reasons), report.reasons
    skipped = [s for s in report.slices if s["judged"].startswith("skipped")]
    assert {s["value"] for s in skipped} >= {"Other", "Amer-Indian-Eskimo"}
    assert "too small to judge" in report.to_markdown()


def test_fairness_violation_is_refused(scored) -> None:
    holdout, proba = scored
    unfair = proba.copy()
    female = (holdout["sex"] == "Female").to_numpy()
    unfair[female] *= 0.2
    report = judge(holdout, unfair, None, GateThresholds())
    assert not report.passed
    assert any(r.startswith("fairness: equal-opportunity difference across sex") for r in report.reasons)
    assert report.fairness["groups"]["Female"]["true_positive_rate"] < 0.2


def test_one_error_lists_every_violation(scored) -> None:
    holdout, proba = scored
    bad = np.random.default_rng(2).random(len(proba))
    report = judge(holdout, bad, proba, GateThresholds(), champion_version="1")
    with pytest.raises(GateRefused) as caught:
        enforce(report)
    message = str(caught.value)
    assert "floor:" in message and "paired bootstrap:" in message and "slice regression:" in message
    assert len(caught.value.report.reasons) >= 3


def test_gate_errors_fail_closed() -> None:
    report = refusal(RuntimeError("champion model unreadable"), GateThresholds())
    assert not report.passed
    assert "failing closed" in report.reasons[0] and "champion model unreadable" in report.reasons[0]
    with pytest.raises(GateRefused):
        enforce(report)


def test_mismatched_inputs_raise(scored) -> None:
    holdout, proba = scored
    with pytest.raises(ValueError):
        judge(holdout, proba[:-1], None, GateThresholds())
    with pytest.raises(ValueError, match="length mismatch"):
        paired_bootstrap_auc(holdout["label"].to_numpy(), proba, proba[:-1], samples=100, confidence=0.9, seed=0)


def test_thresholds_are_parameters_with_checked_values() -> None:
    assert GateThresholds.from_mapping({"min_roc_auc": "0.9", "bootstrap_samples": "200"}).bootstrap_samples == 200
    with pytest.raises(ValueError, match="unknown gate threshold"):
        GateThresholds.from_mapping({"min_auc": "0.9"})
    with pytest.raises(ValueError, match="confidence"):
        GateThresholds(confidence=1.5)


def _thin_female(holdout: pd.DataFrame, proba: np.ndarray, positives: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Every male row, and female rows with exactly ``positives`` positives (and 40 negatives),
    scored so that no female positive is predicted positive: a maximal equal-opportunity gap."""
    female = (holdout["sex"] == "Female").to_numpy()
    label = holdout["label"].to_numpy()
    keep = ~female
    keep[np.flatnonzero(female & (label == 1))[:positives]] = True
    keep[np.flatnonzero(female & (label == 0))[:40]] = True
    unfair = proba.copy()
    unfair[female] = 0.01
    return holdout[keep].reset_index(drop=True), unfair[keep]


def test_a_fairness_gap_resting_on_a_thin_group_is_not_judged_and_not_refused(scored) -> None:
    holdout, proba = _thin_female(*scored, positives=4)
    report = judge(holdout, proba, None, GateThresholds())
    assert not any(r.startswith("fairness:") for r in report.reasons), report.reasons
    assert np.isnan(report.fairness["equal_opportunity_difference"])
    assert report.fairness["groups"]["Female"]["positives"] == 4
    note = ("equal_opportunity_difference not judged: group 'Female' has 4 positives: too few to judge "
            "(needs >= 20, min_fairness_group_positives); not a refusal")
    assert report.fairness["notes"] == [note]
    assert note in report.to_markdown()


def test_the_same_gap_on_enough_positives_is_refused(scored) -> None:
    holdout, proba = _thin_female(*scored, positives=20)
    report = judge(holdout, proba, None, GateThresholds())
    assert any(r.startswith("fairness: equal-opportunity difference across sex") for r in report.reasons), report.reasons
    groups = report.fairness["groups"]
    assert groups["Female"]["true_positive_rate"] == 0.0
    assert report.fairness["equal_opportunity_difference"] == groups["Male"]["true_positive_rate"]
    assert report.fairness["notes"] == []


def test_the_minimum_support_is_a_threshold(scored) -> None:
    holdout, proba = _thin_female(*scored, positives=4)
    report = judge(holdout, proba, None, GateThresholds(min_fairness_group_positives=4))
    assert any(r.startswith("fairness: equal-opportunity difference") for r in report.reasons), report.reasons
    with pytest.raises(ValueError, match="min_fairness_group_positives must be >= 0"):
        GateThresholds(min_fairness_group_positives=-1)


def test_a_thin_group_is_left_out_when_two_supported_groups_remain() -> None:
    from pipeline.steps.gate import supported_fairness

    groups = {
        "a": {"rows": 100, "positives": 50, "selection_rate": 0.5, "true_positive_rate": 0.8},
        "b": {"rows": 100, "positives": 40, "selection_rate": 0.4, "true_positive_rate": 0.7},
        "c": {"rows": 10, "positives": 3, "selection_rate": 0.0, "true_positive_rate": 0.0},
    }
    fairness = {"attribute": "sex", "demographic_parity_difference": 0.5, "equal_opportunity_difference": 0.8,
                "groups": groups}
    judged, unjudged = supported_fairness(fairness, GateThresholds())
    assert unjudged == set()
    assert judged["demographic_parity_difference"] == pytest.approx(0.1)
    assert judged["equal_opportunity_difference"] == pytest.approx(0.1)
    assert judged["notes"] == [
        "demographic_parity_difference: group 'c' has 10 rows: too few to judge (needs >= 30, min_fairness_group_rows); left out of the gap",
        "equal_opportunity_difference: group 'c' has 3 positives: too few to judge (needs >= 20, min_fairness_group_positives); left out of the gap",
    ]
    assert fairness["demographic_parity_difference"] == 0.5  # the evaluation's figure is not rewritten
