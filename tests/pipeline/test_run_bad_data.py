"""Each way data can be bad stops ``python -m pipeline run`` with exit 4, a named check, no registry."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.exit_codes import ExitCode


def _corrupt(frame: pd.DataFrame, how: str) -> pd.DataFrame:
    bad = frame.copy()
    if how == "missing_column":
        return bad.drop(columns=["occupation"])
    if how == "wrong_type":
        bad["age"] = bad["age"].astype(str)
        bad.loc[0, "age"] = "thirty"
    elif how == "out_of_range":
        bad.loc[:9, "hours_per_week"] = 168
    elif how == "too_many_nulls":
        bad.loc[: len(bad) // 3, "workclass"] = None
    elif how == "single_class":
        bad["label"] = 0
    return bad


CASES = {
    "missing_column": ("occupation", "column_in_dataframe"),
    "wrong_type": ("age", "dtype('int64')"),
    "out_of_range": ("hours_per_week", "in_range(1, 99)"),
    "too_many_nulls": ("workclass", "max_null_fraction"),
    "single_class": ("label", "both_classes"),
}


def _run(data: Path, store: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["run", "--data", str(data), "--store", str(store), "--create-registry", "--param", "device=cpu"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("how", sorted(CASES))
def test_bad_data_exits_invalid_and_names_the_check(
    how: str, adult_sample: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / f"{how}.csv"
    _corrupt(adult_sample.head(3000), how).to_csv(data, index=False)
    store = tmp_path / "store"
    code, output = _run(data, store, capsys)
    column, check = CASES[how]
    assert code == ExitCode.INVALID_DATA
    assert f"{column}: {check}" in output
    assert not (store / "mlflow.db").exists(), "the registry must be untouched"
    reports = list((store / "reports").rglob("validation.json"))
    assert len(reports) == 1
    failures = json.loads(reports[0].read_text())["failures"]
    assert {(f["column"], f["check"]) for f in failures} >= {(column, check)}


def test_empty_file_exits_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "empty.csv"
    data.write_text("")
    store = tmp_path / "store"
    code, output = _run(data, store, capsys)
    assert code == ExitCode.INVALID_DATA
    assert "empty" in output
    assert not (store / "mlflow.db").exists()
    assert list((store / "reports").rglob("validation.md"))


def test_header_only_file_exits_invalid(adult_sample: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "header.csv"
    adult_sample.head(0).to_csv(data, index=False)
    code, output = _run(data, tmp_path / "store", capsys)
    assert code == ExitCode.INVALID_DATA
    assert "<frame>: min_rows" in output


def test_unknown_format_and_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data.xlsx"
    data.write_text("x")
    code, output = _run(data, tmp_path / "store", capsys)
    assert code == ExitCode.INVALID_DATA and "unknown data format" in output
    assert main(["run", "--store", str(tmp_path / "s"), "--gate", "nonsense=1"]) == ExitCode.USAGE
    assert main(["run", "--store", str(tmp_path / "s"), "--param", "depth"]) == ExitCode.USAGE
