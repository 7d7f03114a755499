"""Ground-truth labels that arrive after the predictions, joined onto the captured rows.

Labels come as CSV ``request_id,row,label`` (docs/contracts.md, "Serving"): ``request_id``
is the id the *server* issued for the request (returned in the response body and its
``X-Request-Id`` header, and written as ``request_id`` in the capture); ``row`` is the
0-based row inside that request. A client's own header is kept apart as
``client_request_id`` and never joined on: clients reuse ids, and one reused id once let
10 label lines label 600 rows.

The join is exact and bounded: the labels file is indexed first (its size is the labels',
not the capture's), then the capture stream offers every record to the index, which keeps
only rows that have a label. A request id found in more than one capture record is
ambiguous: its labels are excluded and counted, never fanned out. Labels whose request id
never appears (another model version, an older window, a typo upstream) are counted with
a few examples, because a steady stream of them means the join upstream is broken. Lines
with a bad row or a label the contract does not allow are counted as malformed.

A label is written as the data writes it and becomes the model's target here, as
``schema.target`` makes it for training: for a binary task one of the label column's two
values (``1``/``0``, ``yes``/``no``, ``>50K``/``<=50K``; 1 when it is the positive
class), for regression a finite number.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from pipeline.monitoring.capture import MAX_EXAMPLES, frame_of
from pipeline.monitoring.errors import LabelsError
from pipeline import schema

LABEL_COLUMNS: Final = ("request_id", "row", "label")


@dataclass
class LabelJoin:
    """The labelled captured rows (features, scores, labels aligned) and the join's counts."""

    source: str
    labels: np.ndarray
    request_ids: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))
    row_index: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    features: pd.DataFrame = field(default_factory=pd.DataFrame)
    probabilities: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    predictions: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    label_lines: int = 0
    matched: int = 0
    malformed: int = 0
    duplicates: int = 0
    unknown_request_ids: int = 0
    unknown_request_examples: list[str] = field(default_factory=list)
    unknown_rows: int = 0
    ambiguous_request_ids: int = 0
    """Labelled request ids that more than one capture record carries: excluded."""
    ambiguous_labels: int = 0
    ambiguous_examples: list[str] = field(default_factory=list)
    over_cap: int = 0
    """Labelled rows beyond ``WindowLimits.max_labelled_rows``, left out."""


def _binary_classes() -> tuple[dict[str, float], bool]:
    """The label column's two values as the labels file may spell them, with their target,
    and whether the contract names the negative class at all.

    A category label declares its values; a number-typed one its range (``min``/``max``,
    the two classes of a 0/1 label). The positive class is 1, the other 0. A label that
    declares neither leaves the negative class open: any other value of its type is 0."""
    label = schema.PROJECT.data.column(schema.LABEL)
    positive = str(schema.POSITIVE_CLASS)
    if label.values:
        declared = [str(v) for v in label.values]
    elif label.minimum is not None and label.maximum is not None:
        declared = [str(v) for v in (label.minimum, label.maximum)]
    else:
        declared = []
    spelled: dict[str, float] = {}
    for value in {*declared, positive}:
        target = 1.0 if value == positive else 0.0
        spelled[value] = target
        if label.type in ("integer", "number"):
            # "1", "1.0" and "1e0" are one number: accept every spelling of it.
            try:
                spelled[repr(float(value))] = target
            except ValueError:
                pass
    return spelled, len(set(declared) - {positive}) == 0


def label_targets(text: pd.Series) -> pd.Series:
    """Each label of the labels file as the model's target (float), NaN where it is not a
    label the active contract allows (counted as malformed)."""
    numbers = pd.to_numeric(text, errors="coerce")
    if not schema.IS_CLASSIFIER:
        return numbers.where(np.isfinite(numbers)).astype(np.float64)
    spelled, open_negative = _binary_classes()
    by_text = text.map(spelled)
    by_number = numbers.map(lambda v: spelled.get(repr(float(v))) if pd.notna(v) else None)
    targets = by_text.where(by_text.notna(), by_number).astype(np.float64)
    if open_negative:
        numeric = schema.PROJECT.data.column(schema.LABEL).type in ("integer", "number")
        other = (np.isfinite(numbers) if numeric else text.ne("")) & targets.isna()
        targets = targets.where(~other, 0.0)
    return targets


class LabelIndex:
    """The labels file, indexed by request id, collecting labelled rows from a capture stream.

    Give it to ``capture.read_capture(..., labels=index)``; the window's ``labelled`` is
    then this index's :class:`LabelJoin`.
    """

    def __init__(self, labels: pd.DataFrame, *, source: str = "", max_rows: int = 200_000) -> None:
        self.join = LabelJoin(source=source, labels=np.array([], dtype=np.float64), label_lines=len(labels))
        self.max_rows = max_rows
        rows = pd.to_numeric(labels["row"].str.strip(), errors="coerce")
        values = label_targets(labels["label"].str.strip())
        ids = labels["request_id"].str.strip()
        valid = rows.notna() & np.isfinite(rows) & (rows >= 0) & (rows == rows.round()) & values.notna() & (ids != "")
        self.join.malformed = int((~valid).sum())
        clean = pd.DataFrame({"request_id": ids[valid], "row": rows[valid].astype(np.int64), "label": values[valid]})
        keyed = clean.drop_duplicates(subset=["request_id", "row"], keep="last")
        self.join.duplicates = len(clean) - len(keyed)
        self.by_request: dict[str, dict[int, float]] = {}
        for request_id, row, label in zip(keyed["request_id"], keyed["row"], keyed["label"], strict=True):
            self.by_request.setdefault(request_id, {})[int(row)] = float(label)
        self.records: Counter[str] = Counter()
        self.collected: dict[str, list[tuple[Any, ...]]] = {}

    def observe(self, request_id: str, rows: list[list[Any]], picks: list[int | None],
                predictions: list[Any], probabilities: list[Any]) -> None:
        """Offer one capture record (of the serving version) to the index."""
        wanted = self.by_request.get(request_id)
        if wanted is None:
            return
        self.records[request_id] += 1
        if self.records[request_id] > 1:
            return  # ambiguous: dropped at the end, whichever record came first
        kept = self.collected.setdefault(request_id, [])
        for row, label in wanted.items():
            if row < len(rows):
                values = rows[row]
                kept.append((row, label, predictions[row], probabilities[row],
                             [None if p is None else values[p] for p in picks], request_id))

    def finish(self) -> LabelJoin:
        """The join: labelled rows of unambiguous requests, up to ``max_rows``, and counts."""
        from pipeline.monitoring.capture import _as_float

        join = self.join
        unknown = [r for r in self.by_request if r not in self.records]
        join.unknown_request_ids = sum(len(self.by_request[r]) for r in unknown)
        join.unknown_request_examples = unknown[:MAX_EXAMPLES]
        ambiguous = [r for r, n in self.records.items() if n > 1]
        join.ambiguous_request_ids = len(ambiguous)
        join.ambiguous_labels = sum(len(self.by_request[r]) for r in ambiguous)
        join.ambiguous_examples = [f"{r} ({self.records[r]} records)" for r in ambiguous[:MAX_EXAMPLES]]
        rows: list[tuple[Any, ...]] = []
        for request_id, collected in self.collected.items():
            if self.records[request_id] > 1:
                continue
            join.unknown_rows += len(self.by_request[request_id]) - len(collected)
            rows.extend(collected)
        join.over_cap = max(0, len(rows) - self.max_rows)
        rows = rows[: self.max_rows]
        join.matched = len(rows)
        join.labels = np.asarray([r[1] for r in rows], dtype=np.float64)
        join.request_ids = np.asarray([r[5] for r in rows], dtype=object)
        join.row_index = np.asarray([r[0] for r in rows], dtype=np.int64)
        join.predictions = np.asarray([_as_float(r[2]) for r in rows], dtype=np.float64)
        join.probabilities = np.asarray([_as_float(r[3]) for r in rows], dtype=np.float64)
        join.features = frame_of([r[4] for r in rows])
        return join


def read_labels(path: str | Path) -> pd.DataFrame:
    """The labels file as a frame of strings with columns ``request_id,row,label``.

    Raises ``LabelsError`` when the file is missing, unreadable as CSV, or lacks one of
    the three columns (it names which).
    """
    location = Path(path)
    if not location.is_file():
        raise LabelsError(f"labels file {location} does not exist")
    try:
        frame = pd.read_csv(location, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise LabelsError(f"labels file {location} is not readable CSV: {error}") from error
    missing = [c for c in LABEL_COLUMNS if c not in frame.columns]
    if missing:
        raise LabelsError(f"labels file {location} lacks column(s) {', '.join(missing)}; expected {','.join(LABEL_COLUMNS)}")
    return frame.loc[:, list(LABEL_COLUMNS)]


def join_labels(window: Any, labels: pd.DataFrame, *, source: str = "") -> LabelJoin:
    """Join ``labels`` onto the capture a window was read from (``window.source``, with its
    model filter and limits), streaming it once more with the labels indexed.

    The runner passes a ``LabelIndex`` to ``read_capture`` directly and reads once; this
    is the convenience for a window already in hand.
    """
    from pipeline.monitoring.capture import read_capture

    index = LabelIndex(labels, source=source, max_rows=window.limits.max_labelled_rows)
    return read_capture(
        window.source, model_name=window.model_name, model_version=window.model_version,
        limits=window.limits, labels=index,
    ).labelled
