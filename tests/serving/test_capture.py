"""The capture writer: rotation by size, dropping (never blocking) when full, S3 shipping."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from serving.capture import CaptureSettings, CaptureWriter, capture_record


def record(i: int, rows: int = 5) -> dict:
    return capture_record(f"r{i}", "m", "1", ["a", "b"], [[i, "x"]] * rows, [0] * rows, [0.25] * rows)


def test_rotates_by_size_and_keeps_every_line(tmp_path: Path) -> None:
    writer = CaptureWriter(CaptureSettings(tmp_path, max_file_bytes=2048)).start()
    for i in range(100):
        assert writer.submit(record(i))
    writer.close()
    files = sorted(tmp_path.glob("capture-*.jsonl"))
    assert len(files) > 3
    assert all(f.stat().st_size < 2048 + 400 for f in files)
    ids = [json.loads(line)["request_id"] for f in files for line in f.read_text().splitlines()]
    assert sorted(ids, key=lambda s: int(s[1:])) == [f"r{i}" for i in range(100)]


def test_full_queue_drops_and_counts_without_blocking(tmp_path: Path) -> None:
    writer = CaptureWriter(CaptureSettings(tmp_path, queue_size=2))  # not started: nothing drains
    started = time.perf_counter()
    results = [writer.submit(record(i)) for i in range(10)]
    assert time.perf_counter() - started < 0.1
    assert results == [True, True] + [False] * 8
    assert writer.dropped == 8


def test_queued_bytes_are_bounded_not_only_the_record_count(tmp_path: Path) -> None:
    writer = CaptureWriter(CaptureSettings(tmp_path, queue_size=1000, queue_bytes=4096))  # not started
    line = json.dumps(record(0, rows=20)).encode()
    accepted = [writer.submit(line) for _ in range(10)]
    assert accepted == [True] * (4096 // len(line)) + [False] * (10 - 4096 // len(line))
    assert writer.dropped == 10 - 4096 // len(line) and writer.lost == writer.dropped


def test_unserialisable_record_is_counted_and_the_writer_survives(tmp_path: Path) -> None:
    writer = CaptureWriter(CaptureSettings(tmp_path)).start()
    writer.submit({"bad": float("nan")})
    writer.submit(record(1))
    writer.close()
    lines = [line for f in tmp_path.glob("capture-*.jsonl") for line in f.read_text().splitlines()]
    assert [json.loads(line)["request_id"] for line in lines] == ["r1"]
    assert writer.failed == 1


def test_closed_files_are_shipped_to_s3(tmp_path: Path) -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="capture-bucket")
        writer = CaptureWriter(
            CaptureSettings(tmp_path, max_file_bytes=1024, s3_uri="s3://capture-bucket/serving/adult-income")
        ).start()
        for i in range(30):
            writer.submit(record(i))
        writer.close()
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="capture-bucket")["Contents"]]
    local = sorted(p.name for p in tmp_path.glob("capture-*.jsonl"))
    assert sorted(k.rsplit("/", 1)[1] for k in keys) == local
    assert all(k.startswith("serving/adult-income/capture-") for k in keys)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sample_rate": 1.5}, "sample rate"),
        ({"max_file_bytes": 10}, "max file size"),
        ({"queue_size": 0}, "queue size"),
        ({"queue_bytes": 10}, "queue bytes"),
        ({"s3_uri": "bucket/prefix"}, "s3://"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CaptureSettings(tmp_path, **kwargs)


FULL_DISK_SCRIPT = """
import json, logging, resource, signal, sys
from pathlib import Path
from serving.capture import CaptureSettings, CaptureWriter, capture_record

# A file-size limit is a disk that fills up at a known byte: the write that crosses it is
# cut short, every later one fails with EFBIG (SIGXFSZ ignored, as a server would).
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
writer = CaptureWriter(CaptureSettings(Path(sys.argv[1]), max_file_bytes=10**6, queue_size=1000)).start()
for i in range(400):
    writer.submit(capture_record(f"r{i}", "m", "1", ["a", "b"], [[i, "x" * 10]] * 5, [0] * 5, [0.5] * 5))
writer.close()
print(json.dumps({"written": writer.written, "lost": writer.lost, "failed": writer.failed}))
"""


def test_a_full_disk_keeps_whole_lines_counts_every_lost_record_and_logs_once(tmp_path: Path) -> None:
    import subprocess
    import sys

    from pipeline.schema import REPO_ROOT

    result = subprocess.run([sys.executable, "-c", FULL_DISK_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                            timeout=60, cwd=REPO_ROOT, env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)
    lines = [line for f in tmp_path.glob("capture-*.jsonl") for line in f.read_bytes().split(b"\n") if line]
    records = [json.loads(line) for line in lines]  # a merged or partial line would not parse
    assert [r["request_id"] for r in records] == [f"r{i}" for i in range(len(records))]
    assert 0 < counts["written"] == len(records) < 400
    assert counts["written"] + counts["lost"] == 400 and counts["failed"] == counts["lost"]
    assert result.stderr.count("capture write failed") == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_every_lost_record_is_in_the_dropped_metric(tmp_path: Path) -> None:
    from serving.metrics import ServingMetrics

    writer = CaptureWriter(CaptureSettings(tmp_path, queue_size=1))  # not started: the second record is dropped
    writer.submit(record(1))
    writer.submit(record(2))
    writer.failed = 3  # what the writer thread counts for records the disk refused
    metrics = ServingMetrics("m", "1", None, capture_lost=lambda: writer.lost)
    assert "mlserve_capture_dropped_total 4.0" in metrics.render().decode()


def test_a_serialised_line_is_written_as_is(tmp_path: Path) -> None:
    writer = CaptureWriter(CaptureSettings(tmp_path)).start()
    assert writer.submit(json.dumps(record(5)).encode())
    writer.close()
    (path,) = tmp_path.glob("capture-*.jsonl")
    assert json.loads(path.read_text())["request_id"] == "r5" and path.read_text().endswith("\n")
