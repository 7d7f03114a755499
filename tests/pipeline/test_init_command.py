"""``python -m pipeline init`` (issue 14): writes a configuration that loads back, and refuses
(exit 2, file untouched) to overwrite one without ``--force`` or to profile a label it cannot use."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipeline import cli
from pipeline.exit_codes import ExitCode
from pipeline.project import load


pytestmark = pytest.mark.usefixtures("fresh_console")


@pytest.fixture
def houses(tmp_path: Path) -> Path:
    path = tmp_path / "House Prices.parquet"
    pd.DataFrame({
        "rooms": [1, 2, 3, 4, 2],
        "city": ["Oslo", "Bergen", "Oslo", None, "Bergen"],
        "sold": ["no", "yes", "no", "no", "yes"],
        "price": [100.0, 180.5, 240.0, 300.0, 175.0],
    }).to_parquet(path, index=False)
    return path


def test_init_writes_a_configuration_that_loads(adult_sample_csv: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "project.yaml"
    code = cli.main(["init", "--data", str(adult_sample_csv), "--label", "label", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == ExitCode.OK, captured.err
    project = load(out)
    assert project.task == "binary" and project.data.label == "label" and project.data.positive_class == 1
    assert project.model_name == "adult-sample"
    assert f"from {adult_sample_csv}" in out.read_text().splitlines()[0]
    assert captured.out.startswith(f"wrote {out}: 15 columns from 16000 rows")
    assert "review it" in captured.err


def test_init_regression_from_parquet_with_json(houses: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cfg" / "houses.yaml"
    code = cli.main(["init", "--data", str(houses), "--label", "price", "--task", "regression",
                     "--out", str(out), "--json"])
    document = json.loads(capsys.readouterr().out)
    assert code == ExitCode.OK
    assert document == {"exit_code": 0, "path": str(out), "data": str(houses), "rows": 5, "columns": 4,
                        "label": "price", "task": "regression", "positive_class": None, "model_name": "house-prices"}
    project = load(out)
    assert project.gate.metric == "rmse" and project.data.column("city").nullable


def test_init_refuses_to_overwrite_without_force(houses: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "project.yaml"
    out.write_text("# mine, hand-edited\n")
    code = cli.main(["init", "--data", str(houses), "--label", "sold", "--out", str(out)])
    assert code == ExitCode.USAGE
    assert f"{out} already exists; pass --force" in capsys.readouterr().err
    assert out.read_text() == "# mine, hand-edited\n"
    assert cli.main(["init", "--data", str(houses), "--label", "sold", "--out", str(out), "--force"]) == ExitCode.OK
    project = load(out)
    assert project.data.label == "sold" and project.data.positive_class == "yes"


@pytest.mark.parametrize(("label", "task", "message"), [
    ("target", "binary", "label column 'target' is not in the data; its columns: rooms, city, sold, price"),
    ("sold", "regression", "a regression label must be numeric; column 'sold'"),
    ("rooms", "binary", "a binary label needs exactly 2 values; column 'rooms' has 4"),
])
def test_init_refuses_a_label_it_cannot_use_and_writes_nothing(
    houses: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], label: str, task: str, message: str
) -> None:
    out = tmp_path / "project.yaml"
    out.write_text("kept\n")
    code = cli.main(["init", "--data", str(houses), "--label", label, "--task", task, "--out", str(out), "--force"])
    assert code == ExitCode.USAGE
    assert message in capsys.readouterr().err
    assert out.read_text() == "kept\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["project.yaml", houses.name])  # no temp file left


def test_init_refuses_an_unreadable_file_and_a_bad_model_name(houses: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "project.yaml"
    assert cli.main(["init", "--data", str(tmp_path / "none.csv"), "--label", "y", "--out", str(out)]) == ExitCode.INVALID_DATA
    assert "no such file" in capsys.readouterr().err
    code = cli.main(["init", "--data", str(houses), "--label", "price", "--task", "regression",
                     "--model-name", "my model", "--out", str(out)])
    assert code == ExitCode.USAGE
    assert "model_name: 'my model'" in capsys.readouterr().err
    assert not out.exists()


def test_an_identifier_column_is_refused_until_it_is_excluded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A text column of unique values (an id, free text) would be written as a category
    with every value listed; init refuses it by name, and --exclude leaves it out."""
    from pipeline.project import MAX_CATEGORY_VALUES

    rows = MAX_CATEGORY_VALUES + 50
    data = tmp_path / "customers.csv"
    pd.DataFrame({"customer_id": [f"C{i:05d}" for i in range(rows)], "age": [20 + i % 50 for i in range(rows)],
                  "plan": ["basic", "plus"] * (rows // 2), "churned": [i % 3 == 0 for i in range(rows)]}).to_csv(data, index=False)
    out = tmp_path / "project.yaml"
    assert cli.main(["init", "--data", str(data), "--label", "churned", "--out", str(out)]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert f"'customer_id' ({rows} distinct values)" in err and "--exclude" in err and not out.exists()

    assert cli.main(["init", "--data", str(data), "--label", "churned", "--out", str(out), "--exclude", "customer_id"]) == ExitCode.OK
    assert [c.name for c in load(out).data.columns] == ["age", "plan", "churned"]


@pytest.mark.parametrize(("exclude", "message"), [("nope", "--exclude names no column of the data: nope"),
                                                  ("sold", "--exclude names the label 'sold'")])
def test_exclude_refuses_what_it_cannot_leave_out(houses: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  exclude: str, message: str) -> None:
    out = tmp_path / "project.yaml"
    assert cli.main(["init", "--data", str(houses), "--label", "sold", "--out", str(out), "--exclude", exclude]) == ExitCode.USAGE
    assert message in capsys.readouterr().err and not out.exists()
