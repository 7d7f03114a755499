"""The split is deterministic and the holdout frozen: rows never move between parts."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.digest import frame_digest
from pipeline.steps.split import SplitParams, split


def test_fractions_and_disjoint_parts(adult_sample: pd.DataFrame) -> None:
    parts = split(adult_sample, SplitParams(holdout_fraction=0.2, validation_fraction=0.1))
    n = len(adult_sample)
    assert len(parts.train) + len(parts.validation) + len(parts.holdout) == n
    assert abs(len(parts.holdout) / n - 0.2) < 0.02
    assert abs(len(parts.validation) / n - 0.1) < 0.02
    assert parts.holdout_digest == frame_digest(parts.holdout)


def test_same_input_same_split(adult_sample: pd.DataFrame) -> None:
    a = split(adult_sample, SplitParams())
    b = split(adult_sample.copy(), SplitParams())
    assert a.holdout_digest == b.holdout_digest
    assert frame_digest(a.train) == frame_digest(b.train)


def test_holdout_is_frozen_under_relabelling_and_new_rows(adult_frame: pd.DataFrame, adult_sample: pd.DataFrame) -> None:
    base = split(adult_sample, SplitParams())
    holdout_keys = set(map(tuple, base.holdout.drop(columns=["label"]).astype(str).to_numpy()))
    relabelled = adult_sample.copy()
    train_rows = ~relabelled.drop(columns=["label"]).astype(str).apply(tuple, axis=1).isin(holdout_keys)
    relabelled.loc[train_rows, "label"] = 1 - relabelled.loc[train_rows, "label"]
    assert split(relabelled, SplitParams()).holdout_digest == base.holdout_digest
    grown = pd.concat([adult_sample, adult_frame.head(3000)], ignore_index=True)
    grown_holdout = split(grown, SplitParams()).holdout
    grown_keys = set(map(tuple, grown_holdout.drop(columns=["label"]).astype(str).to_numpy()))
    assert holdout_keys <= grown_keys


@pytest.mark.parametrize("holdout,validation", [(0.0, 0.1), (0.6, 0.5), (1.2, 0.0)])
def test_bad_fractions_are_refused(holdout: float, validation: float) -> None:
    with pytest.raises(ValueError):
        SplitParams(holdout_fraction=holdout, validation_fraction=validation)
