"""Read a window of captured predictions: the serving capture's JSON Lines files, streamed.

The server writes ``capture-*.jsonl`` files (format in docs/contracts.md, "Serving"), one
line per sampled request, into a local folder; on AWS they are shipped to an S3 prefix.
This module streams either, line by line, into one bounded sample of feature rows with
their request id, row index, prediction and probability.

Bounded work, whatever arrives:

- Memory does not grow with the capture: the drift window is a uniform reservoir sample
  of at most ``WindowLimits.max_rows`` rows (Vitter's algorithm R over every row read),
  and files are decompressed as streams, never whole. Reading everything into one frame
  once took 16 times the capture's size.
- One client cannot own the window: a request contributes at most
  ``max_rows_per_request`` rows (drawn at random from its batch); the rest are counted.
- A bad line is skipped and counted (with a few examples for the report), never fatal:
  invalid JSON, an integer beyond Python's 4,300-digit limit, a line over
  ``MAX_LINE_BYTES``, a line that breaks the contract.
- A truncated or corrupt ``.gz`` file is named in the window and the lines read before
  the damage are kept; the other files are read as usual.

Lines from another model or model version are counted and left out, so the window is
compared with the baseline of the model that actually scored it. When labels are given
(``pipeline.monitoring.labels``), every captured row that has one is kept beside the
sample, so that late labels are joined on the server-issued ``request_id`` exactly.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import random
import zlib
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
import pandas as pd

from pipeline.monitoring.errors import CaptureError
from pipeline import schema

CAPTURE_PREFIX: Final = "capture-"
CAPTURE_SUFFIXES: Final = (".jsonl", ".jsonl.gz")
MAX_EXAMPLES: Final = 5
"""How many malformed-line examples the report keeps (the count is always exact)."""
MAX_LINE_BYTES: Final = 32 * 1024 * 1024
"""A capture line longer than this is skipped unread (the server caps a request at 6 MiB)."""


@dataclass(frozen=True)
class WindowLimits:
    """Caps that keep a monitor run's memory and one client's weight bounded."""

    max_rows: int = 100_000
    """Rows kept for the drift tests (a uniform sample of all rows read beyond this)."""
    max_rows_per_request: int = 100
    """Rows one request may contribute: a client's 10,000-row batches weigh as 100 rows."""
    max_labelled_rows: int = 200_000
    """Labelled rows kept for the performance check."""
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("max_rows", "max_rows_per_request", "max_labelled_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"WindowLimits.{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class CaptureWindow:
    """The captured rows of one monitoring window, and what was skipped on the way.

    ``features`` has every column of ``pipeline.schema.FEATURES`` (numeric ones as float,
    NaN where missing or not a number; categorical ones as str or None); the arrays
    beside it are aligned with its rows. ``rows_read`` counts every row of the serving
    version; ``features`` holds the bounded sample of them.
    """

    source: str
    features: pd.DataFrame
    request_ids: np.ndarray
    row_index: np.ndarray
    predictions: np.ndarray
    probabilities: np.ndarray
    files: int = 0
    lines: int = 0
    requests: int = 0
    malformed_lines: int = 0
    malformed_examples: list[str] = field(default_factory=list)
    other_model_lines: int = 0
    other_model_rows: int = 0
    versions_seen: dict[str, int] = field(default_factory=dict)
    non_numeric: dict[str, int] = field(default_factory=dict)
    rows_read: int = 0
    rows_over_request_cap: int = 0
    damaged_files: list[str] = field(default_factory=list)
    """Files that ended early (truncated or corrupt compression), with the reason."""
    limits: WindowLimits = field(default_factory=WindowLimits)
    model_name: str | None = None
    model_version: str | None = None
    """The model filter the window was read with (None: any)."""
    labelled: Any = None
    """The rows that have a label, when labels were given (``labels.LabelledRows``)."""

    @property
    def rows(self) -> int:
        return len(self.features)

    @property
    def sampled(self) -> bool:
        """Whether the window holds a sample rather than every row read."""
        return self.rows < self.rows_read - self.rows_over_request_cap


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_line(record: object) -> str | None:
    """Why a parsed capture line breaks the contract, or None when it is usable."""
    if not isinstance(record, dict):
        return "not a JSON object"
    if not isinstance(record.get("request_id"), str) or not record["request_id"]:
        return "missing or non-string request_id"
    columns = record.get("columns")
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
        return "columns is not a non-empty list of names"
    rows = record.get("rows")
    if not isinstance(rows, list) or not rows:
        return "rows is not a non-empty list"
    if not all(isinstance(r, list) and len(r) == len(columns) for r in rows):
        return f"a row does not have the {len(columns)} values its columns name"
    for name in ("predictions", "probabilities"):
        values = record.get(name)
        if name == "probabilities" and values is None:
            continue  # the server writes null for a model without predict_proba
        if not isinstance(values, list) or len(values) != len(rows):
            return f"{name} is not a list of {len(rows)} values"
        if not all(_is_number(v) for v in values):
            return f"{name} holds a value that is not a number"
    if not all(0.0 <= p <= 1.0 for p in record["probabilities"] or ()):
        return "a probability lies outside [0, 1]"
    return None


def _is_capture_name(name: str) -> bool:
    return name.startswith(CAPTURE_PREFIX) and name.endswith(CAPTURE_SUFFIXES)


def prune_capture(source: str | Path, retention_days: float, *, now: float | None = None) -> list[str]:
    """Delete the capture files in a local folder last written more than ``retention_days``
    ago; returns their names. The server only appends, so capture grows until pruned.

    Raises ``CaptureError`` for an S3 prefix (there, retention is the bucket's lifecycle
    rule, not a monitor's job) or a negative retention."""
    import time

    if retention_days < 0:
        raise CaptureError(f"capture retention must be >= 0 days, got {retention_days}")
    if str(source).startswith("s3://"):
        raise CaptureError("capture retention on S3 is the bucket's lifecycle rule; --capture-retention-days "
                           "prunes local capture folders only")
    folder = Path(source)
    if not folder.is_dir():
        return []
    cutoff = (time.time() if now is None else now) - retention_days * 86_400
    pruned = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and _is_capture_name(path.name) and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            pruned.append(path.name)
    return pruned


def _local_files(path: Path) -> list[tuple[str, Any]]:
    if not path.exists():
        raise CaptureError(f"capture path {path} does not exist")
    if path.is_file():
        return [(str(path), path)]
    return [(str(p), p) for p in sorted(p for p in path.iterdir() if p.is_file() and _is_capture_name(p.name))]


def _s3_files(uri: str) -> list[tuple[str, Any]]:
    """Every capture object under an ``s3://bucket/prefix``, in key order, opened lazily.

    The client honours ``AWS_ENDPOINT_URL`` (moto's server in tests). A missing bucket or
    a denied listing is bad input, not a crash.
    """
    import boto3
    from botocore.exceptions import ClientError

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise CaptureError(f"capture URI {uri!r} names no bucket")
    client = boto3.client("s3")
    keys: list[str] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(o["Key"] for o in page.get("Contents", []) if _is_capture_name(o["Key"].rsplit("/", 1)[-1]))
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "?")
        raise CaptureError(f"cannot read capture at {uri}: {code}") from error

    def opener(key: str) -> Any:
        def open_object() -> IO[bytes]:
            try:
                return client.get_object(Bucket=bucket, Key=key)["Body"]
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "?")
                raise CaptureError(f"cannot read s3://{bucket}/{key}: {code}") from error

        return open_object

    return [(f"s3://{bucket}/{k}", opener(k)) for k in sorted(keys)]


@contextmanager
def _open(name: str, source: Any) -> Iterator[IO[bytes]]:
    """A binary stream of the file, decompressed on the fly for ``.gz``; closes everything."""
    with ExitStack() as stack:
        if isinstance(source, Path):
            raw: Any = stack.enter_context(source.open("rb"))
        elif isinstance(source, (bytes, bytearray)):
            raw = io.BytesIO(source)
        else:
            raw = stack.enter_context(closing(source()))
        if name.endswith(".gz"):
            raw = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
        yield raw


def _bounded_lines(stream: IO[bytes]) -> Iterator[bytes | None]:
    """The stream's lines; None for a line longer than ``MAX_LINE_BYTES`` (skipped unread)."""
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := stream.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass
            yield None
            continue
        yield line


def _as_float(value: Any) -> float:
    if _is_number(value):
        try:
            return float(value)
        except OverflowError:  # an integer too large for a float: not a usable number
            return math.nan
    return math.nan


class _Reservoir:
    """Vitter's algorithm R: a uniform sample of at most ``size`` items from a stream."""

    def __init__(self, size: int, rng: random.Random) -> None:
        self.size, self.rng, self.seen = size, rng, 0
        self.items: list[Any] = []

    def slot(self) -> int | None:
        """Count one more item; where to store it, or None to drop it. Asking before
        building the item keeps the cost of the many dropped rows to one random draw."""
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(None)
            return len(self.items) - 1
        slot = self.rng.randrange(self.seen)
        return slot if slot < self.size else None


def read_capture(
    source: str | Path,
    *,
    model_name: str | None = None,
    model_version: str | None = None,
    limits: WindowLimits | None = None,
    labels: Any = None,
) -> CaptureWindow:
    """Stream every capture file at ``source`` (a folder, one file, or ``s3://bucket/prefix``).

    Lines whose ``model_name``/``model_version`` differ from the given ones (when given)
    are counted in ``other_model_*`` and left out. ``labels`` (``labels.LabelIndex``)
    makes the window keep the labelled rows beside the sample. Raises ``CaptureError``
    when the source does not exist or cannot be listed; a source with no files gives an
    empty window.
    """
    text = str(source)
    files = _s3_files(text) if text.startswith("s3://") else _local_files(Path(text))
    return parse_capture(text, files, model_name=model_name, model_version=model_version, limits=limits, labels=labels)


def _records(window: CaptureWindow, files: Iterable[tuple[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every contract-abiding record of the files; counts and notes everything else."""
    for name, source in files:
        window.files += 1
        number = 0
        try:
            with _open(name, source) as stream:
                for number, raw in enumerate(_bounded_lines(stream), start=1):
                    if raw is not None and not raw.strip():
                        continue
                    window.lines += 1
                    problem = f"line longer than {MAX_LINE_BYTES} bytes" if raw is None else None
                    record: Any = None
                    if raw is not None:
                        try:
                            record = json.loads(raw)
                            problem = _check_line(record)
                        except (ValueError, RecursionError) as error:
                            # ValueError covers invalid JSON, bad UTF-8 and integers past
                            # Python's digit limit.
                            problem = "not valid JSON" if isinstance(error, json.JSONDecodeError) else f"unreadable value: {str(error)[:80]}"
                    if problem is not None:
                        window.malformed_lines += 1
                        if len(window.malformed_examples) < MAX_EXAMPLES:
                            window.malformed_examples.append(f"{name}:{number}: {problem}")
                        continue
                    yield record
        except (EOFError, OSError, zlib.error) as error:
            # A truncated or corrupt file: what was read before the damage stands.
            window.damaged_files.append(f"{name}: {type(error).__name__}: {error} (after line {number})")


def parse_capture(
    source: str,
    files: Iterable[tuple[str, Any]],
    *,
    model_name: str | None = None,
    model_version: str | None = None,
    limits: WindowLimits | None = None,
    labels: Any = None,
) -> CaptureWindow:
    """Parse capture files (``(name, path | bytes | opener)`` pairs) into a window; see
    ``read_capture``."""
    limits = limits or WindowLimits()
    window = CaptureWindow(
        source=source,
        features=pd.DataFrame(),
        request_ids=np.array([], dtype=object),
        row_index=np.array([], dtype=np.int64),
        predictions=np.array([], dtype=np.float64),
        probabilities=np.array([], dtype=np.float64),
        limits=limits,
        model_name=model_name,
        model_version=None if model_version is None else str(model_version),
    )
    rng = random.Random(limits.seed)
    reservoir = _Reservoir(limits.max_rows, rng)
    for record in _records(window, files):
        rows = record["rows"]
        n_rows = len(rows)
        line_model = str(record.get("model_name", ""))
        line_version = str(record.get("model_version", ""))
        key = f"{line_model}/v{line_version}"
        window.versions_seen[key] = window.versions_seen.get(key, 0) + n_rows
        if (model_name is not None and line_model != model_name) or (
            model_version is not None and line_version != str(model_version)
        ):
            window.other_model_lines += 1
            window.other_model_rows += n_rows
            continue
        window.requests += 1
        window.rows_read += n_rows
        positions = {column: i for i, column in enumerate(record["columns"])}
        picks = [positions.get(column) for column in schema.FEATURES]
        probabilities = record["probabilities"] or [None] * n_rows
        request_id = record["request_id"]
        if labels is not None:
            labels.observe(request_id, rows, picks, record["predictions"], probabilities)
        chosen: Iterable[int] = range(n_rows)
        if n_rows > limits.max_rows_per_request:
            window.rows_over_request_cap += n_rows - limits.max_rows_per_request
            chosen = sorted(rng.sample(range(n_rows), limits.max_rows_per_request))
        for index in chosen:
            slot = reservoir.slot()
            if slot is None:
                continue
            row = rows[index]
            reservoir.items[slot] = (
                request_id, index, _as_float(record["predictions"][index]), _as_float(probabilities[index]),
                [None if p is None else row[p] for p in picks],
            )
    kept = reservoir.items
    window.features = frame_of([item[4] for item in kept], window.non_numeric)
    window.request_ids = np.asarray([item[0] for item in kept], dtype=object)
    window.row_index = np.asarray([item[1] for item in kept], dtype=np.int64)
    window.predictions = np.asarray([item[2] for item in kept], dtype=np.float64)
    window.probabilities = np.asarray([item[3] for item in kept], dtype=np.float64)
    if labels is not None:
        window.labelled = labels.finish()
    return window


def frame_of(rows: list[list[Any]], non_numeric: dict[str, int] | None = None) -> pd.DataFrame:
    """Feature rows (in ``schema.FEATURES`` order) as a typed frame: numeric columns float (NaN
    where missing or not a number, counted into ``non_numeric``), categoricals str or None."""
    raw = pd.DataFrame(rows, columns=list(schema.FEATURES), dtype=object) if rows else pd.DataFrame(columns=list(schema.FEATURES), dtype=object)
    for column in schema.NUMERIC_FEATURES:
        # Numbers as floats (one too large for a float is NaN); strings as pandas parses
        # them ("41" is 41, "forty" is not a number and is counted).
        values = pd.Series([_as_float(v) if _is_number(v) else v for v in raw[column]], index=raw.index, dtype=object)
        numeric = pd.to_numeric(values, errors="coerce").astype(np.float64)
        if non_numeric is not None:
            non_numeric[column] = int((values.notna() & numeric.isna()).sum())
        raw[column] = numeric
    for column in schema.CATEGORICAL_FEATURES:
        raw[column] = pd.Series(
            [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in raw[column]],
            index=raw.index, dtype=object,
        )
    return raw.reset_index(drop=True)
