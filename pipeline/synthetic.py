"""Synthetic Adult-like data of any size, with controllable drift, for benchmarks and drift drills.

Rows are drawn from the real dataset (so the joint structure of every column, label
included, is the real one) and then perturbed: numeric values are jittered so rows are
not copies, and ``drift`` in [0, 1] moves the data away from the reference in three
ways at once, each growing linearly with it: numeric distributions shift (older, longer
hours, larger weights and capital amounts), category frequencies tilt toward the rarer
values of several attributes, and the label relation weakens (a growing share of labels
is flipped). ``drift=0`` gives data the validator accepts and a model scores as on the
real data.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from pipeline.schema import COLUMNS, DEFAULT_DATASET, LABEL, NUMERIC_FEATURES, NUMERIC_RANGES

if TYPE_CHECKING:
    import pandas as pd

TILTED_COLUMNS = ("workclass", "occupation", "marital_status", "race", "education")
"""Categoricals whose frequencies tilt toward their rarer values as drift grows."""
TILT_STRENGTH = 0.8
MAX_LABEL_FLIP = 0.3
"""Share of labels flipped at ``drift=1``."""


@lru_cache(maxsize=1)
def _reference() -> pd.DataFrame:
    from pipeline.data import load_dataset

    return load_dataset(DEFAULT_DATASET).loc[:, list(COLUMNS)]


def generate_synthetic(n_rows: int, *, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
    """``n_rows`` rows with exactly the schema's columns and dtypes, reproducible from ``seed``.

    Raises ``ValueError`` for a negative row count or a drift outside [0, 1].
    """
    import numpy as np
    import pandas as pd

    if not isinstance(n_rows, (int, np.integer)) or n_rows < 0:
        raise ValueError(f"n_rows must be a non-negative integer, got {n_rows!r}")
    if not 0.0 <= float(drift) <= 1.0:
        raise ValueError(f"drift must be in [0, 1], got {drift!r}")
    real = _reference()
    rng = np.random.default_rng(seed)

    weights = np.ones(len(real))
    if drift > 0:
        for column in TILTED_COLUMNS:
            values = real[column]
            # Missing values keep their weight: tilting them up would turn drift into
            # a data-quality failure, which is a different scenario.
            freq = values.map(values.value_counts(normalize=True)).fillna(1.0).to_numpy(dtype=float)
            weights *= freq ** (-TILT_STRENGTH * drift)
    rows = rng.choice(len(real), size=int(n_rows), p=weights / weights.sum())
    frame = real.iloc[rows].reset_index(drop=True).copy()
    n = len(frame)

    shifted = {
        "age": frame["age"] + rng.integers(-1, 2, n) + np.round(8 * drift),
        "fnlwgt": frame["fnlwgt"] * rng.lognormal(0.0, 0.05, n) * (1 + 0.3 * drift),
        "education_num": frame["education_num"],
        "capital_gain": np.where(
            frame["capital_gain"] > 0, frame["capital_gain"] * rng.lognormal(0.0, 0.1, n) * (1 + drift), 0
        ),
        "capital_loss": np.where(
            frame["capital_loss"] > 0, frame["capital_loss"] * rng.lognormal(0.0, 0.1, n) * (1 + 0.5 * drift), 0
        ),
        "hours_per_week": frame["hours_per_week"] + np.round(rng.normal(0.0, 1.5, n) + 6 * drift),
    }
    for column in NUMERIC_FEATURES:
        low, high = NUMERIC_RANGES[column]
        frame[column] = np.clip(np.round(np.asarray(shifted[column], dtype=float)), low, high).astype("int64")

    flip = rng.random(n) < MAX_LABEL_FLIP * drift
    frame[LABEL] = np.where(flip, 1 - frame[LABEL], frame[LABEL]).astype("int64")
    return pd.DataFrame(frame, columns=list(COLUMNS))
