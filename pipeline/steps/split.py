"""Split step: deterministic train / validation / holdout, with a frozen holdout.

Each row goes to a split by a hash of its feature values (not a random draw, not its
position), so a row lands in the same split whatever file it arrives in and whatever
order: appending new rows or relabelling old ones never moves a row between train and
holdout, and identical rows can never leak across the boundary. The holdout is named by
its content digest; champion and challenger are both scored on exactly those rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline import schema

if TYPE_CHECKING:
    import pandas as pd

_BUCKETS = 10_000


@dataclass(frozen=True)
class SplitParams:
    """Fractions of rows held out for the gate and for early stopping; the rest trains."""

    holdout_fraction: float = 0.2
    validation_fraction: float = 0.1
    salt: str = "adult-income-v1"

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout_fraction < 1.0 or not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError("holdout_fraction must be in (0, 1) and validation_fraction in [0, 1)")
        if self.holdout_fraction + self.validation_fraction >= 1.0:
            raise ValueError("holdout_fraction + validation_fraction must leave rows to train on")


@dataclass(frozen=True)
class Split:
    """The three parts and the holdout's content digest."""

    train: pd.DataFrame
    validation: pd.DataFrame
    holdout: pd.DataFrame
    holdout_digest: str


def row_buckets(frame: pd.DataFrame, salt: str) -> pd.Series:
    """A bucket in [0, 10000) per row from a salted hash of its feature values (label excluded)."""
    import pandas as pd

    hashes = pd.util.hash_pandas_object(frame.loc[:, list(schema.FEATURES)], index=False, hash_key=_hash_key(salt))
    return (hashes % _BUCKETS).astype("int64")


def _hash_key(salt: str) -> str:
    # pandas wants exactly 16 characters of hash key.
    return (salt * 16)[:16] if salt else "0123456789123456"


def split(frame: pd.DataFrame, params: SplitParams) -> Split:
    """Assign rows to holdout, validation and train by their feature hash; raises if a part is empty."""
    from pipeline.digest import frame_digest

    buckets = row_buckets(frame, params.salt)
    holdout_cut = int(params.holdout_fraction * _BUCKETS)
    validation_cut = holdout_cut + int(params.validation_fraction * _BUCKETS)
    holdout = frame[buckets < holdout_cut].reset_index(drop=True)
    validation = frame[(buckets >= holdout_cut) & (buckets < validation_cut)].reset_index(drop=True)
    train = frame[buckets >= validation_cut].reset_index(drop=True)
    for name, part in (("train", train), ("holdout", holdout)):
        if len(part) == 0:
            raise ValueError(f"the {name} split is empty; the dataset has {len(frame)} rows")
    return Split(train=train, validation=validation, holdout=holdout, holdout_digest=frame_digest(holdout))
