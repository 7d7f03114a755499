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
