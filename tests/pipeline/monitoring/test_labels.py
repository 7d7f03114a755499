"""Joining late labels onto the window by request id and row."""

from __future__ import annotations

from pathlib import Path

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
    placed = sorted(zip(joined.request_ids.tolist(), joined.row_index.tolist(), joined.labels.tolist(), strict=True))
    assert placed == [("a", 0, 1.0), ("a", 2, 0.0), ("b", 0, 0.0)]
    assert len(joined.features) == 3 and joined.features["age"].tolist() == [39.0] * 3
    assert joined.matched == 3 and joined.label_lines == 10
    assert joined.duplicates == 1 and joined.malformed == 3
    assert joined.unknown_request_ids == 2 and joined.unknown_request_examples == ["ghost", "phantom"]
    assert joined.unknown_rows == 1


def test_an_id_in_several_capture_records_is_excluded_never_fanned_out(tmp_path: Path) -> None:
    # A client reusing one id for 60 requests: 10 label lines must not label 600 rows.
    reused = [line("reused", rows=[ROW] * 10) for _ in range(60)]
    (tmp_path / "capture-1.jsonl").write_text("\n".join([*reused, line("solo", rows=[ROW] * 10)]) + "\n")
    csv = tmp_path / "labels.csv"
    csv.write_text("request_id,row,label\n" + "".join(f"reused,{i},1\n" for i in range(10)) + "solo,3,0\n")
    joined = join_labels(read_capture(tmp_path), read_labels(csv), source=str(csv))
    assert joined.matched == 1 and joined.request_ids.tolist() == ["solo"]
    assert joined.ambiguous_request_ids == 1 and joined.ambiguous_labels == 10
    assert joined.ambiguous_examples == ["reused (60 records)"]


def test_labels_join_on_the_server_issued_id_not_the_clients(tmp_path: Path) -> None:
    (tmp_path / "capture-1.jsonl").write_text(line("srv-7f3a", client_request_id="order-1") + "\n")
    csv = tmp_path / "labels.csv"
    csv.write_text("request_id,row,label\norder-1,0,1\nsrv-7f3a,1,0\n")
    joined = join_labels(read_capture(tmp_path), read_labels(csv), source=str(csv))
    assert joined.request_ids.tolist() == ["srv-7f3a"] and joined.row_index.tolist() == [1]
    assert joined.unknown_request_ids == 1 and joined.unknown_request_examples == ["order-1"]


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
