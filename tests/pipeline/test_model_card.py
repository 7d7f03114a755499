"""The model card written as a model version's description: what it says on the promoting
and the refusing path, and that it always fits the registry's 5,000-character column."""

from __future__ import annotations

import pandas as pd

from pipeline.model_card import MAX_DESCRIPTION_CHARS, model_card
from pipeline.steps.register import Candidate


def _candidate(*, passed: bool, reasons: list[str], champion: str | None = "3") -> Candidate:
    frame = lambda n: pd.DataFrame({"age": range(n)})  # noqa: E731 - only the row counts matter
    gate = {
        "passed": passed,
        "reasons": reasons,
        "thresholds": {"max_equal_opportunity_difference": 0.15, "max_demographic_parity_difference": 0.3},
        "challenger": {"metrics": {"roc_auc": 0.93}},
        "champion": {"version": champion, "metrics": {"roc_auc": 0.925}} if champion else None,
        "bootstrap": {"samples": 1000, "confidence": 0.95, "mean_difference": 0.005, "ci_low": -0.002,
                      "ci_high": 0.011, "tolerance": 0.01} if champion else None,
        "slices": [{"column": "sex", "value": "Female", "rows": 2100, "positives": 230,
                    "challenger_roc_auc": 0.945, "champion_roc_auc": 0.94, "change": 0.005, "judged": "yes"}],
        "fairness": {"attribute": "sex", "equal_opportunity_difference": 0.061,
                     "demographic_parity_difference": 0.18, "groups": {"Female": {"rows": 2100}, "Male": {"rows": 4400}}},
    }
    return Candidate(
        model=None, model_name="adult-income", train=frame(700), validation=frame(100), holdout=frame(200),
        data_digest="d" * 64, data_source="data/adult.csv.gz", data_path="data/adult.csv.gz",
        holdout_digest="h" * 64, params={}, metrics={"holdout_roc_auc": 0.93, "holdout_brier": 0.09,
                                                     "slice_sex_Female_roc_auc": 0.945},
        gate=gate, training={"device": "cpu"}, candidate_key="k" * 64, champion_version=champion,
    )


def test_a_promoted_version_says_what_data_scores_and_lineage() -> None:
    card = model_card(_candidate(passed=True, reasons=[]), run_id="run123", git_commit="abc1234")
    assert "**Gate: passed** against champion v3" in card
    assert "`data/adult.csv.gz`" in card and "d" * 64 in card and "1,000 rows" in card
    assert "700 for training" in card and "200 in the frozen holdout" in card and "h" * 64 in card
    assert "| roc_auc | 0.9300 | 0.9250 |" in card and "| brier | 0.0900 | - |" in card
    assert "slice_sex" not in card, "per-slice metrics belong in the slice table, not the metric table"
    assert "| sex=Female | 2100 | 0.9450 | 0.9400 | +0.0050 |" in card
    assert "0.0610, bound 0.15" in card and "0.1800, bound 0.3" in card
    assert "[-0.0020, +0.0110]" in card and "tolerance of -0.01" in card
    assert "commit `abc1234`" in card and "run `run123`" in card and "judged against champion v3" in card


def test_a_refused_version_lists_every_reason_and_no_champion_is_said() -> None:
    reasons = ["floor: challenger ROC AUC 0.8000 is below the floor 0.85", "fairness: equal-opportunity 0.2"]
    card = model_card(_candidate(passed=False, reasons=reasons, champion=None), run_id="r", git_commit="c")
    assert "**Gate: refused** with no champion to compare against" in card
    assert "does not serve" in card and "promoted" not in card
    assert all(f"- {reason}" in card for reason in reasons)
    assert "judged against champion none" in card and "bootstrap" not in card.lower()


def test_a_card_with_too_many_reasons_still_fits_and_keeps_its_lineage() -> None:
    reasons = [f"slice regression: race=group{i} " + "x" * 120 for i in range(80)]
    card = model_card(_candidate(passed=False, reasons=reasons), run_id="run123", git_commit="abc1234")
    assert len(card) <= MAX_DESCRIPTION_CHARS
    assert reasons[0] in card and reasons[-1] not in card
    assert "more in the run's `gate/gate_report.md`" in card
    assert "commit `abc1234`" in card and "## Slices" in card


def test_a_delivery_candidate_is_not_called_champion() -> None:
    from dataclasses import replace

    candidate = replace(_candidate(passed=True, reasons=[]), release_alias="candidate")
    card = model_card(candidate, run_id="r", git_commit="c")
    assert "became the release `candidate`" in card and "promoted to `champion`" not in card


def _regression_candidate(*, passed: bool, reasons: list[str], champion: str | None = "3") -> Candidate:
    from dataclasses import replace

    gate = {
        "passed": passed,
        "reasons": reasons,
        "thresholds": {"error_tolerance": 0.02, "max_group_error_ratio": 1.5},
        "challenger": {"task": "regression", "gate_metric": "rmse", "metrics": {"rmse": 1.01, "mae": 0.8, "r2": 0.9}},
        "champion": {"version": champion, "metrics": {"rmse": 1.02, "mae": 0.81, "r2": 0.89}} if champion else None,
        "bootstrap": {"metric": "rmse", "samples": 1000, "confidence": 0.95, "mean_difference": -0.01,
                      "ci_low": -0.03, "ci_high": 0.01, "tolerance": 0.02, "champion_error": 1.02,
                      "bound": 0.0204} if champion else None,
        "slices": [{"column": "region", "value": "east", "rows": 1000, "metric": "rmse", "challenger_rmse": 1.3,
                    "champion_rmse": 1.0, "change": 0.3, "bound": 0.05, "judged": "yes"}],
        "fairness": {"attribute": "group", "metric": "rmse", "worst_group": "F", "best_group": "M",
                     "error_ratio": 1.2, "groups": {"F": {"rows": 1470, "rmse": 1.1, "mae": 0.9},
                                                    "M": {"rows": 1470, "rmse": 0.92, "mae": 0.7}}, "notes": []},
    }
    return replace(_candidate(passed=passed, reasons=reasons, champion=champion), model_name="prices", gate=gate,
                   metrics={"holdout_rmse": 1.01, "holdout_mae": 0.8, "holdout_r2": 0.9})


def test_a_regression_card_speaks_of_its_error_slices_and_groups() -> None:
    card = model_card(_regression_candidate(passed=True, reasons=[]), run_id="r", git_commit="c")
    assert "**Gate: passed** against champion v3" in card
    assert "| rmse | 1.0100 | 1.0200 |" in card and "| r2 | 0.9000 | 0.8900 |" in card
    assert ("Paired bootstrap of the RMSE difference (challenger - champion), 1000 resamples: mean -0.0100, "
            "95% interval [-0.0300, +0.0100] against a bound of +0.0204 (0.02 x the champion's RMSE 1.0200).") in card
    assert "## Slices (RMSE on the holdout; lower is better)" in card
    assert "| region=east | 1000 | 1.3000 | 1.0000 | +0.3000 |" in card
    assert "## Group errors across `group`" in card and "F: 1.1000 over 1470 rows" in card
    assert "(F / M): 1.2000, bound 1.5." in card
    assert "ROC AUC" not in card and "roc_auc" not in card and "Fairness" not in card


def test_a_first_regression_model_names_the_rules_that_applied() -> None:
    card = model_card(_regression_candidate(passed=False, reasons=["floor: challenger R² -0.1000"], champion=None),
                      run_id="r", git_commit="c")
    assert "(first model: the no-skill floor and the group-error bound apply)" in card
    assert "- floor: challenger R² -0.1000" in card and "bootstrap" not in card.lower()
