"""Synthetic rows of the active data contract, of any size, with controllable drift.

Everything is derived from two inputs, so no dataset is written into the code: the
active contract (``pipeline.schema``: columns, types, ranges, allowed values, the
sensitive attribute) and a *reference* sample of real rows. ``generate_synthetic(n,
reference=frame)`` takes the reference a team has (``python -m pipeline synth --data
FILE``); without one, the shipped dataset is the reference only while the shipped project
is active, because another contract's columns are not in it.

Rows are drawn from the reference, so the joint structure of every column, label
included, is the real one. Continuous numeric features (more than ``JITTER_MIN_DISTINCT``
distinct values, none of them holding half the rows) are then jittered *within their own
distribution* (rank jitter: a value is replaced by the value a few hundred ranks away),
which makes rows distinct without moving any marginal: a spike (Adult's 47 % at 40 hours
a week) stays a spike, so at ``drift=0`` the monitor sees the reference's distributions
and a model trained on the reference scores as it does on real rows. Codes (few distinct
values, often a re-coding of a category) and columns dominated by one value (a zero mass
with a thin tail, where a few hundred ranks cross the values the label turns on) are
copied as they are. Integer columns stay whole numbers, declared ranges hold, categories
and nulls are the reference's.

``drift`` in [0, 1] moves the data away from the reference in three ways, each growing
with it:

- continuous features shift up by ``SHIFT_STD * drift`` of their standard deviation, and
  a point mass with a tail keeps its mass while its tail stretches (``TAIL_GROWTH``);
- category frequencies tilt toward the rarer values (``TILT_STRENGTH``);
- the label relation changes *learnably*. The *region* is the rows above the reference's
  ``1 - drift`` quantile of the numeric feature most associated with the target (for
  Adult: ``education_num``); inside it, the ``SWAPPED_FEATURES`` features next most
  associated with the target trade values with their mirror image: a category with the
  one at the opposite end of the target ranking (Adult: ``Exec-managerial`` <->
  ``Priv-house-serv``, ``Married-civ-spouse`` <-> ``Never-married``), a number with the
  value at the opposite rank. Labels are never changed, so there is no added noise: a
  model retrained on drifted rows can learn the new relation (region x feature), while
  the stale champion, which still reads the old meaning, scores clearly worse.

Association is the correlation ratio (eta squared) of the target over a feature's
categories or deciles. The sensitive attribute, and any feature that is its proxy
(Cramér's V at least ``PROXY_ASSOCIATION``), is neither tilted nor swapped, so group base
rates and fairness gaps stay the reference's; a swap that hid a group's strongest
signal would make a drill fail fairness for a reason of its own making. Nor is a feature
swapped that merely re-codes the region feature (it determines it), or the drift would
read as contradictory rows rather than a changed world.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pipeline import schema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

TILT_STRENGTH: Final = 0.3
"""Category weights are ``share ** (-TILT_STRENGTH * drift)``: at drift 1 a value with a
1 % share gains about 4x against one with 50 %."""
RANK_JITTER: Final = 0.005
"""Half-width of the rank jitter as a share of the reference rows (about 244 ranks of
Adult's 48,842): an age moves by at most a year and the 40-hour spike stays whole."""
MIN_JITTER_RANKS: Final = 10
"""The jitter's half-width is at least this many ranks (at most 5 % of the reference):
measurements of a small reference are heavily tied (442 diabetes patients, bmi to one
decimal), and two ranks either way stayed inside one value so often that 3 % of 3,000
rows came out identical, past validation's duplicate limit."""
JITTER_MIN_DISTINCT: Final = 20
"""A numeric feature with at most this many distinct values is a code, copied as is."""
JITTER_MAX_MODE_SHARE: Final = 0.5
"""A numeric feature whose commonest value holds at least this share is copied as is."""
SHIFT_STD: Final = 0.5
"""Continuous features shift up by this many standard deviations at ``drift=1``."""
TAIL_GROWTH: Final = 1.0
"""A point mass with a tail (Adult's capital amounts: zero for over 90 % of people) keeps
its mass and stretches its tail away from it by ``1 + TAIL_GROWTH * drift``."""
SWAPPED_FEATURES: Final = 2
"""How many features trade meaning inside the drifted region."""
PROXY_ASSOCIATION: Final = 0.5
"""Cramér's V with the sensitive attribute from which a feature counts as its proxy."""
RECODING_ASSOCIATION: Final = 0.9
"""A feature explaining this share of the region feature's variance re-codes it."""
ASSOCIATION_BINS: Final = 10
"""Numeric features are cut at their deciles to measure association."""


@dataclass(frozen=True)
class _Numeric:
    """One numeric column of the reference, sorted, with each row's rank block.

    A row's rank is drawn uniformly inside the block of rows sharing its value (a tie
    block of 23,000 rows at 40 hours must not all sit at one rank); NaN rows have none."""

    ordered: np.ndarray
    first: np.ndarray
    count: np.ndarray
    present: np.ndarray
    std: float


@dataclass(frozen=True)
class Profile:
    """What the generator learned from the reference under the active contract."""

    frame: pd.DataFrame
    numeric: dict[str, _Numeric]
    jittered: tuple[str, ...]
    tails: dict[str, float]
    """Point-mass-and-tail features and the value of their mass."""
    tilted: tuple[str, ...]
    region: str | None
    region_scores: np.ndarray
    swapped: tuple[str, ...]
    mirrors: dict[str, dict[Any, Any]]


def _reference_problems(frame: pd.DataFrame) -> list[str]:
    """Where ``frame`` cannot serve as the reference of the active contract."""
    from pandas.api.types import is_numeric_dtype

    missing = [c for c in schema.COLUMNS if c not in frame.columns]
    if missing:
        return [f"lacks the contract's column(s) {', '.join(missing)}"]
    problems = [] if len(frame) else ["has no rows"]
    for column in (*schema.NUMERIC_FEATURES, schema.LABEL):
        if column in schema.NUMERIC_FEATURES or not schema.IS_CLASSIFIER:
            if not is_numeric_dtype(frame[column]):
                problems.append(f"column {column!r} is declared numeric but holds {frame[column].dtype} values")
    for column, values in schema.CATEGORY_VALUES.items():
        allowed = {str(v) for v in values}
        unknown = sorted({str(v) for v in frame[column].dropna().unique()} - allowed)
        if unknown:
            problems.append(f"column {column!r} holds values the contract does not declare: {', '.join(unknown[:5])}")
    nulls = [c for c in schema.COLUMNS if c not in schema.NULLABLE_FEATURES and frame[c].isna().any()]
    if nulls:
        problems.append(f"non-nullable column(s) hold nulls: {', '.join(nulls)}")
    return problems


def _association(values: pd.Series, target: np.ndarray) -> float:
    """Correlation ratio (eta squared) of ``target`` over the groups of ``values``: the
    share of its variance the groups explain. Numeric values are grouped at deciles."""
    import numpy as np
    import pandas as pd

    variance = float(np.var(target))
    if variance == 0 or len(values) == 0:
        return 0.0
    means = pd.Series(target).groupby(_groups(values)).agg(["mean", "count"])
    return float(((means["mean"] - target.mean()) ** 2 * means["count"]).sum() / len(target) / variance)


def _groups(values: pd.Series) -> np.ndarray:
    """Group keys of a column: a numeric feature's decile (by rank), else its value; nulls a group."""
    import pandas as pd

    if values.name in schema.NUMERIC_FEATURES and values.nunique() > ASSOCIATION_BINS:
        values = pd.qcut(values.rank(method="first"), ASSOCIATION_BINS, labels=False)
    return values.astype(object).where(values.notna(), "<null>").to_numpy()


def _cramers_v(a: pd.Series, b: pd.Series) -> float:
    """Cramér's V of two columns' groups: ``sqrt(chi2 / (n * (min(r, c) - 1)))``, with
    ``chi2 / n = sum(O^2 / (row * column)) - 1`` (scipy's ``association``, without the
    second-long import of ``scipy.stats`` on every ``synth``)."""
    import numpy as np
    import pandas as pd

    table = pd.crosstab(_groups(a), _groups(b)).to_numpy(dtype=np.float64)
    if min(table.shape) < 2:
        return 0.0
    n = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0))
    phi2 = float((table**2 / expected).sum() - 1.0) if n else 0.0
    return float(np.sqrt(max(phi2, 0.0) / (min(table.shape) - 1)))


def _numeric_column(values: pd.Series) -> _Numeric:
    import numpy as np

    raw = values.to_numpy(dtype=np.float64)
    present = ~np.isnan(raw)
    ordered = np.sort(raw[present], kind="stable")
    first = np.searchsorted(ordered, raw, side="left")
    count = np.searchsorted(ordered, raw, side="right") - first
    return _Numeric(ordered, first, count, present, float(np.std(ordered)) if ordered.size else 0.0)


def profile_reference(reference: pd.DataFrame) -> Profile:
    """Study ``reference`` under the active contract (see the module doc).

    Raises ``ValueError`` naming what is wrong: a contract column missing, no rows, a
    declared number that is not numeric, an undeclared category, a null where the
    contract allows none."""
    import numpy as np

    problems = _reference_problems(reference)
    if problems:
        raise ValueError("the synthetic generator's reference data " + "; ".join(problems))
    frame = reference.loc[:, list(schema.COLUMNS)].reset_index(drop=True)
    target = np.asarray(schema.target(frame), dtype=np.float64)
    numeric = {c: _numeric_column(frame[c]) for c in schema.NUMERIC_FEATURES}
    spread = [c for c in schema.NUMERIC_FEATURES if frame[c].nunique() > JITTER_MIN_DISTINCT]
    modes = {c: frame[c].value_counts(normalize=True) for c in spread}
    jittered = tuple(c for c in spread if modes[c].iloc[0] < JITTER_MAX_MODE_SHARE)
    tails = {c: float(modes[c].index[0]) for c in spread if c not in jittered}
    sensitive = schema.SENSITIVE_ATTRIBUTE
    protected = {sensitive} if sensitive else set()
    if sensitive:
        protected |= {c for c in schema.FEATURES if c != sensitive and _cramers_v(frame[c], frame[sensitive]) >= PROXY_ASSOCIATION}
    tilted = tuple(c for c in schema.CATEGORICAL_FEATURES if c not in protected)

    strength = {c: _association(frame[c], target) for c in schema.FEATURES if c not in protected}
    numeric_candidates = [c for c in schema.NUMERIC_FEATURES if c in strength]
    region_pool = numeric_candidates or [c for c in schema.CATEGORICAL_FEATURES if c in strength]
    region = max(region_pool, key=lambda c: strength[c], default=None)
    mirrors: dict[str, dict[Any, Any]] = {}
    swapped: tuple[str, ...] = ()
    region_scores = np.zeros(len(frame))
    if region is not None:
        if region in schema.NUMERIC_FEATURES:
            region_scores = frame[region].to_numpy(dtype=np.float64)
        else:
            # A category orders by its target mean, so "above the quantile" is still a region.
            region_scores = frame[region].map(_target_means(frame[region], target)).to_numpy(dtype=np.float64)
        region_values = np.nan_to_num(region_scores, nan=float(np.nanmin(region_scores)) if np.isfinite(region_scores).any() else 0.0)
        candidates = [
            c for c in strength
            if c != region and _association(frame[c], region_values) < RECODING_ASSOCIATION
        ]
        swapped = tuple(sorted(candidates, key=lambda c: strength[c], reverse=True)[:SWAPPED_FEATURES])
        for column in swapped:
            if column in schema.CATEGORICAL_FEATURES:
                ranking = list(_target_means(frame[column], target).sort_values(kind="stable").index)
                mirrors[column] = {name: ranking[-1 - i] for i, name in enumerate(ranking)}
    return Profile(frame, numeric, jittered, tails, tilted, region, region_scores, swapped, mirrors)


def _target_means(values: pd.Series, target: np.ndarray) -> pd.Series:
    import pandas as pd

    present = values.notna().to_numpy()
    return pd.Series(target[present]).groupby(values[present].to_numpy()).mean()


@lru_cache(maxsize=1)
def _default_profile(project_path: Path) -> Profile:
    from pipeline.data import load_dataset

    return profile_reference(load_dataset(schema.DEFAULT_DATASET))


def default_reference_profile() -> Profile:
    """The shipped dataset's profile, only while the shipped project is active.

    Raises ``ValueError`` otherwise: another contract's columns are not in that data, so a
    team passes its own (``reference=`` or ``synth --data FILE``)."""
    if schema.PROJECT_PATH.resolve() != schema.SHIPPED_PROJECT.resolve():
        raise ValueError(
            f"no reference data for project {schema.PROJECT_PATH}: the synthetic generator draws its rows from a "
            f"sample of real data, and the shipped {schema.DEFAULT_DATASET.name} only fits the shipped project; "
            "pass reference=FRAME (python -m pipeline synth --data FILE)"
        )
    return _default_profile(schema.SHIPPED_PROJECT.resolve())


def _ranks(column: _Numeric, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each drawn row with a value, a rank drawn uniformly inside its value's tie block."""
    import numpy as np

    first, count = column.first[rows], column.count[rows]
    return first + np.floor(rng.random(len(rows)) * count).astype(np.int64)


def _reflect(rank: np.ndarray, size: int) -> np.ndarray:
    import numpy as np

    rank = np.where(rank < 0, -rank - 1, rank)
    return np.clip(np.where(rank >= size, 2 * size - 1 - rank, rank), 0, size - 1)


def generate_synthetic(
    n_rows: int, *, seed: int = 0, drift: float = 0.0, reference: pd.DataFrame | Profile | None = None
) -> pd.DataFrame:
    """``n_rows`` rows with exactly the contract's columns, reproducible from ``seed``.

    ``reference`` is a frame of real rows with the contract's columns (or its
    ``profile_reference``, to draw many times from one reference); None takes the shipped
    dataset while the shipped project is active. Raises ``ValueError`` for a negative row
    count, a drift outside [0, 1], no usable reference (naming the problem).
    """
    import numpy as np
    import pandas as pd

    if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows < 0:
        raise ValueError(f"n_rows must be a non-negative integer, got {n_rows!r}")
    drift = float(drift)
    if not 0.0 <= drift <= 1.0:
        raise ValueError(f"drift must be in [0, 1], got {drift!r}")
    if reference is None:
        study = default_reference_profile()
    elif isinstance(reference, Profile):
        study = reference
    else:
        study = profile_reference(reference)
    real = study.frame
    rng = np.random.default_rng(seed)

    weights = np.ones(len(real))
    if drift > 0:
        for column in study.tilted:
            values = real[column]
            # Missing values keep their weight: tilting them up would turn drift into
            # a data-quality failure, which is a different scenario.
            freq = values.map(values.value_counts(normalize=True)).fillna(1.0).to_numpy(dtype=float)
            weights *= freq ** (-TILT_STRENGTH * drift)
    rows = rng.choice(len(real), size=int(n_rows), p=weights / weights.sum())
    frame = real.iloc[rows].reset_index(drop=True).copy()

    in_region = np.zeros(len(rows), dtype=bool)
    if drift > 0 and study.region is not None:
        scores = study.region_scores
        cut = np.nanquantile(scores, 1.0 - drift) if np.isfinite(scores).any() else np.inf
        in_region = np.nan_to_num(scores[rows], nan=-np.inf) > cut

    bounds = {c.name: (c.minimum, c.maximum) for c in schema.PROJECT.data.columns}
    for column in schema.NUMERIC_FEATURES:
        info = study.numeric[column]
        jitter, swap = column in study.jittered, column in study.swapped and in_region.any()
        values = frame[column].to_numpy(dtype=np.float64)
        if (jitter or swap) and info.ordered.size:
            present = info.present[rows]
            rank = _ranks(info, rows, rng)
            if swap:
                rank = np.where(in_region, info.ordered.size - 1 - rank, rank)
            if jitter:
                size = info.ordered.size
                width = max(1, min(MIN_JITTER_RANKS, size // 20), int(RANK_JITTER * size))
                rank = _reflect(rank + rng.integers(-width, width + 1, len(rows)), info.ordered.size)
            values = np.where(present, info.ordered[np.clip(rank, 0, info.ordered.size - 1)], np.nan)
            if jitter and drift > 0:
                values = values + SHIFT_STD * drift * info.std
        if column in study.tails and drift > 0:
            mass = study.tails[column]
            values = mass + (values - mass) * (1 + TAIL_GROWTH * drift)
        low, high = bounds[column]
        values = np.clip(values, -np.inf if low is None else low, np.inf if high is None else high)
        if column in schema.INTEGER_FEATURES:
            values = np.round(values)
            frame[column] = values.astype("int64") if not np.isnan(values).any() else pd.array(values, dtype="Int64")
        else:
            frame[column] = values

    for column, mapping in study.mirrors.items():
        values = frame[column]
        frame[column] = values.where(~in_region | ~values.isin(list(mapping)), values.map(mapping))
    return pd.DataFrame(frame, columns=list(schema.COLUMNS))
