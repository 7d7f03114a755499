"""Synthetic data has the schema, passes validation undrifted, and drifts when asked."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.schema import COLUMNS, NUMERIC_FEATURES
from pipeline.steps.validate import ValidationThresholds, validate_frame
from pipeline.synthetic import generate_synthetic


def test_schema_reproducibility_and_validity(adult_frame: pd.DataFrame) -> None:
    a = generate_synthetic(5000, seed=3)
    assert tuple(a.columns) == COLUMNS
    assert all(str(a[c].dtype) == "int64" for c in (*NUMERIC_FEATURES, "label"))
    pd.testing.assert_frame_equal(a, generate_synthetic(5000, seed=3))
    assert not a.equals(generate_synthetic(5000, seed=4))
    assert validate_frame(a, ValidationThresholds(), source="synthetic").passed
    assert abs(a["label"].mean() - adult_frame["label"].mean()) < 0.03
    assert len(generate_synthetic(0)) == 0


def test_drift_moves_distributions_and_label_relation() -> None:
    base = generate_synthetic(8000, seed=1, drift=0.0)
    drifted = generate_synthetic(8000, seed=1, drift=1.0)
    assert drifted["age"].mean() > base["age"].mean() + 5
    assert drifted["hours_per_week"].mean() > base["hours_per_week"].mean() + 3
    assert drifted["race"].value_counts(normalize=True)["White"] < base["race"].value_counts(normalize=True)["White"] - 0.2
    assert validate_frame(drifted, ValidationThresholds(), source="drifted").passed
    married = base["marital_status"] == "Married-civ-spouse"
    gap = base.loc[married, "label"].mean() - base.loc[~married, "label"].mean()
    married_d = drifted["marital_status"] == "Married-civ-spouse"
    gap_d = drifted.loc[married_d, "label"].mean() - drifted.loc[~married_d, "label"].mean()
    assert gap_d < gap - 0.1  # flipped labels weaken what the features say about the label


@pytest.mark.parametrize("rows,drift", [(-1, 0.0), (10, 1.5), (10, -0.1)])
def test_bad_arguments_are_refused(rows: int, drift: float) -> None:
    with pytest.raises(ValueError):
        generate_synthetic(rows, drift=drift)


def test_synth_command_writes_csv_and_parquet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--rows", "300", "--drift", "0.5", "--out", str(tmp_path / "d.parquet")]) == 0
    assert len(pd.read_parquet(tmp_path / "d.parquet")) == 300
    assert main(["synth", "--rows", "200", "--seed", "2", "--out", str(tmp_path / "d.csv")]) == 0
    assert tuple(pd.read_csv(tmp_path / "d.csv").columns) == COLUMNS
    assert main(["synth", "--rows", "10", "--out", str(tmp_path / "d.txt")]) == 2
    assert main(["synth", "--rows", "10", "--drift", "2", "--out", str(tmp_path / "e.csv")]) == 2
    assert "drift must be in [0, 1]" in capsys.readouterr().err
