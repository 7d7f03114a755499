"""Vectorised drift statistics: PSI and the two-sample Kolmogorov-Smirnov test.

The monitor compares a window of live values with the training baseline, column by
column. Done naively (``scipy.stats.ks_2samp`` plus ``np.histogram`` per column) a million
rows of twenty features takes several seconds, because ``ks_2samp`` sorts both samples and
binary-searches the whole concatenation twice. Here each column is sorted once, and both
the PSI bin counts and the KS statistic come from ``np.searchsorted`` against the sorted
baseline's distinct values only. The p-value and the symmetric divergence behind PSI come
from scipy (``scipy.stats.kstwo``, ``scipy.special.rel_entr``,
``scipy.stats.chi2_contingency``), so the formulas are scipy's, not ours. Columns run on a
thread pool: numpy's sort and searchsorted release the GIL.

PSI bins are the baseline's deciles (right-closed: ``(e_i, e_i+1]``), deduplicated, so a
feature with a point mass (``capital_gain == 0``) gets a bin for the mass and one above it.
Empty bins are floored at ``PSI_EPSILON`` so that a category or range unseen on one side
gives a large but finite PSI.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import special, stats

PSI_EPSILON: Final = 1e-4
"""Floor on a bin's share before the log ratio: a common PSI convention (0.01 %)."""

FloatArray = npt.NDArray[np.floating]


@dataclass(frozen=True)
class ColumnDrift:
    """Drift of one numeric column: PSI over baseline-decile bins and the KS test."""

    psi: float
    ks_statistic: float
    p_value: float
    baseline_count: int
    live_count: int


def psi_from_counts(expected: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """Population stability index of two histograms over the same bins.

    PSI is the symmetric Kullback-Leibler divergence of the two shares,
    ``sum((a - e) * ln(a / e))``, which scipy computes as ``rel_entr(a, e) + rel_entr(e, a)``.
    Shares are floored at ``PSI_EPSILON`` so an empty bin on one side stays finite. Raises
    ``ValueError`` when the shapes differ or either histogram is empty.
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.ndim != 1:
        raise ValueError(f"PSI needs two 1-D histograms of the same bins, got {e.shape} and {a.shape}")
    if e.sum() <= 0 or a.sum() <= 0:
        raise ValueError("PSI needs non-empty histograms on both sides")
    e_share = np.clip(e / e.sum(), PSI_EPSILON, None)
    a_share = np.clip(a / a.sum(), PSI_EPSILON, None)
    return float(np.sum(special.rel_entr(a_share, e_share) + special.rel_entr(e_share, a_share)))


def ks_p_value(statistic: float, n_baseline: int, n_live: int) -> float:
    """Two-sided KS p-value by Smirnov's asymptotic distribution, exactly as scipy's
    ``ks_2samp(method="asymp")`` computes it: ``kstwo.sf(D, round(n*m/(n+m)))``.

    The asymptotic form is what ``ks_2samp`` itself picks once either sample exceeds
    10,000 rows, which a training baseline always does.
    """
    m, n = sorted((float(n_baseline), float(n_live)), reverse=True)
    en = m * n / (m + n)
    return float(np.clip(stats.kstwo.sf(statistic, np.round(en)), 0.0, 1.0))


def decile_edges(sorted_baseline: FloatArray, bins: int) -> FloatArray:
    """Inner PSI bin edges: the baseline's ``bins``-quantiles, deduplicated.

    Takes the order statistics directly from the already sorted baseline (no second
    partition), so the edges are observed values and a point mass collapses to one edge.
    """
    n = sorted_baseline.shape[0]
    positions = (np.arange(1, bins) * n) // bins
    return np.unique(sorted_baseline[np.clip(positions - 1, 0, n - 1)])


def sorted_column_drift(sorted_baseline: FloatArray, sorted_live: FloatArray, *, bins: int = 10) -> ColumnDrift:
    """PSI and KS for one column, given both samples already sorted and free of NaN.

    The KS statistic ``D = sup |F_b - F_l|`` is attained at a baseline value or just left
    of one: between two consecutive distinct baseline values ``F_b`` is constant and
    ``F_l`` is monotone, so the extremes sit at the interval's ends. So it suffices to
    evaluate both empirical CDFs, right-continuous and left limits, at the baseline's
    distinct values: two ``searchsorted`` calls into the live sample, none over the
    concatenation. The result equals ``scipy.stats.ks_2samp(...).statistic`` exactly
    (same divisions); the tests hold it to 1e-12. Raises ``ValueError`` on an empty side.
    """
    n = sorted_baseline.shape[0]
    m = sorted_live.shape[0]
    if n == 0 or m == 0:
        raise ValueError(f"drift needs values on both sides, got {n} baseline and {m} live")
    starts = np.flatnonzero(np.concatenate(([True], sorted_baseline[1:] != sorted_baseline[:-1])))
    distinct = sorted_baseline[starts]
    baseline_left = starts / n
    baseline_right = np.append(starts[1:], n) / n
    live_right = np.searchsorted(sorted_live, distinct, side="right") / m
    live_left = np.searchsorted(sorted_live, distinct, side="left") / m
    statistic = float(max(np.max(np.abs(baseline_right - live_right)), np.max(np.abs(baseline_left - live_left))))

    edges = decile_edges(sorted_baseline, bins)
    baseline_counts = np.diff(np.concatenate(([0], np.searchsorted(sorted_baseline, edges, side="right"), [n])))
    live_counts = np.diff(np.concatenate(([0], np.searchsorted(sorted_live, edges, side="right"), [m])))
    return ColumnDrift(
        psi=psi_from_counts(baseline_counts, live_counts),
        ks_statistic=statistic,
        p_value=ks_p_value(statistic, n, m),
        baseline_count=int(n),
        live_count=int(m),
    )


def _finite_sorted(values: FloatArray) -> FloatArray:
    """The column sorted with NaN dropped: numpy sorts NaN last and ``searchsorted`` uses
    the same order, so one binary search finds where they start."""
    ordered = np.sort(values)
    return ordered[: int(np.searchsorted(ordered, np.nan, side="left"))]


def column_drift(baseline: FloatArray, live: FloatArray, *, bins: int = 10) -> ColumnDrift | None:
    """PSI and KS for one numeric column in any order, NaN ignored.

    Returns ``None`` when either side has no finite value (the column cannot be compared;
    the data-quality checks report why). Works in the arrays' own dtype: float32 halves
    memory and sort time and is exact for the integer-valued census features.
    """
    if not np.issubdtype(baseline.dtype, np.floating) or not np.issubdtype(live.dtype, np.floating):
        raise ValueError(f"numeric drift needs float arrays, got {baseline.dtype} and {live.dtype}")
    sorted_baseline = _finite_sorted(baseline)
    sorted_live = _finite_sorted(live)
    if sorted_baseline.size == 0 or sorted_live.size == 0:
        return None
    return sorted_column_drift(sorted_baseline, sorted_live, bins=bins)


def numeric_drift(
    baseline: Sequence[FloatArray], live: Sequence[FloatArray], *, bins: int = 10, workers: int | None = None
) -> list[ColumnDrift | None]:
    """``column_drift`` for many columns at once, on a thread pool.

    ``baseline[i]`` and ``live[i]`` are the i-th column's samples (1-D; pass column-major
    data so each column is contiguous). ``workers`` defaults to the CPU count. Raises
    ``ValueError`` when the column counts differ.
    """
    if len(baseline) != len(live):
        raise ValueError(f"baseline has {len(baseline)} columns, live has {len(live)}")
    if bins < 2:
        raise ValueError(f"PSI needs at least 2 bins, got {bins}")
    pool_size = max(1, min(workers or os.cpu_count() or 1, len(baseline)))
    if pool_size == 1:
        return [column_drift(b, x, bins=bins) for b, x in zip(baseline, live, strict=True)]
    with ThreadPoolExecutor(max_workers=pool_size) as pool:
        return list(pool.map(lambda pair: column_drift(pair[0], pair[1], bins=bins), zip(baseline, live, strict=True)))


@dataclass(frozen=True)
class CategoricalDrift:
    """Drift of one categorical column: PSI over its categories and a chi-squared test."""

    psi: float
    chi2_statistic: float
    p_value: float
    categories: tuple[str, ...]
    baseline_counts: tuple[int, ...]
    live_counts: tuple[int, ...]


def categorical_drift(categories: Sequence[str], baseline_counts: npt.ArrayLike, live_counts: npt.ArrayLike) -> CategoricalDrift:
    """PSI and a chi-squared test of homogeneity for two count vectors over ``categories``.

    The test is ``scipy.stats.chi2_contingency`` on the 2 x k table, after dropping
    categories empty on both sides; with a single category left there is nothing to
    test and the p-value is 1. Raises ``ValueError`` on mismatched lengths or an empty side.
    """
    b = np.asarray(baseline_counts, dtype=np.int64)
    a = np.asarray(live_counts, dtype=np.int64)
    if not (len(categories) == b.shape[0] == a.shape[0]):
        raise ValueError(f"{len(categories)} categories but {b.shape[0]} baseline and {a.shape[0]} live counts")
    psi = psi_from_counts(b, a)
    keep = (b + a) > 0
    if np.count_nonzero(keep) < 2:
        statistic, p_value = 0.0, 1.0
    else:
        result = stats.chi2_contingency(np.vstack([b[keep], a[keep]]), correction=False)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    return CategoricalDrift(
        psi=psi,
        chi2_statistic=statistic,
        p_value=p_value,
        categories=tuple(categories),
        baseline_counts=tuple(int(v) for v in b),
        live_counts=tuple(int(v) for v in a),
    )
