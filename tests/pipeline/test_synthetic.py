"""Synthetic data has the schema, matches the real data at drift 0, and drifts learnably when asked."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from pipeline.cli import main
from pipeline import schema
from pipeline.steps.validate import ValidationThresholds, validate_frame
from pipeline.synthetic import generate_synthetic


def _as_monitor_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Numerics as float, as the monitor reads a capture window."""
    out = frame.copy()
    for column in schema.NUMERIC_FEATURES:
        out[column] = out[column].astype(float)
    return out


@pytest.fixture(scope="module")
def real_split(adult_frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The real data split by the pipeline's own rule: (train, holdout)."""
    from pipeline.steps.split import SplitParams, split

    parts = split(adult_frame, SplitParams(validation_fraction=0.0))
    return parts.train, parts.holdout


@pytest.fixture(scope="module")
def real_model(real_split: tuple[pd.DataFrame, pd.DataFrame], fast_hyperparameters):
    """A small XGBoost trained on real rows only: the stale champion of these tests."""
    from training.model import fit_model

    return fit_model(real_split[0], None, fast_hyperparameters).model


def _auc(model, frame: pd.DataFrame) -> float:
    from pipeline.steps.evaluate import predict_proba, roc_auc

    return roc_auc(frame[schema.LABEL].to_numpy(), predict_proba(model, frame))


def test_schema_reproducibility_and_validity(adult_frame: pd.DataFrame) -> None:
    a = generate_synthetic(5000, seed=3)
    assert tuple(a.columns) == schema.COLUMNS
    assert all(str(a[c].dtype) == "int64" for c in (*schema.NUMERIC_FEATURES, "label"))
    pd.testing.assert_frame_equal(a, generate_synthetic(5000, seed=3))
    assert not a.equals(generate_synthetic(5000, seed=4))
    assert validate_frame(a, ValidationThresholds(), source="synthetic").passed
    assert abs(a["label"].mean() - adult_frame["label"].mean()) < 0.02
    assert len(generate_synthetic(0)) == 0


def test_drift_zero_matches_every_real_distribution(adult_frame: pd.DataFrame) -> None:
    """The monitor's own PSI finds nothing between the real data and drift-0 output,
    including the 40-hour spike a symmetric jitter used to dissolve."""
    from pipeline.monitoring.drift import feature_drift
    from pipeline.monitoring.thresholds import Thresholds

    synthetic = generate_synthetic(20_000, seed=5)
    results = feature_drift(_as_monitor_frame(adult_frame), _as_monitor_frame(synthetic), Thresholds())
    assert len(results) == 14
    worst = max(results, key=lambda r: r.psi or 0.0)
    assert all(r.psi is not None and r.psi < 0.05 for r in results), (worst.feature, worst.psi)
    assert not any(r.drifted for r in results)
    spike = (synthetic["hours_per_week"] == 40).mean()
    assert abs(spike - (adult_frame["hours_per_week"] == 40).mean()) < 0.02
    assert synthetic.drop(columns=schema.LABEL).duplicated().mean() < 0.01  # jittered, not copies


def test_drift_zero_keeps_the_label_relation(real_split, real_model) -> None:
    """A model trained on real rows scores about the same on drift-0 rows as on real holdout rows."""
    real_auc = _auc(real_model, real_split[1])
    synthetic_auc = _auc(real_model, generate_synthetic(8000, seed=6))
    assert real_auc > 0.9
    assert abs(synthetic_auc - real_auc) < 0.015, (real_auc, synthetic_auc)


def test_drift_changes_the_relation_learnably(real_split, real_model, fast_hyperparameters) -> None:
    """At drift 0.6 the stale model drops clearly, one retrained on drifted rows recovers
    about the real AUC, and labels are the real ones (no noise, per-sex base rates kept)."""
    from pipeline.steps.split import SplitParams, split
    from training.model import fit_model

    real_auc = _auc(real_model, real_split[1])
    drifted = generate_synthetic(16_000, seed=7, drift=0.6)
    parts = split(drifted, SplitParams(validation_fraction=0.0))
    retrained = fit_model(parts.train, None, fast_hyperparameters).model
    stale_auc, fresh_auc = _auc(real_model, parts.holdout), _auc(retrained, parts.holdout)
    assert stale_auc < real_auc - 0.05, (real_auc, stale_auc)
    assert fresh_auc > real_auc - 0.02, (real_auc, fresh_auc)
    assert fresh_auc > stale_auc + 0.04
    base = real_split[1].groupby("sex")[schema.LABEL].mean()
    assert (drifted.groupby("sex")[schema.LABEL].mean() - base).abs().max() < 0.03


def test_drift_moves_distributions() -> None:
    base = generate_synthetic(8000, seed=1, drift=0.0)
    drifted = generate_synthetic(8000, seed=1, drift=1.0)
    assert drifted["age"].mean() > base["age"].mean() + 5
    assert drifted["hours_per_week"].mean() > base["hours_per_week"].mean() + 3
    assert drifted["race"].value_counts(normalize=True)["White"] < base["race"].value_counts(normalize=True)["White"] - 0.05
    # capital amounts: the zero mass stays (up to the category tilt), the tail stretches x2
    gains, base_gains = drifted["capital_gain"], base["capital_gain"]
    assert abs((gains == 0).mean() - (base_gains == 0).mean()) < 0.03
    assert gains[gains > 0].median() > 1.8 * base_gains[base_gains > 0].median()
    assert validate_frame(drifted, ValidationThresholds(), source="drifted").passed
    # the region where occupations trade meaning: executives with little schooling vanish
    # from the educated, and house servants appear among them
    educated = drifted["education_num"] >= 13
    assert (drifted.loc[educated, "occupation"] == "Priv-house-serv").mean() > 0.1
    # drift reuses real rows less evenly but never collapses onto a few of them
    assert drifted.drop(columns=schema.LABEL).duplicated().mean() < 0.01


@pytest.mark.parametrize("rows,drift", [(-1, 0.0), (10, 1.5), (10, -0.1), (True, 0.0)])
def test_bad_arguments_are_refused(rows: int, drift: float) -> None:
    with pytest.raises(ValueError):
        generate_synthetic(rows, drift=drift)


def test_synth_command_writes_csv_and_parquet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--rows", "300", "--drift", "0.5", "--out", str(tmp_path / "d.parquet")]) == 0
    assert len(pd.read_parquet(tmp_path / "d.parquet")) == 300
    assert main(["synth", "--rows", "200", "--seed", "2", "--out", str(tmp_path / "d.csv")]) == 0
    assert tuple(pd.read_csv(tmp_path / "d.csv").columns) == schema.COLUMNS
    assert main(["synth", "--rows", "10", "--out", str(tmp_path / "d.txt")]) == 2
    assert main(["synth", "--rows", "10", "--drift", "2", "--out", str(tmp_path / "e.csv")]) == 2
    assert "drift must be in [0, 1]" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------
# Any contract: the generator reads the active project and a reference sample, nothing else
# ---------------------------------------------------------------------------------------


@pytest.fixture
def diabetes(use_project, tmp_path: Path) -> pd.DataFrame:
    """The regression project (scikit-learn's diabetes data) active; returns its rows."""
    from tests.pipeline.monitoring.regression import diabetes_frame, write_project

    frame = diabetes_frame()
    use_project(write_project(tmp_path, frame))
    return frame


def _contract_problems(frame: pd.DataFrame) -> list[str]:
    """Where ``frame`` breaks the active contract: columns, types, ranges, values, nulls."""
    from pipeline.project import check_data

    problems = list(check_data(schema.PROJECT, frame))
    if tuple(frame.columns) != schema.COLUMNS:
        problems.append(f"columns {tuple(frame.columns)}")
    for column in schema.PROJECT.data.columns:
        values = frame[column.name]
        if not column.nullable and values.isna().any():
            problems.append(f"{column.name}: nulls")
        if column.type == "integer" and str(values.dtype) != "int64":
            problems.append(f"{column.name}: {values.dtype}, not int64")
        if column.type == "number" and not pd.api.types.is_float_dtype(values):
            problems.append(f"{column.name}: {values.dtype}, not float")
        if column.type == "category" and not set(values.dropna()) <= set(column.values or ()):
            problems.append(f"{column.name}: undeclared {set(values.dropna()) - set(column.values or ())}")
        if column.minimum is not None and (values < column.minimum).any():
            problems.append(f"{column.name}: below {column.minimum}")
        if column.maximum is not None and (values > column.maximum).any():
            problems.append(f"{column.name}: above {column.maximum}")
    return problems


@pytest.mark.parametrize("drift", [0.0, 1.0])
def test_a_regression_project_gets_rows_of_its_own_contract(diabetes: pd.DataFrame, drift: float) -> None:
    """Integer columns stay whole, numbers stay float and within their declared range (at
    drift 1 too, where they shift up), categories are the declared ones; reproducible."""
    rows = generate_synthetic(3000, seed=1, drift=drift, reference=diabetes)
    assert len(rows) == 3000
    assert _contract_problems(rows) == []
    assert validate_frame(rows, ValidationThresholds(), source="synthetic").passed
    pd.testing.assert_frame_equal(rows, generate_synthetic(3000, seed=1, drift=drift, reference=diabetes))
    assert rows.drop(columns=schema.LABEL).duplicated().mean() < 0.1  # jittered, not copies of 442 rows
    assert set(rows["sex"]) == {"one", "two"}


def test_a_regression_contract_drifts_only_when_asked(diabetes: pd.DataFrame) -> None:
    """The monitor's own statistics: nothing drifts at drift 0, features do at drift 1;
    a model fitted on the reference errs as much at drift 0 and clearly more at drift 1
    (the label relation changed), while the labels themselves are the reference's."""
    from pipeline.monitoring.drift import feature_drift
    from pipeline.monitoring.thresholds import Thresholds
    from tests.pipeline.monitoring.regression import fit_regressor, rmse

    model = fit_regressor(diabetes)
    calm = generate_synthetic(3000, seed=2, reference=diabetes)
    moved = generate_synthetic(3000, seed=3, drift=1.0, reference=diabetes)
    assert not [r.feature for r in feature_drift(_as_monitor_frame(diabetes), _as_monitor_frame(calm), Thresholds()) if r.drifted]
    drifted = {r.feature for r in feature_drift(_as_monitor_frame(diabetes), _as_monitor_frame(moved), Thresholds()) if r.drifted}
    assert {"age", "bmi", "bp"} <= drifted
    error = {name: rmse(frame[schema.LABEL], model.predict(frame.loc[:, list(schema.FEATURES)]))
             for name, frame in (("reference", diabetes), ("calm", calm), ("moved", moved))}
    assert abs(error["calm"] / error["reference"] - 1) < 0.05, error
    assert error["moved"] > 1.3 * error["reference"], error
    assert set(moved[schema.LABEL]) <= set(diabetes[schema.LABEL])


def test_a_new_project_needs_its_own_reference(diabetes: pd.DataFrame, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped dataset fits only the shipped project: without ``reference`` (``--data``)
    the generator refuses, saying what to pass; with ``--data FILE`` the CLI writes rows."""
    with pytest.raises(ValueError, match=r"pass reference=FRAME \(python -m pipeline synth --data FILE\)"):
        generate_synthetic(10)
    assert main(["synth", "--rows", "10", "--out", str(tmp_path / "none.csv")]) == 2
    assert "--data FILE" in capsys.readouterr().err
    source = tmp_path / "diabetes.csv"
    diabetes.to_csv(source, index=False)
    assert main(["synth", "--rows", "400", "--drift", "0.5", "--data", str(source), "--out", str(tmp_path / "d.csv")]) == 0
    written = pd.read_csv(tmp_path / "d.csv")
    assert len(written) == 400 and tuple(written.columns) == schema.COLUMNS


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda f: f.drop(columns=["bmi"]), "lacks the contract's column(s) bmi"),
        (lambda f: f.assign(sex=f["sex"].where(f.index > 5, "three")), "'sex' holds values the contract does not declare: three"),
        (lambda f: f.assign(bp=f["bp"].where(f.index > 5, None)), "non-nullable column(s) hold nulls: bp"),
        (lambda f: f.assign(bmi=f["bmi"].astype(str)), "'bmi' is declared numeric"),
        (lambda f: f.iloc[:0], "has no rows"),
    ],
)
def test_a_reference_that_breaks_the_contract_is_refused(diabetes: pd.DataFrame, change, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        generate_synthetic(10, reference=change(diabetes))


def test_the_shipped_projects_drift_is_derived_not_written_in() -> None:
    """On Adult the generic rules find what a person would pick: jitter the continuous
    columns, change the label relation among the better educated by swapping marital
    status and occupation, and leave sex and its proxy ``relationship`` alone."""
    from pipeline.synthetic import default_reference_profile

    study = default_reference_profile()
    assert study.jittered == ("age", "fnlwgt", "hours_per_week")
    assert study.tails == {"capital_gain": 0.0, "capital_loss": 0.0}
    assert study.region == "education_num"
    assert set(study.swapped) == {"marital_status", "occupation"}
    assert study.mirrors["occupation"]["Exec-managerial"] == "Priv-house-serv"
    assert study.mirrors["marital_status"]["Married-civ-spouse"] == "Never-married"
    assert "sex" not in study.tilted and "relationship" not in study.tilted
