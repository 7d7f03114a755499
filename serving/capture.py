"""Prediction capture for the monitors: sampled requests as rotated JSON Lines files.

The format is fixed in docs/contracts.md ("Serving"): files ``capture-*.jsonl``, one line
per sampled request with ``request_id`` (server-issued), ``client_request_id`` (the
client's own ``X-Request-Id`` or null), ``timestamp``, ``model_name``, ``model_version``,
``columns``, ``rows``, ``predictions`` and ``probabilities``. The request path only puts a
record on a bounded queue (``put_nowait``); a background thread writes. When the queue is
full the record is dropped and counted, so a slow disk can cost monitoring data but never
a request. Closed files can be shipped to S3 (the AWS path) from the same thread.

Each record is one ``write(2)`` of a whole line on an unbuffered append-only file: a
buffered writer that fails half-way (a full disk) keeps the rest of the line in its buffer
and glues it to the next record. A short or failed write is cut back off the file, so a
line on disk is always a whole record; every lost record is counted in :attr:`lost`
(``mlserve_capture_dropped_total``) and a failure streak is logged once, not per record.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
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
    queue_bytes: int = 64 * 1024 * 1024
    """Serialised records waiting to be written, at most: one record of a 6 MiB request can
    be ~10 MB, so a count alone would let a slow disk hold gigabytes."""
    s3_uri: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample_rate <= 1.0:
            raise ValueError(f"capture sample rate must be within [0, 1], got {self.sample_rate}")
        if self.max_file_bytes < 1024:
            raise ValueError(f"capture max file size must be at least 1024 bytes, got {self.max_file_bytes}")
        if self.queue_size < 1:
            raise ValueError(f"capture queue size must be positive, got {self.queue_size}")
        if self.queue_bytes < 1024:
            raise ValueError(f"capture queue bytes must be at least 1024, got {self.queue_bytes}")
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
    *,
    client_request_id: str | None = None,
) -> dict[str, Any]:
    """One capture line as the contract spells it (timestamp: ISO 8601, UTC).
    ``request_id`` is the server-issued id the labels join on; ``client_request_id``
    is whatever the client sent, kept for its own correlation only."""
    return {
        "request_id": request_id,
        "client_request_id": client_request_id,
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

    def __init__(self, settings: CaptureSettings, ship: Callable[[Path], None] | None = None,
                 write: Callable[[int, bytes], int] = os.write) -> None:
        self.settings = settings
        self.dropped = 0
        """Records refused because the queue was full."""
        self.failed = 0
        """Records that could not be serialised or written."""
        self.written = 0
        self._write = write
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=settings.queue_size)
        self._queued_bytes = 0
        self._bytes_lock = threading.Lock()
        self._ship = ship if ship is not None else (s3_shipper(settings.s3_uri) if settings.s3_uri else None)
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._size = 0
        self._path: Path | None = None
        self._sequence = 0
        self._failing = 0

    @property
    def lost(self) -> int:
        """Every record that will never reach a capture file."""
        return self.dropped + self.failed

    def start(self) -> CaptureWriter:
        """Create the folder and start the writer thread; returns self."""
        self.settings.directory.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
        self._thread.start()
        return self

    def submit(self, record: dict[str, Any] | bytes) -> bool:
        """Queue a record (a dict, or one already serialised as a UTF-8 JSON line without
        its newline); False (and counted in :attr:`dropped`) when the queue is full, by
        count or by bytes."""
        size = len(record) if isinstance(record, bytes) else 0
        with self._bytes_lock:
            if self._queued_bytes + size > self.settings.queue_bytes:
                self.dropped += 1
                return False
            self._queued_bytes += size
        try:
            self._queue.put_nowait(record)
            return True
        except queue.Full:
            with self._bytes_lock:
                self._queued_bytes -= size
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
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self._size = os.fstat(self._fd).st_size

    def _rotate(self) -> None:
        if self._fd is None:
            return
        os.close(self._fd)
        closed, self._fd, self._path = self._path, None, None
        if self._ship is not None and closed is not None:
            try:
                self._ship(closed)
            except Exception:  # shipping is retried by nothing: keep the file, say so
                log.exception("could not ship capture file %s; it stays on disk", closed)

    def _append(self, data: bytes) -> None:
        """Write one whole line or nothing: a partial write is truncated away."""
        if self._fd is None:
            self._open()
        assert self._fd is not None
        start = self._size
        done = 0
        try:
            while done < len(data):
                count = self._write(self._fd, data[done:])
                if count <= 0:
                    raise OSError(f"write returned {count}")
                done += count
        except OSError:
            if done:
                try:
                    os.ftruncate(self._fd, start)
                except OSError:
                    # The partial line cannot be removed: start a new file so the next
                    # record never continues it (the reader skips the broken line).
                    self._rotate()
            raise
        self._size = start + done

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                self._rotate()
                return
            if isinstance(item, bytes):
                with self._bytes_lock:
                    self._queued_bytes -= len(item)
            try:
                line = item if isinstance(item, bytes) else json.dumps(
                    item, allow_nan=False, separators=(",", ":")).encode()
                self._append(line + b"\n")
            except (OSError, ValueError, TypeError) as exc:  # a full disk or a bad record
                self.failed += 1
                if not self._failing:
                    log.error("capture write failed (%s: %s): records are dropped and counted in "
                              "mlserve_capture_dropped_total until a write succeeds", type(exc).__name__, exc)
                self._failing += 1
                continue
            self.written += 1
            if self._failing:
                log.warning("capture writes succeed again after %d dropped record(s)", self._failing)
                self._failing = 0
            if self._size >= self.settings.max_file_bytes:
                self._rotate()
