"""Joining late labels onto the window by request id and row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.monitoring.capture import read_capture
from pipeline.monitoring.errors import LabelsError
from pipeline.monitoring.labels import join_labels, read_labels
from tests.pipeline.monitoring.test_capture import ROW, line


@pytest.fixture()
def window(tmp_path: Path):
    (tmp_path / "capture-1.jsonl").write_text("\n".join([line("a", rows=[ROW, ROW, ROW]), line("b", rows=[ROW])]) + "\n")
    return read_capture(tmp_path)


def test_labels_land_on_their_rows_and_strays_are_counted(window, tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text(
        "request_id,row,label\n"
        "a,0,1\n"
        "a,2,0\n"
        "b,0,1\n"
        "b,0,0\n"  # repeated: the last one wins
        "ghost,0,1\n"
        "phantom,3,0\n"
        "a,7,1\n"  # request known, row not
        "a,1,2\n"  # label not 0/1
        "a,x,1\n"  # row not a number
        "a,inf,1\n"  # row not finite
    )
    joined = join_labels(window, read_labels(csv), source=str(csv))
    assert joined.labels[[0, 2, 3]].tolist() == [1.0, 0.0, 0.0]
    assert np.isnan(joined.labels[1])
    assert joined.matched == 3 and joined.label_lines == 10
    assert joined.duplicates == 1 and joined.malformed == 3
    assert joined.unknown_request_ids == 2 and joined.unknown_request_examples == ["ghost", "phantom"]
    assert joined.unknown_rows == 1


def test_labels_file_problems_are_named(tmp_path: Path) -> None:
    with pytest.raises(LabelsError, match="does not exist"):
        read_labels(tmp_path / "missing.csv")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("id,label\nx,1\n")
    with pytest.raises(LabelsError, match="lacks column\\(s\\) request_id, row"):
        read_labels(wrong)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(LabelsError, match="not readable CSV"):
        read_labels(empty)
