"""Ground-truth labels that arrive after the predictions, joined onto the capture window.

Labels come as CSV ``request_id,row,label`` (docs/contracts.md, "Serving"): ``row`` is the
0-based row inside its request. A label whose request id is not in the window (another
model version, an older window, a typo upstream) cannot be used; it is counted and a few
ids are kept for the report, because a steady stream of them means the join upstream is
broken. Lines with a bad row or a label other than 0/1 are counted as malformed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from pipeline.monitoring.capture import MAX_EXAMPLES, CaptureWindow
from pipeline.monitoring.errors import LabelsError

LABEL_COLUMNS: Final = ("request_id", "row", "label")


@dataclass
class LabelJoin:
    """Labels aligned with the window's rows (NaN where none arrived) and join counts."""

    source: str
    labels: np.ndarray
    label_lines: int = 0
    matched: int = 0
    malformed: int = 0
    duplicates: int = 0
    unknown_request_ids: int = 0
    unknown_request_examples: list[str] = field(default_factory=list)
    unknown_rows: int = 0


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


def join_labels(window: CaptureWindow, labels: pd.DataFrame, *, source: str = "") -> LabelJoin:
    """Attach each label to its captured row by ``(request_id, row)``.

    Malformed label lines (row not a non-negative integer, label not 0 or 1) are counted
    and dropped; for a row labelled twice the last label wins and the repeat is counted.
    """
    joined = LabelJoin(source=source, labels=np.full(window.rows, np.nan), label_lines=len(labels))
    rows = pd.to_numeric(labels["row"].str.strip(), errors="coerce")
    values = pd.to_numeric(labels["label"].str.strip(), errors="coerce")
    ids = labels["request_id"].str.strip()
    valid = rows.notna() & np.isfinite(rows) & (rows >= 0) & (rows == rows.round()) & values.isin([0, 1]) & (ids != "")
    joined.malformed = int((~valid).sum())
    clean = pd.DataFrame({"request_id": ids[valid], "row": rows[valid].astype(np.int64), "label": values[valid].astype(np.int64)})
    keyed = clean.drop_duplicates(subset=["request_id", "row"], keep="last")
    joined.duplicates = len(clean) - len(keyed)

    known_ids = set(window.request_ids.tolist())
    known = keyed["request_id"].isin(known_ids)
    unknown = keyed.loc[~known, "request_id"]
    joined.unknown_request_ids = int(len(unknown))
    joined.unknown_request_examples = list(dict.fromkeys(unknown.tolist()))[:MAX_EXAMPLES]

    positions = pd.DataFrame(
        {"request_id": window.request_ids, "row": window.row_index, "position": np.arange(window.rows)}
    )
    merged = keyed.loc[known].merge(positions, on=["request_id", "row"], how="left")
    hit = merged["position"].notna()
    joined.unknown_rows = int((~hit).sum())
    joined.labels[merged.loc[hit, "position"].astype(np.int64).to_numpy()] = merged.loc[hit, "label"].to_numpy()
    joined.matched = int(hit.sum())
    return joined
