"""The data contract: the real data passes; every kind of bad data is named in the report."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.steps.validate import (
    DataValidationError,
    ValidationThresholds,
    require_valid,
    validate_frame,
)


def _checks(report) -> set[tuple[str, str]]:
    return {(f.column, f.check) for f in report.failures}


def test_real_data_passes(adult_frame: pd.DataFrame) -> None:
    report = validate_frame(adult_frame, ValidationThresholds(), source="adult")
    assert report.passed, report.summary()
    assert report.rows == 48_842


def test_every_problem_is_listed_at_once(adult_sample: pd.DataFrame) -> None:
    bad = adult_sample.drop(columns=["education"]).copy()
    bad["hours_per_week"] = bad["hours_per_week"].astype(str)
    bad.loc[:4, "capital_loss"] = -5
    bad.loc[: len(bad) // 4, "occupation"] = None
    bad.loc[:9, "sex"] = None
    report = validate_frame(bad, ValidationThresholds(), source="bad")
    checks = _checks(report)
    assert ("education", "column_in_dataframe") in checks
    assert ("hours_per_week", "dtype('int64')") in checks
    assert ("capital_loss", "in_range(0, 10000)") in checks
    assert ("occupation", "max_null_fraction") in checks
    assert ("sex", "not_nullable") in checks
    markdown = report.to_markdown()
    assert "FAILED" in markdown and "capital_loss" in markdown and "-5" in markdown


def test_duplicates_beyond_the_bound_fail(adult_sample: pd.DataFrame) -> None:
    duplicated = pd.concat([adult_sample, adult_sample.head(800)], ignore_index=True)
    report = validate_frame(duplicated, ValidationThresholds(max_duplicate_fraction=0.01), source="dup")
    assert ("<frame>", "max_duplicate_fraction") in _checks(report)
    assert "duplicate rows" in report.summary()


def test_label_balance_and_values(adult_sample: pd.DataFrame) -> None:
    skewed = adult_sample.copy()
    positives = skewed.index[skewed["label"] == 1]
    skewed.loc[positives[50:], "label"] = 0
    report = validate_frame(skewed, ValidationThresholds(min_minority_share=0.05), source="skewed")
    assert ("label", "min_minority_share") in _checks(report)
    three = adult_sample.copy()
    three.loc[:3, "label"] = 2
    assert ("label", "in_range(0, 1)") in _checks(validate_frame(three, ValidationThresholds(), source="x"))


def test_too_few_rows_fail(adult_sample: pd.DataFrame) -> None:
    report = validate_frame(adult_sample.head(50), ValidationThresholds(min_rows=200), source="tiny")
    assert ("<frame>", "min_rows") in _checks(report)


def test_require_valid_raises_with_the_report(adult_sample: pd.DataFrame) -> None:
    with pytest.raises(DataValidationError) as caught:
        require_valid(adult_sample.drop(columns=["age"]), ValidationThresholds(), source="x")
    assert "age: column_in_dataframe" in str(caught.value)
    assert not caught.value.report.passed


@pytest.mark.parametrize("field,value", [("max_null_fraction", 1.5), ("min_minority_share", -0.1), ("min_rows", 0)])
def test_thresholds_reject_nonsense(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        ValidationThresholds(**{field: value})


def test_one_bad_label_value_is_reported_once_by_name(adult_sample: pd.DataFrame) -> None:
    # As read from a CSV where one label is "maybe": the whole column arrives as text.
    bad = adult_sample.copy()
    bad["label"] = bad["label"].astype(str)
    bad.loc[7, "label"] = "maybe"
    report = validate_frame(bad, ValidationThresholds(), source="bad-label")
    assert [(f.column, f.check) for f in report.failures] == [("label", "dtype('int64')")], report.summary()
    failure = report.failures[0]
    assert "1 value(s) are not numbers" in failure.detail and "'maybe'" in failure.detail
    assert failure.examples == ["maybe"]


def test_a_mistyped_feature_keeps_other_columns_failures(adult_sample: pd.DataFrame) -> None:
    bad = adult_sample.copy()
    bad["age"] = bad["age"].astype(object)
    bad.loc[3, "age"] = "old"
    bad.loc[:4, "capital_loss"] = -5
    report = validate_frame(bad, ValidationThresholds(), source="bad-age")
    assert _checks(report) == {("age", "dtype('int64')"), ("capital_loss", "in_range(0, 10000)")}
    assert "'old'" in report.failures[0].detail or "'old'" in report.failures[1].detail
