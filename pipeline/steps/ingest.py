"""Ingest step: read a dataset file and name its version.

The data version is the content digest of the frame (``pipeline.digest.frame_digest``),
so the same rows in CSV or Parquet are one version; the source records where they came
from. Both go onto every run through MLflow's dataset API and onto the model version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.schema import DEFAULT_DATASET, DEFAULT_DATASET_SOURCE

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Ingested:
    """The frame as read, its content digest and a human-readable source."""

    frame: pd.DataFrame
    digest: str
    source: str


def describe_source(path: Path) -> str:
    """The default dataset's citation, or the file's absolute path for any other file."""
    resolved = path.resolve()
    if resolved == DEFAULT_DATASET.resolve():
        return f"{resolved} ({DEFAULT_DATASET_SOURCE})"
    return str(resolved)


def ingest(path: Path) -> Ingested:
    """Read ``path`` (CSV or Parquet) and digest it; raises ``DataLoadError`` if unreadable."""
    from pipeline.data import load_dataset
    from pipeline.digest import frame_digest

    frame = load_dataset(path)
    return Ingested(frame=frame, digest=frame_digest(frame), source=describe_source(path))
