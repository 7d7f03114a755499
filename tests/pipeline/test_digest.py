"""Data versions are content digests: format-independent, sensitive to any cell."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.data import load_dataset
from pipeline.digest import combine, file_digest, frame_digest


def test_csv_and_parquet_of_the_same_rows_share_a_digest(adult_sample: pd.DataFrame, tmp_path: Path) -> None:
    adult_sample.head(500).to_csv(tmp_path / "a.csv", index=False)
    adult_sample.head(500).to_parquet(tmp_path / "a.parquet", index=False)
    assert frame_digest(load_dataset(tmp_path / "a.csv")) == frame_digest(load_dataset(tmp_path / "a.parquet"))


def test_one_changed_cell_changes_the_digest(adult_sample: pd.DataFrame) -> None:
    frame = adult_sample.head(500).copy()
    before = frame_digest(frame)
    frame.loc[3, "age"] += 1
    assert frame_digest(frame) != before


def test_file_digest_and_combine(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"abc")
    assert file_digest(tmp_path / "x") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert combine({"a": "1", "b": "2"}) == combine({"b": "2", "a": "1"})
    assert combine({"a": "1"}) != combine({"a": "2"})
