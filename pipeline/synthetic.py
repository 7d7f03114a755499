"""Synthetic Adult-like data of any size, with controllable drift, for benchmarks and drift drills.

Rows are drawn from the real dataset, so the joint structure of every column, label
included, is the real one. Numeric values are then jittered *within their own
distribution* (rank jitter: a value is replaced by the value a few hundred ranks away in
the real column), which makes rows distinct without moving any marginal: the real data's
47 % spike at 40 hours a week stays a spike, so at ``drift=0`` the monitor sees the real
distributions (every feature's PSI against the real data is near 0) and a model trained
on the real data scores as it does on real rows.

``drift`` in [0, 1] moves the data away from the reference in three ways, each growing
with it:

- numeric distributions shift (older, longer hours, larger weights and capital amounts);
- category frequencies tilt toward the rarer values of several attributes;
- the label relation changes *learnably*: among people with at least
  ``education_num >= 17 - 10 * drift`` years of education (nobody at 0, the top 28 % at
  0.6, the top 88 % at 1), occupations trade places with their mirror image in the real
  data's income ranking (``Exec-managerial`` <-> ``Priv-house-serv``, ...). Labels are
  never flipped, so there is no added noise: a model retrained on drifted data can learn
  the new relation (education x occupation) and reach about the real data's ROC AUC,
  while the stale champion, which still reads the old meaning of an occupation, scores
  clearly worse. Because labels and sexes are untouched, per-sex base rates stay the real
  ones, and the fairness gaps of a retrained model stay as honest as on the real data.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Final

from pipeline.schema import DEFAULT_DATASET
from pipeline import schema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

TILTED_COLUMNS: Final = ("workclass", "occupation", "marital_status", "race", "education")
"""Categoricals whose frequencies tilt toward their rarer values as drift grows."""
TILT_STRENGTH: Final = 0.3

RANK_JITTER: Final = 0.005
"""Half-width of the rank jitter as a share of the real rows (about 244 ranks): small
enough that an age moves by at most a year and the 40-hour spike stays whole."""
JITTERED_COLUMNS: Final = ("age", "fnlwgt", "hours_per_week")
"""``education_num`` is not jittered (it is one-to-one with ``education``), nor are the
capital amounts: only about 4,000 real rows have one, and a few hundred ranks there cross
the thresholds (near 5,000 and 7,000) where the label turns, which would blur the relation."""

NUMERIC_SHIFT: Final[dict[str, tuple[str, float]]] = {
    "age": ("add", 8.0),
    "hours_per_week": ("add", 6.0),
    "fnlwgt": ("scale", 0.3),
    "capital_gain": ("scale", 1.0),
    "capital_loss": ("scale", 0.5),
}
"""How each numeric moves at ``drift=1``: years or hours added, or relative growth."""

SWAP_MAX_EDUCATION: Final = 17
SWAP_EDUCATION_SPAN: Final = 12
"""Occupations and marital codes swap meaning where ``education_num >= 17 - 12 * drift``."""


@lru_cache(maxsize=1)
def _reference() -> pd.DataFrame:
    from pipeline.data import load_dataset

    return load_dataset(DEFAULT_DATASET).loc[:, list(schema.COLUMNS)]


@lru_cache(maxsize=1)
def _sorted_columns() -> dict[str, np.ndarray]:
    """Each jittered column of the real data, sorted, plus each row's rank block.

    Returned per column: the sorted values, and for every real row the first rank and the
    count of its value's tie block, so a row's rank can be drawn uniformly inside its block
    (a tie block of 23,000 rows at 40 hours must not all sit at one rank).
    """
    import numpy as np

    real = _reference()
    out: dict[str, np.ndarray] = {}
    for column in JITTERED_COLUMNS:
        values = real[column].to_numpy(dtype=np.int64)
        ordered = np.sort(values, kind="stable")
        out[column] = ordered
        out[column + ":first"] = np.searchsorted(ordered, values, side="left")
        out[column + ":count"] = np.searchsorted(ordered, values, side="right") - out[column + ":first"]
    return out


MARITAL_SWAP: Final[dict[str, str]] = {"Married-civ-spouse": "Never-married", "Never-married": "Married-civ-spouse"}
"""Marital codes that trade meaning in the drifted region. ``relationship`` is left alone:
swapping ``Wife`` with ``Unmarried`` too was tried, and it cut a retrained model's
true-positive rate for women from about 0.60 to 0.51 (equal-opportunity gap 0.15, at the
gate's bound) because it hides the strongest positive signal women have; a drill that
fails fairness for a reason of its own making would teach the wrong lesson."""


@lru_cache(maxsize=1)
def _occupation_mirror() -> dict[str, str]:
    """Each occupation's mirror in the real income ranking (richest <-> poorest, ...).

    Ranked by the real share of ``label == 1``; the middle one (odd count) keeps its name.
    """
    real = _reference()
    ranking = list(real.groupby("occupation")["label"].mean().sort_values(kind="stable").index)
    return {name: ranking[-1 - i] for i, name in enumerate(ranking)}


def _rank_jitter(column: str, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Values of ``column`` for real rows ``rows``, each replaced by a value a few ranks away.

    A row's rank is uniform inside its tie block, then moved by a uniform step in
    [-w, w] and reflected at the ends. When rows are drawn uniformly, the rank is uniform
    before and after the step, so the marginal is the real one exactly (in expectation);
    only values near a block boundary change, and only to a neighbouring value.
    """
    import numpy as np

    table = _sorted_columns()
    ordered = table[column]
    n_real = len(ordered)
    width = max(1, int(RANK_JITTER * n_real))
    first, count = table[column + ":first"][rows], table[column + ":count"][rows]
    rank = first + np.floor(rng.random(len(rows)) * count).astype(np.int64)
    rank = rank + rng.integers(-width, width + 1, len(rows))
    rank = np.where(rank < 0, -rank - 1, rank)
    rank = np.where(rank >= n_real, 2 * n_real - 1 - rank, rank)
    return ordered[rank]


def generate_synthetic(n_rows: int, *, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
    """``n_rows`` rows with exactly the schema's columns and dtypes, reproducible from ``seed``.

    Raises ``ValueError`` for a negative row count or a drift outside [0, 1].
    """
    import numpy as np
    import pandas as pd

    if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows < 0:
        raise ValueError(f"n_rows must be a non-negative integer, got {n_rows!r}")
    drift = float(drift)
    if not 0.0 <= drift <= 1.0:
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

    for column in schema.NUMERIC_FEATURES:
        values = _rank_jitter(column, rows, rng).astype(float) if column in JITTERED_COLUMNS else frame[column].to_numpy(dtype=float)
        if column in NUMERIC_SHIFT and drift > 0:
            how, amount = NUMERIC_SHIFT[column]
            values = values + np.round(amount * drift) if how == "add" else values * (1 + amount * drift)
        low, high = schema.NUMERIC_RANGES[column]
        frame[column] = np.clip(np.round(values), low, high).astype("int64")

    if drift > 0:
        swapped = frame["education_num"].to_numpy() >= SWAP_MAX_EDUCATION - SWAP_EDUCATION_SPAN * drift
        swaps = {"occupation": _occupation_mirror(), "marital_status": MARITAL_SWAP}
        for column, mapping in swaps.items():
            values = frame[column]
            frame[column] = values.where(~swapped | ~values.isin(list(mapping)), values.map(mapping))
    return pd.DataFrame(frame, columns=list(schema.COLUMNS))
