"""Reading a dataset file (CSV or Parquet) into a frame, with a clear error when it cannot be read.

The ingest step and the ``step``/``synth`` commands share this so that every entry point
accepts the same formats: ``.csv``, ``.csv.gz`` and ``.parquet``/``.pq``. Values are read
as they are, never coerced: deciding whether a column has the right type is validation's
job, and it needs to see the file's own types to say what is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst", ".csv.xz")
PARQUET_SUFFIXES = (".parquet", ".pq")


class DataLoadError(ValueError):
    """The file cannot be read as a dataset (missing, empty, unknown format, corrupt)."""


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise DataLoadError(
        f"{path}: unknown data format; expected one of {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}"
    )


def load_dataset(path: Path) -> pd.DataFrame:
    """Read ``path`` (CSV or Parquet, chosen by suffix) into a frame.

    Raises ``DataLoadError`` naming the file when it does not exist, is empty, has no
    header, or is not valid CSV/Parquet, so the runner can report invalid data rather
    than crash.
    """
    import pandas as pd

    kind = _kind(path)
    if not path.is_file():
        raise DataLoadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataLoadError(f"{path}: the file is empty (0 bytes)")
    try:
        if kind == "csv":
            return pd.read_csv(path, low_memory=False)
        return pd.read_parquet(path)
    except pd.errors.EmptyDataError as exc:
        raise DataLoadError(f"{path}: the file is empty (no header, no rows)") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise DataLoadError(f"{path}: cannot be read as {kind}: {exc}") from exc


def write_dataset(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` as CSV or Parquet, chosen by the suffix of ``path``; returns ``path``."""
    kind = _kind(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path
