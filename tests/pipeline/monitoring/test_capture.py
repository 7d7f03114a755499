"""Reading capture windows: contract lines, malformed lines, other versions, S3 prefixes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest
from moto import mock_aws

from pipeline.monitoring.capture import WindowLimits, prune_capture, read_capture
from pipeline.monitoring.errors import CaptureError
from pipeline import schema

ROW = [39, "State-gov", 77516, "Bachelors", 13, "Never-married", "Adm-clerical", "Not-in-family", "White", "Male", 2174, 0, 40, "United-States"]


def line(request_id: str = "r1", version: str = "1", rows: list[list[object]] | None = None, **changes: object) -> str:
    rows = rows if rows is not None else [ROW, ROW]
    record: dict[str, object] = {
        "request_id": request_id,
        "timestamp": "2026-11-30T00:00:00Z",
        "model_name": "adult-income",
        "model_version": version,
        "columns": list(schema.FEATURES),
        "rows": rows,
        "predictions": [0] * len(rows),
        "probabilities": [0.25] * len(rows),
    }
    record.update(changes)
    return json.dumps(record)


def test_reads_rows_in_order_with_ids_and_types(tmp_path: Path) -> None:
    other = list(ROW)
    other[0], other[1] = 50, None
    (tmp_path / "capture-0001.jsonl").write_text(line("a") + "\n")
    (tmp_path / "capture-0002.jsonl").write_text(line("b", rows=[other]) + "\n\n")
    (tmp_path / "notes.txt").write_text("not a capture file\n")
    window = read_capture(tmp_path, model_name="adult-income", model_version="1")
    assert (window.files, window.lines, window.requests, window.rows) == (2, 2, 2, 3)
    assert window.request_ids.tolist() == ["a", "a", "b"]
    assert window.row_index.tolist() == [0, 1, 0]
    assert window.features["age"].tolist() == [39.0, 39.0, 50.0]
    assert window.features["workclass"].tolist() == ["State-gov", "State-gov", None]
    assert window.features["age"].dtype == np.float64
    assert window.probabilities.tolist() == [0.25] * 3
    assert window.malformed_lines == 0


def test_malformed_lines_are_skipped_and_counted_with_examples(tmp_path: Path) -> None:
    bad = [
        "{not json",
        json.dumps([1, 2, 3]),
        line(request_id=""),
        line(rows=[ROW[:5]]),
        line(probabilities=[0.1]),
        line(probabilities=[1.5, 0.2]),
        line(predictions=["yes", "no"]),
        line(columns=[]),
    ]
    (tmp_path / "capture-1.jsonl").write_text("\n".join([line("good"), *bad, line("good2")]) + "\n")
    window = read_capture(tmp_path)
    assert window.malformed_lines == len(bad)
    assert window.rows == 4 and window.request_ids.tolist() == ["good", "good", "good2", "good2"]
    assert len(window.malformed_examples) == 5
    assert "capture-1.jsonl:2: not valid JSON" in window.malformed_examples[0]
    assert "not a JSON object" in window.malformed_examples[1]
    assert "request_id" in window.malformed_examples[2]
    assert "14 values" in window.malformed_examples[3]


def test_rows_of_other_versions_are_left_out_and_counted(tmp_path: Path) -> None:
    (tmp_path / "capture-1.jsonl").write_text("\n".join([line("a", version="1"), line("b", version="2")]) + "\n")
    window = read_capture(tmp_path, model_name="adult-income", model_version="2")
    assert window.rows == 2 and set(window.request_ids) == {"b"}
    assert (window.other_model_lines, window.other_model_rows) == (1, 2)
    assert window.versions_seen == {"adult-income/v1": 2, "adult-income/v2": 2}
    assert read_capture(tmp_path).rows == 4


def test_non_numeric_values_and_missing_columns(tmp_path: Path) -> None:
    partial = line("p", columns=["age", "sex"], rows=[["forty", "Male"], [41, "Female"]])
    (tmp_path / "capture-1.jsonl").write_text(partial + "\n")
    window = read_capture(tmp_path)
    assert list(window.features.columns) == list(schema.FEATURES)
    assert window.non_numeric["age"] == 1
    assert pd.isna(window.features.loc[0, "age"]) and window.features.loc[1, "age"] == 41.0
    assert window.features["occupation"].isna().all()


def test_null_probabilities_keep_the_rows_without_a_score(tmp_path: Path) -> None:
    (tmp_path / "capture-1.jsonl").write_text(line("n", probabilities=None) + "\n")
    window = read_capture(tmp_path)
    assert window.rows == 2 and window.malformed_lines == 0
    assert np.isnan(window.probabilities).all()


def test_gzip_files_and_a_single_file_path(tmp_path: Path) -> None:
    (tmp_path / "capture-1.jsonl.gz").write_bytes(gzip.compress((line("z") + "\n").encode()))
    assert read_capture(tmp_path).rows == 2
    single = tmp_path / "capture-2.jsonl"
    single.write_text(line("y") + "\n")
    assert read_capture(single).request_ids.tolist() == ["y", "y"]


def test_missing_path_is_refused_and_an_empty_folder_is_an_empty_window(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="does not exist"):
        read_capture(tmp_path / "nowhere")
    window = read_capture(tmp_path)
    assert (window.files, window.rows) == (0, 0)


@mock_aws
def test_s3_prefix_is_read_and_an_empty_prefix_gives_an_empty_window() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="capture-bucket")
    s3.put_object(Bucket="capture-bucket", Key="serving/dev/capture-0001.jsonl", Body=(line("s3a") + "\n").encode())
    s3.put_object(Bucket="capture-bucket", Key="serving/dev/capture-0002.jsonl.gz", Body=gzip.compress((line("s3b") + "\n{oops\n").encode()))
    s3.put_object(Bucket="capture-bucket", Key="serving/dev/README.txt", Body=b"ignored")
    window = read_capture("s3://capture-bucket/serving/dev/")
    assert window.files == 2 and window.rows == 4 and window.malformed_lines == 1
    assert window.malformed_examples[0].startswith("s3://capture-bucket/serving/dev/capture-0002.jsonl.gz:2")
    empty = read_capture("s3://capture-bucket/serving/prod/")
    assert (empty.files, empty.rows) == (0, 0)
    with pytest.raises(CaptureError, match="NoSuchBucket"):
        read_capture("s3://no-such-bucket/capture/")
    with pytest.raises(CaptureError, match="names no bucket"):
        read_capture("s3:///capture/")


def test_a_huge_integer_is_a_skipped_line_not_a_crash(tmp_path: Path) -> None:
    huge = line("huge").replace('"rows": [[39,', '"rows": [[' + "9" * 5000 + ",", 1)
    (tmp_path / "capture-1.jsonl").write_text("\n".join([line("a"), huge, line("b")]) + "\n")
    window = read_capture(tmp_path)
    assert window.rows == 4 and window.malformed_lines == 1
    assert "capture-1.jsonl:2: unreadable value" in window.malformed_examples[0]


def test_a_truncated_gzip_file_is_reported_and_the_rest_still_read(tmp_path: Path) -> None:
    whole = gzip.compress(("\n".join(line(f"t{i}") for i in range(200)) + "\n").encode())
    (tmp_path / "capture-1.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "capture-2.jsonl").write_text(line("after") + "\n")
    window = read_capture(tmp_path)
    assert len(window.damaged_files) == 1 and "capture-1.jsonl.gz" in window.damaged_files[0]
    assert "after" in set(window.request_ids)
    assert window.rows > 2, "the lines before the damage were dropped"


def test_one_clients_big_batches_cannot_dominate_the_window(tmp_path: Path) -> None:
    big = [line(f"big{i}", rows=[ROW] * 1000) for i in range(3)]
    small = [line(f"small{i}", rows=[ROW]) for i in range(50)]
    (tmp_path / "capture-1.jsonl").write_text("\n".join([*big, *small]) + "\n")
    window = read_capture(tmp_path, limits=WindowLimits(max_rows_per_request=20))
    assert window.rows_read == 3050 and window.rows == 3 * 20 + 50
    assert window.rows_over_request_cap == 3 * 980
    assert sum(str(r).startswith("big") for r in window.request_ids) == 60


def test_the_window_is_a_bounded_uniform_sample(tmp_path: Path) -> None:
    (tmp_path / "capture-1.jsonl").write_text("\n".join(line(f"r{i:04d}") for i in range(2000)) + "\n")
    window = read_capture(tmp_path, limits=WindowLimits(max_rows=300))
    assert window.rows == 300 and window.rows_read == 4000 and window.sampled
    early = sum(int(str(r)[1:]) < 1000 for r in window.request_ids)
    assert 100 < early < 200, "the sample should come from the whole window, not its start"


def test_old_capture_files_are_pruned_and_recent_ones_kept(tmp_path: Path) -> None:
    import os
    import time

    old, recent, other = tmp_path / "capture-old.jsonl", tmp_path / "capture-new.jsonl", tmp_path / "notes.txt"
    for path in (old, recent, other):
        path.write_text(line("x") + "\n")
    ten_days_ago = time.time() - 10 * 86_400
    os.utime(old, (ten_days_ago, ten_days_ago))
    os.utime(other, (ten_days_ago, ten_days_ago))
    assert prune_capture(tmp_path, 7) == ["capture-old.jsonl"]
    assert not old.exists() and recent.exists() and other.exists()
    with pytest.raises(CaptureError, match="lifecycle"):
        prune_capture("s3://bucket/capture/", 7)
