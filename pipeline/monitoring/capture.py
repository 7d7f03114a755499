"""Read a window of captured predictions: the serving capture's JSON Lines files.

The server writes ``capture-*.jsonl`` files (format in docs/contracts.md, "Serving"), one
line per sampled request, into a local folder; on AWS they are shipped to an S3 prefix.
This module reads either into one frame of feature rows with their request id, row
index, prediction and probability. A line that is not valid JSON or does not follow the
contract is skipped and counted (with a few examples for the report), never fatal: one
bad write must not blind the monitor. Lines from another model or model version are
counted and left out, so the window is compared with the baseline of the model that
actually scored it.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from pipeline.monitoring.errors import CaptureError
from pipeline.schema import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES

CAPTURE_PREFIX: Final = "capture-"
CAPTURE_SUFFIXES: Final = (".jsonl", ".jsonl.gz")
MAX_EXAMPLES: Final = 5
"""How many malformed-line examples the report keeps (the count is always exact)."""


@dataclass
class CaptureWindow:
    """The captured rows of one monitoring window, and what was skipped on the way.

    ``features`` has every column of ``pipeline.schema.FEATURES`` (numeric ones as float,
    NaN where missing or not a number; categorical ones as str or None); the arrays
    beside it are aligned with its rows.
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

    @property
    def rows(self) -> int:
        return len(self.features)


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


def _local_files(path: Path) -> list[tuple[str, bytes]]:
    if not path.exists():
        raise CaptureError(f"capture path {path} does not exist")
    if path.is_file():
        return [(str(path), path.read_bytes())]
    files = sorted(p for p in path.iterdir() if p.is_file() and _is_capture_name(p.name))
    return [(str(p), p.read_bytes()) for p in files]


def _is_capture_name(name: str) -> bool:
    return name.startswith(CAPTURE_PREFIX) and name.endswith(CAPTURE_SUFFIXES)


def _s3_files(uri: str) -> list[tuple[str, bytes]]:
    """Every capture object under an ``s3://bucket/prefix``, in key order.

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
        return [(f"s3://{bucket}/{k}", client.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in sorted(keys)]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "?")
        raise CaptureError(f"cannot read capture at {uri}: {code}") from error


def _lines(name: str, payload: bytes) -> Iterator[str]:
    if name.endswith(".gz"):
        try:
            payload = gzip.decompress(payload)
        except (OSError, EOFError) as error:
            raise CaptureError(f"capture file {name} is not valid gzip: {error}") from error
    yield from payload.decode("utf-8", errors="replace").splitlines()


def _as_float(value: Any) -> float:
    if _is_number(value):
        return float(value)
    return math.nan


def read_capture(
    source: str | Path,
    *,
    model_name: str | None = None,
    model_version: str | None = None,
) -> CaptureWindow:
    """Read every capture file at ``source`` (a folder, one file, or ``s3://bucket/prefix``).

    Lines whose ``model_name``/``model_version`` differ from the given ones (when given)
    are counted in ``other_model_*`` and left out. Raises ``CaptureError`` when the source
    does not exist or cannot be listed; a source with no files gives an empty window.
    """
    text = str(source)
    files = _s3_files(text) if text.startswith("s3://") else _local_files(Path(text))
    return parse_capture(text, files, model_name=model_name, model_version=model_version)


def parse_capture(
    source: str,
    files: Iterable[tuple[str, bytes]],
    *,
    model_name: str | None = None,
    model_version: str | None = None,
) -> CaptureWindow:
    """Parse capture file contents (``(name, bytes)`` pairs) into a window; see ``read_capture``."""
    window = CaptureWindow(
        source=source,
        features=pd.DataFrame(),
        request_ids=np.array([], dtype=object),
        row_index=np.array([], dtype=np.int64),
        predictions=np.array([], dtype=np.float64),
        probabilities=np.array([], dtype=np.float64),
    )
    # Rows are grouped by their column list so each group becomes one frame: building a
    # frame per request would cost more than parsing on a window of many small requests.
    blocks: dict[tuple[str, ...], list[list[Any]]] = {}
    positions: dict[tuple[str, ...], list[int]] = {}
    request_ids: list[str] = []
    row_index: list[int] = []
    predictions: list[float] = []
    probabilities: list[float] = []
    for name, payload in files:
        window.files += 1
        for number, line in enumerate(_lines(name, payload), start=1):
            if not line.strip():
                continue
            window.lines += 1
            try:
                record = json.loads(line)
                problem = _check_line(record)
            except (json.JSONDecodeError, RecursionError):
                problem = "not valid JSON"
            if problem is not None:
                window.malformed_lines += 1
                if len(window.malformed_examples) < MAX_EXAMPLES:
                    window.malformed_examples.append(f"{name}:{number}: {problem}")
                continue
            n_rows = len(record["rows"])
            line_model = str(record.get("model_name", ""))
            line_version = str(record.get("model_version", ""))
            if (model_name is not None and line_model != model_name) or (
                model_version is not None and line_version != str(model_version)
            ):
                window.other_model_lines += 1
                window.other_model_rows += n_rows
                key = f"{line_model}/v{line_version}"
                window.versions_seen[key] = window.versions_seen.get(key, 0) + n_rows
                continue
            key = f"{line_model}/v{line_version}"
            window.versions_seen[key] = window.versions_seen.get(key, 0) + n_rows
            window.requests += 1
            columns = tuple(record["columns"])
            start = len(request_ids)
            blocks.setdefault(columns, []).extend(record["rows"])
            positions.setdefault(columns, []).extend(range(start, start + n_rows))
            request_ids.extend([record["request_id"]] * n_rows)
            row_index.extend(range(n_rows))
            predictions.extend(_as_float(v) for v in record["predictions"])
            probabilities.extend(_as_float(v) for v in record["probabilities"] or [math.nan] * n_rows)

    frames = [
        pd.DataFrame(rows, columns=list(columns), index=positions[columns]).loc[:, lambda f: ~f.columns.duplicated()]
        for columns, rows in blocks.items()
    ]
    raw = pd.concat(frames).sort_index() if frames else pd.DataFrame(index=pd.RangeIndex(0))
    raw = raw.reindex(columns=list(FEATURES)).reset_index(drop=True)
    for column in NUMERIC_FEATURES:
        present = raw[column].notna()
        numeric = pd.to_numeric(raw[column], errors="coerce").astype(np.float64)
        window.non_numeric[column] = int((present & numeric.isna()).sum())
        raw[column] = numeric
    for column in CATEGORICAL_FEATURES:
        raw[column] = raw[column].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
        raw[column] = raw[column].astype(object)
    window.features = raw
    window.request_ids = np.asarray(request_ids, dtype=object)
    window.row_index = np.asarray(row_index, dtype=np.int64)
    window.predictions = np.asarray(predictions, dtype=np.float64)
    window.probabilities = np.asarray(probabilities, dtype=np.float64)
    return window
