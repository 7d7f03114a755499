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


def _compress(kind: str, data: bytes) -> bytes:
    import bz2
    import gzip
    import lzma

    import zstandard

    return {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress,
            "zst": zstandard.ZstdCompressor().compress}[kind](data)


@pytest.mark.parametrize("kind", ["gz", "bz2", "xz", "zst"])
def test_truncated_compressed_data_exits_invalid_with_a_report(
    kind: str, adult_sample: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = _compress(kind, adult_sample.head(3000).to_csv(index=False).encode())
    data = tmp_path / f"adult.csv.{kind}"
    data.write_bytes(whole[: len(whole) // 2])
    store = tmp_path / "store"
    code, output = _run(data, store, capsys)
    assert code == ExitCode.INVALID_DATA, output
    assert "truncated or corrupt compressed data" in output
    assert not (store / "mlflow.db").exists()
    (report,) = (store / "reports").rglob("validation.json")
    assert json.loads(report.read_text())["failures"][0]["check"] == "readable"


def test_corrupt_zstd_exits_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "adult.csv.zst"
    data.write_bytes(b"\x28\xb5\x2f\xfd" + bytes(range(256)) * 8)
    code, output = _run(data, tmp_path / "store", capsys)
    assert code == ExitCode.INVALID_DATA and "ZstdError" in output


def test_a_header_naming_a_column_twice_is_refused(
    adult_sample: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = adult_sample.head(3000)
    data = tmp_path / "dup.csv"
    text = frame.to_csv(index=False)
    header, body = text.split("\n", 1)
    data.write_text(header + ",age\n" + "\n".join(f"{row},99" for row in body.splitlines()) + "\n")
    code, output = _run(data, tmp_path / "store", capsys)
    assert code == ExitCode.INVALID_DATA, output
    assert "more than once: age" in output


def test_every_missing_column_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "nul.csv"
    data.write_bytes(b"\0" * 4096)
    store = tmp_path / "store"
    code, output = _run(data, store, capsys)
    assert code == ExitCode.INVALID_DATA, output
    (report,) = (store / "reports").rglob("validation.json")
    missing = {f["column"] for f in json.loads(report.read_text())["failures"] if f["check"] == "column_in_dataframe"}
    from pipeline import schema

    assert missing == set(schema.COLUMNS), f"{len(missing)} of {len(schema.COLUMNS)} missing columns named"


def test_data_past_the_size_cap_is_refused_while_streaming(tmp_path: Path) -> None:
    import gzip

    from pipeline.data import DataLoadError, load_dataset

    bomb = tmp_path / "bomb.csv.gz"
    with gzip.open(bomb, "wb") as handle:  # ~40 MB of CSV from ~100 KB on disk
        handle.write(b"age,label\n")
        for _ in range(40):
            handle.write(b"39,0\n" * 200_000)
    with pytest.raises(DataLoadError, match="more than 1,000,000 bytes"):
        load_dataset(bomb, max_bytes=1_000_000)
    parquet = tmp_path / "big.parquet"
    pd.DataFrame({"age": range(200_000)}).to_parquet(parquet)
    with pytest.raises(DataLoadError, match="MAX_DATA_BYTES"):
        load_dataset(parquet, max_bytes=10_000)
