"""Prediction capture for the monitors: sampled requests as rotated JSON Lines files.

The format is fixed in docs/contracts.md ("Serving"): files ``capture-*.jsonl``, one line
per sampled request with ``request_id``, ``timestamp``, ``model_name``, ``model_version``,
``columns``, ``rows``, ``predictions`` and ``probabilities``. The request path only puts a
record on a bounded queue (``put_nowait``); a background thread serialises and writes.
When the queue is full the record is dropped and counted, so a slow disk can cost
monitoring data but never a request. Closed files can be shipped to S3 (the AWS path)
from the same thread.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("serving.capture")

_STOP = object()


@dataclass(frozen=True)
class CaptureSettings:
    """Where and how much to capture; ``sample_rate`` 0 switches capture off."""

    directory: Path
    sample_rate: float = 1.0
    max_file_bytes: int = 16 * 1024 * 1024
    queue_size: int = 1024
    s3_uri: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample_rate <= 1.0:
            raise ValueError(f"capture sample rate must be within [0, 1], got {self.sample_rate}")
        if self.max_file_bytes < 1024:
            raise ValueError(f"capture max file size must be at least 1024 bytes, got {self.max_file_bytes}")
        if self.queue_size < 1:
            raise ValueError(f"capture queue size must be positive, got {self.queue_size}")
        if self.s3_uri is not None and not self.s3_uri.startswith("s3://"):
            raise ValueError(f"capture S3 destination must be an s3:// URI, got {self.s3_uri!r}")


def capture_record(
    request_id: str,
    model_name: str,
    model_version: str,
    columns: list[str],
    rows: list[list[Any]],
    predictions: list[Any],
    probabilities: list[float] | None,
) -> dict[str, Any]:
    """One capture line as the contract spells it (timestamp: ISO 8601, UTC)."""
    return {
        "request_id": request_id,
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "model_name": model_name,
        "model_version": model_version,
        "columns": columns,
        "rows": rows,
        "predictions": predictions,
        "probabilities": probabilities,
    }


def s3_shipper(s3_uri: str) -> Callable[[Path], None]:
    """An uploader of closed capture files to ``s3://bucket/prefix/`` (client made lazily)."""
    bucket, _, prefix = s3_uri[len("s3://") :].partition("/")
    state: dict[str, Any] = {}

    def ship(path: Path) -> None:
        if "client" not in state:
            import boto3

            state["client"] = boto3.client("s3")
        key = f"{prefix.rstrip('/')}/{path.name}" if prefix else path.name
        state["client"].upload_file(str(path), bucket, key)

    return ship


class CaptureWriter:
    """Background writer of capture records; :meth:`submit` never blocks or raises."""

    def __init__(self, settings: CaptureSettings, ship: Callable[[Path], None] | None = None) -> None:
        self.settings = settings
        self.dropped = 0
        self.written = 0
        self.failed = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=settings.queue_size)
        self._ship = ship if ship is not None else (s3_shipper(settings.s3_uri) if settings.s3_uri else None)
        self._thread: threading.Thread | None = None
        self._file: Any = None
        self._path: Path | None = None
        self._sequence = 0

    def start(self) -> CaptureWriter:
        """Create the folder and start the writer thread; returns self."""
        self.settings.directory.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
        self._thread.start()
        return self

    def submit(self, record: dict[str, Any]) -> bool:
        """Queue a record; False (and counted in :attr:`dropped`) when the queue is full."""
        try:
            self._queue.put_nowait(record)
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, close (and ship) the open file, stop the thread."""
        if self._thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.warning("capture queue still full at shutdown; stopping without flushing")
        self._thread.join(timeout)
        self._thread = None

    def _open(self) -> None:
        self._sequence += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self._path = self.settings.directory / f"capture-{stamp}-{os.getpid()}-{self._sequence:04d}.jsonl"
        self._file = self._path.open("a", encoding="utf-8")

    def _rotate(self) -> None:
        if self._file is None:
            return
        self._file.close()
        closed, self._file, self._path = self._path, None, None
        if self._ship is not None and closed is not None:
            try:
                self._ship(closed)
            except Exception:  # shipping is retried by nothing: keep the file, say so
                log.exception("could not ship capture file %s; it stays on disk", closed)

    def _run(self) -> None:
        last_flush = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=1.0)
            except queue.Empty:
                item = None
            if item is _STOP:
                self._rotate()
                return
            try:
                if item is not None:
                    line = json.dumps(item, allow_nan=False, separators=(",", ":")) + "\n"
                    if self._file is None:
                        self._open()
                    self._file.write(line)
                    self.written += 1
                    if self._file.tell() >= self.settings.max_file_bytes:
                        self._rotate()
                if self._file is not None and (item is None or time.monotonic() - last_flush > 1.0):
                    self._file.flush()
                    last_flush = time.monotonic()
            except Exception:  # a bad record or a full disk must not kill the writer
                self.failed += 1
                log.exception("capture write failed; record dropped")
