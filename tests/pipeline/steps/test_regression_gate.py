"""The regression gate, each rule on its refusing path, with predictions built to break one rule.

The project is a small regression configuration (``tests/pipeline/regression_case.py``):
RMSE as the gate metric, ``region`` as the slice column, ``group`` as the sensitive
attribute. The champion errs with unit spread everywhere; each challenger is better or
worse exactly where a test says.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import schema
from pipeline.project import RegressionThresholds
from pipeline.steps.evaluate import evaluate, predictions, regression_metrics
from pipeline.steps.gate import GateRefused, GateThresholds, enforce, judge, paired_bootstrap_error, refusal
from tests.pipeline.regression_case import THIN_GROUP_ROWS, noisy, regression_frame, write_project


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return regression_frame()


@pytest.fixture
def project(use_project, frame: pd.DataFrame, tmp_path: Path):
    """Activate the regression project with these gate thresholds (defaults otherwise)."""

    def activate(**thresholds):
        return use_project(write_project(tmp_path, frame, **thresholds)).THRESHOLDS

    return activate


@pytest.fixture(scope="module")
def champion(frame: pd.DataFrame) -> np.ndarray:
    return noisy(frame, 1.0, seed=10)


def test_evaluation_reports_regression_metrics_per_slice_and_group(project, frame) -> None:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    project()
    predicted = noisy(frame, 1.0, seed=1)
    result = evaluate(frame, predicted)
    y = frame["price"].to_numpy()
    assert result.metrics["rmse"] == pytest.approx(mean_squared_error(y, predicted) ** 0.5)
    assert result.metrics["mae"] == pytest.approx(mean_absolute_error(y, predicted))
    assert result.metrics["r2"] == pytest.approx(r2_score(y, predicted))
    east = (frame["region"] == "east").to_numpy()
    (row,) = [s for s in result.slices if s["value"] == "east"]
    assert row == {"column": "region", "value": "east", "rows": int(east.sum()),
                   "rmse": pytest.approx(mean_squared_error(y[east], predicted[east]) ** 0.5),
                   "mae": pytest.approx(mean_absolute_error(y[east], predicted[east]))}
    groups = result.fairness["groups"]
    assert set(groups) == {"F", "M", "X"} and groups["X"]["rows"] == THIN_GROUP_ROWS
    worst = max(groups, key=lambda g: groups[g]["rmse"])
    best = min(groups, key=lambda g: groups[g]["rmse"])
    assert result.fairness["error_ratio"] == pytest.approx(groups[worst]["rmse"] / groups[best]["rmse"])


def test_predictions_are_the_regressors_values_and_the_classifiers_positive_probability(project, frame) -> None:
    from sklearn.linear_model import LinearRegression, LogisticRegression

    class Seen:
        """Records the columns it is given, then scores on two of them."""

        def __init__(self, fitted, columns: list[str]) -> None:
            self.fitted, self.columns, self.seen = fitted, columns, None

        def predict(self, rows: pd.DataFrame) -> np.ndarray:
            self.seen = list(rows.columns)
            return self.fitted.predict(rows[self.columns])

        def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
            self.seen = list(rows.columns)
            return self.fitted.predict_proba(rows[self.columns])

    project()
    model = Seen(LinearRegression().fit(frame[["size", "age"]], frame["price"]), ["size", "age"])
    shuffled = frame.sample(frac=1, axis=1, random_state=0)
    values = predictions(model, shuffled)
    assert model.seen == list(schema.FEATURES), "the model sees the contract's features, in its order"
    np.testing.assert_allclose(values, model.fitted.predict(frame[["size", "age"]]))
    assert values.dtype == np.float64 and values.shape == (len(frame),)
    with pytest.raises(TypeError, match="a regression model must have predict\\(\\); object has none"):
        predictions(object(), frame)

    schema.deactivate()  # back to the shipped binary project (use_project restores after the test)
    adult = pd.DataFrame({name: [0] * 4 for name in schema.FEATURES})
    adult["age"] = [20, 30, 40, 50]
    classifier = Seen(LogisticRegression().fit(adult[["age"]], [0, 0, 1, 1]), ["age"])
    np.testing.assert_allclose(predictions(classifier, adult), classifier.fitted.predict_proba(adult[["age"]])[:, 1])
    with pytest.raises(TypeError, match="a binary model must have predict_proba\\(\\); LinearRegression has none"):
        predictions(LinearRegression(), adult)


def test_a_better_model_passes(project, frame, champion) -> None:
    thresholds = project()
    report = judge(frame, noisy(frame, 0.8, seed=2), champion, thresholds, champion_version="4")
    assert report.passed, report.reasons
    assert report.bootstrap["metric"] == "rmse" and report.bootstrap["ci_high"] < 0
    assert report.champion["version"] == "4"
    assert {s["judged"] for s in report.slices} == {"yes"}
    assert all(s["change"] < 0 for s in report.slices)
    json.dumps(report.to_dict())  # the report's JSON is what the run logs


def test_a_worse_model_is_refused_by_the_paired_bootstrap(project, frame, champion) -> None:
    thresholds = project(slice_tolerance=10.0)  # only the bootstrap can refuse it
    report = judge(frame, noisy(frame, 1.15, seed=3), champion, thresholds, champion_version="4")
    assert not report.passed
    assert [r.split(":")[0] for r in report.reasons] == ["paired bootstrap"], report.reasons
    bound = thresholds.error_tolerance * report.champion["metrics"]["rmse"]
    assert report.bootstrap["bound"] == pytest.approx(bound)
    assert report.bootstrap["ci_low"] > bound, "the whole interval is worse than the tolerance"
    assert f"reaches above +{bound:.4f}" in report.reasons[0] and "RMSE" in report.reasons[0]


def test_the_tolerance_is_relative_to_the_champions_error(project, frame, champion) -> None:
    """A challenger 5 % worse passes a 10 % tolerance and is refused by a 2 % one."""
    worse = frame["price"].to_numpy() + 1.05 * (champion - frame["price"].to_numpy())
    assert judge(frame, worse, champion, project(error_tolerance=0.10, slice_tolerance=0.10)).passed
    refused = judge(frame, worse, champion, project(error_tolerance=0.02, slice_tolerance=0.10))
    assert [r.split(":")[0] for r in refused.reasons] == ["paired bootstrap"], refused.reasons


def test_a_slice_regression_is_refused_while_the_overall_error_improves(project, frame, champion) -> None:
    thresholds = project()
    east = (frame["region"] == "east").to_numpy()
    challenger = noisy(frame, np.where(east, 1.3, 0.5), seed=4)
    report = judge(frame, challenger, champion, thresholds, champion_version="4")
    assert report.challenger["metrics"]["rmse"] < report.champion["metrics"]["rmse"]
    assert report.bootstrap["ci_high"] < 0, "overall, the challenger is clearly better"
    assert not report.passed
    assert len(report.reasons) == 1 and report.reasons[0].startswith("slice regression: region=east RMSE"), report.reasons
    assert "slice_tolerance 0.05 x champion's" in report.reasons[0]


def test_small_slices_are_skipped(project, frame, champion) -> None:
    thresholds = project(min_slice_rows=1001)  # every region holds 1000 rows
    east = (frame["region"] == "east").to_numpy()
    report = judge(frame, noisy(frame, np.where(east, 1.3, 0.5), seed=4), champion, thresholds)
    assert report.passed, report.reasons
    assert {s["judged"] for s in report.slices} == {"skipped: too small to judge (needs >= 1001 rows)"}
    assert "too small to judge" in report.to_markdown()


def test_a_group_error_ratio_above_its_bound_is_refused(project, frame, champion) -> None:
    thresholds = project()
    female = (frame["group"] == "F").to_numpy()
    challenger = noisy(frame, np.where(female, 1.2, 0.5), seed=5)
    report = judge(frame, challenger, champion, thresholds, champion_version="4")
    assert report.bootstrap["ci_high"] < 0 and all(s["change"] < 0 for s in report.slices)
    assert not report.passed
    assert len(report.reasons) == 1 and report.reasons[0].startswith("group errors: across group, group 'F'"), \
        report.reasons
    assert "above the bound 1.5 (max_group_error_ratio)" in report.reasons[0]
    ratio = report.fairness["groups"]["F"]["rmse"] / report.fairness["groups"]["M"]["rmse"]
    assert report.fairness["error_ratio"] == pytest.approx(ratio) and ratio > 1.5
    # The first model is held to the same bound.
    assert not judge(frame, challenger, None, thresholds).passed


def test_a_thin_group_is_left_out_and_no_bound_means_not_judged(project, frame) -> None:
    thin = (frame["group"] == "X").to_numpy()
    challenger = noisy(frame, np.where(thin, 5.0, 1.0), seed=6)  # group X errs five times more
    report = judge(frame, challenger, None, project())
    assert report.passed, report.reasons
    assert report.fairness["worst_group"] in ("F", "M")
    assert report.fairness["notes"] == [
        f"error_ratio: group 'X' has {THIN_GROUP_ROWS} rows: too few to judge (needs >= 200, min_slice_rows); "
        "left out of the ratio"]
    assert not judge(frame, challenger, None, project(min_slice_rows=THIN_GROUP_ROWS)).passed
    unbounded = judge(frame, noisy(frame, np.where((frame["group"] == "F").to_numpy(), 3.0, 0.5), seed=5), None,
                      project(max_group_error_ratio=None))
    assert unbounded.passed, unbounded.reasons
    assert unbounded.fairness["notes"] == ["max_group_error_ratio is not set: group errors are reported, not judged"]


def test_without_a_sensitive_attribute_no_group_is_judged(use_project, frame, tmp_path) -> None:
    thresholds = use_project(write_project(tmp_path, frame, sensitive=None)).THRESHOLDS
    report = judge(frame, noisy(frame, np.where((frame["group"] == "F").to_numpy(), 3.0, 0.5), seed=5), None,
                   thresholds)
    assert report.passed, report.reasons
    assert report.fairness["attribute"] is None and report.fairness["groups"] == {}
    assert "Group errors" not in report.to_markdown()


def test_the_first_model_has_no_comparison_but_must_beat_the_mean(project, frame) -> None:
    thresholds = project()
    report = judge(frame, noisy(frame, 1.0, seed=7), None, thresholds)
    assert report.passed, report.reasons
    assert report.bootstrap is None and report.champion is None and report.bootstrap_differences is None
    assert {s["judged"] for s in report.slices} == {"no champion"}
    mean = np.full(len(frame), frame["price"].mean())
    refused = judge(frame, mean, None, thresholds)
    assert [r.split(":")[0] for r in refused.reasons] == ["floor"]
    assert "no better than the holdout's mean" in refused.reasons[0]


def test_mae_is_a_gate_metric_too(use_project, frame, champion, tmp_path) -> None:
    thresholds = use_project(write_project(tmp_path, frame, metric="mae", slice_tolerance=10.0)).THRESHOLDS
    report = judge(frame, noisy(frame, 1.15, seed=3), champion, thresholds)
    assert report.reasons and report.reasons[0].startswith("paired bootstrap: the 95% CI of the MAE difference")
    assert report.slices[0]["metric"] == "mae" and "challenger_mae" in report.slices[0]
    assert "## Paired bootstrap of the MAE difference" in report.to_markdown()


def test_the_bootstrap_is_paired_and_matches_the_observed_difference(frame, champion) -> None:
    y = frame["price"].to_numpy()
    same = paired_bootstrap_error(y, champion, champion.copy(), metric="rmse", samples=200, confidence=0.9, seed=0)
    assert same["ci_low"] == same["ci_high"] == 0.0
    other = noisy(frame, 0.8, seed=2)
    result = paired_bootstrap_error(y, other, champion, metric="mae", samples=200, confidence=0.9, seed=0)
    observed = regression_metrics(y, other)["mae"] - regression_metrics(y, champion)["mae"]
    assert result["observed_difference"] == pytest.approx(observed)
    assert result["ci_low"] < observed < result["ci_high"] and len(result["differences"]) == 200


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("short", "2999 challenger predictions for 3000 holdout rows"),
        ("nan", "1 of the challenger's 3000 predictions are not finite"),
        ("champion_nan", "1 of the champion's 3000 predictions are not finite"),
        ("binary_thresholds", "the regression gate needs RegressionThresholds, got GateThresholds"),
    ],
)
def test_malformed_input_fails_closed(project, frame, champion, case, message) -> None:
    thresholds = project()
    challenger, champ = noisy(frame, 0.8, seed=2), champion.copy()
    if case == "short":
        challenger = challenger[:-1]
    elif case == "nan":
        challenger[5] = np.nan
    elif case == "champion_nan":
        champ[5] = np.inf
    elif case == "binary_thresholds":
        thresholds = GateThresholds()
    with pytest.raises((ValueError, TypeError), match=message) as caught:
        judge(frame, challenger, champ, thresholds)
    report = refusal(caught.value, project())
    assert not report.passed and message in report.reasons[0] and "failing closed" in report.reasons[0]
    markdown = report.to_markdown()
    assert "REFUSED" in markdown and "RMSE" in markdown
    with pytest.raises(GateRefused, match="failing closed"):
        enforce(report)


def test_the_binary_gate_refuses_regression_thresholds(use_project) -> None:
    use_project(schema.SHIPPED_PROJECT)
    holdout = pd.DataFrame({name: [None] * 4 for name in schema.FEATURES} | {"label": [0, 1, 0, 1]})
    with pytest.raises(TypeError, match="the binary gate needs GateThresholds, got RegressionThresholds"):
        judge(holdout, np.array([0.1, 0.9, 0.2, 0.8]), None, RegressionThresholds())


def test_the_report_names_the_regression_metric(project, frame, champion) -> None:
    report = judge(frame, noisy(frame, 1.15, seed=3), champion, project(), champion_version="4")
    markdown = report.to_markdown()
    assert "**Decision: REFUSED**" in markdown
    assert "## Paired bootstrap of the RMSE difference (challenger - champion)" in markdown
    assert "## Slices (RMSE)" in markdown and "| region=east | 1000 |" in markdown
    assert "## Group errors across `group` (RMSE)" in markdown
    assert "| rmse |" in markdown and "| r2 |" in markdown and "roc_auc" not in markdown.lower()


def test_no_regression_project_outlives_its_test() -> None:
    """Runs after the tests above (pytest keeps a file's order): the ``use_project`` fixture
    put back ``MLOPS_PROJECT`` and the loaded contract, so the next test reads the shipped one."""
    import os

    assert os.environ.get(schema.PROJECT_ENV) in (None, str(schema.SHIPPED_PROJECT))
    assert schema.TASK == "binary" and schema.PROJECT_PATH == schema.SHIPPED_PROJECT


def test_the_floor_is_the_projects_min_r2(project, frame) -> None:
    """A team raises the floor in its project file: a model that beats the mean but not
    min_r2 is refused by the floor alone, naming both numbers."""
    fair = noisy(frame, 1.0, seed=7)
    assert judge(frame, fair, None, project()).passed
    strict = judge(frame, fair, None, project(min_r2=0.999))
    assert [r.split(":")[0] for r in strict.reasons] == ["floor"]
    assert "is not above min_r2 0.999" in strict.reasons[0]
