"""The vectorised statistics agree with scipy's column-by-column computation.

Tolerance: the KS statistic and p-value must match ``scipy.stats.ks_2samp(method="asymp")``
to 1e-12 (they are the same divisions, so in practice bit for bit); PSI must match a
reference built on ``np.histogram`` over the same bins to 1e-12.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pipeline.monitoring.stats import (
    PSI_EPSILON,
    categorical_drift,
    column_drift,
    decile_edges,
    numeric_drift,
    psi_from_counts,
)

TOLERANCE = 1e-12


def reference_psi(baseline: np.ndarray, live: np.ndarray, bins: int = 10) -> float:
    """PSI the slow way: np.histogram on the same right-closed decile bins."""
    edges = decile_edges(np.sort(baseline), bins)
    # np.histogram's bins are left-closed; nudging each edge up one ulp makes them (e, e'].
    cuts = np.concatenate(([-np.inf], np.nextafter(edges, np.inf), [np.inf]))
    e = np.clip(np.histogram(baseline, cuts)[0] / baseline.size, PSI_EPSILON, None)
    a = np.clip(np.histogram(live, cuts)[0] / live.size, PSI_EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


def samples(kind: str, seed: int, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "continuous":
        return rng.normal(size=4000).astype(dtype), rng.normal(0.2, 1.1, size=700).astype(dtype)
    if kind == "ties":
        return rng.integers(17, 90, size=3000).astype(dtype), rng.integers(25, 95, size=500).astype(dtype)
    if kind == "point_mass":
        base = np.where(rng.random(5000) < 0.9, 0, rng.integers(1, 99999, 5000)).astype(dtype)
        live = np.where(rng.random(800) < 0.7, 0, rng.integers(1, 99999, 800)).astype(dtype)
        return base, live
    raise AssertionError(kind)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["continuous", "ties", "point_mass"])
@pytest.mark.parametrize("seed", [0, 1])
def test_ks_and_psi_match_scipy_and_histogram(kind: str, seed: int, dtype: type) -> None:
    baseline, live = samples(kind, seed, dtype)
    ours = column_drift(baseline, live)
    theirs = stats.ks_2samp(baseline, live, method="asymp")
    assert ours is not None
    assert abs(ours.ks_statistic - theirs.statistic) <= TOLERANCE
    assert abs(ours.p_value - theirs.pvalue) <= TOLERANCE
    assert abs(ours.psi - reference_psi(baseline, live)) <= TOLERANCE
    assert (ours.baseline_count, ours.live_count) == (baseline.size, live.size)


def test_live_values_outside_the_baseline_range_count_in_ks() -> None:
    baseline = np.arange(100, dtype=np.float64)
    live = np.arange(150, 250, dtype=np.float64)
    ours = column_drift(baseline, live)
    assert ours is not None
    assert ours.ks_statistic == pytest.approx(1.0)
    assert ours.ks_statistic == stats.ks_2samp(baseline, live).statistic


def test_same_distribution_has_small_psi_and_a_shift_has_large_psi() -> None:
    rng = np.random.default_rng(3)
    baseline = rng.normal(size=20000)
    same = column_drift(baseline, rng.normal(size=5000))
    moved = column_drift(baseline, rng.normal(1.0, size=5000))
    assert same is not None and moved is not None
    assert same.psi < 0.02 and same.p_value > 0.01
    assert moved.psi > 0.5 and moved.p_value < 1e-10


def test_nan_is_ignored_and_an_all_nan_side_is_not_compared() -> None:
    baseline = np.array([1.0, 2.0, np.nan, 3.0, 4.0])
    live = np.array([np.nan, 2.0, 3.0])
    ours = column_drift(baseline, live)
    assert ours is not None
    assert (ours.baseline_count, ours.live_count) == (4, 2)
    assert ours.ks_statistic == stats.ks_2samp([1.0, 2.0, 3.0, 4.0], [2.0, 3.0]).statistic
    assert column_drift(baseline, np.array([np.nan, np.nan])) is None


def test_numeric_drift_runs_columns_in_parallel_with_the_same_answers() -> None:
    rng = np.random.default_rng(5)
    base = rng.normal(size=(4, 3000)).astype(np.float32)
    live = (rng.normal(size=(4, 900)) + np.arange(4)[:, None] * 0.3).astype(np.float32)
    parallel = numeric_drift(list(base), list(live), workers=2)
    serial = [column_drift(b, x) for b, x in zip(base, live, strict=True)]
    assert parallel == serial


def test_numeric_drift_refuses_mismatched_columns_and_too_few_bins() -> None:
    column = np.zeros(3)
    with pytest.raises(ValueError, match="2 columns, live has 1"):
        numeric_drift([column, column], [column])
    with pytest.raises(ValueError, match="at least 2 bins"):
        numeric_drift([column], [column], bins=1)
    with pytest.raises(ValueError, match="float arrays"):
        column_drift(np.arange(3), np.arange(3))


def test_psi_refuses_bad_histograms_and_floors_empty_bins() -> None:
    with pytest.raises(ValueError, match="same bins"):
        psi_from_counts([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="non-empty"):
        psi_from_counts([0, 0], [1, 2])
    # An empty live bin stays finite thanks to the floor.
    assert np.isfinite(psi_from_counts([50, 50], [100, 0]))
    assert psi_from_counts([10, 20, 30], [10, 20, 30]) == 0.0


def test_categorical_drift_uses_scipys_chi_squared() -> None:
    base, live = [500, 300, 200, 0], [100, 100, 150, 50]
    ours = categorical_drift(["a", "b", "c", "new"], base, live)
    expected = stats.chi2_contingency(np.array([base[:3] + [0], live])[:, [0, 1, 2, 3]], correction=False)
    assert ours.chi2_statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert ours.psi == pytest.approx(psi_from_counts(base, live))
    single = categorical_drift(["only", "empty"], [10, 0], [5, 0])
    assert single.p_value == 1.0 and single.chi2_statistic == 0.0
    with pytest.raises(ValueError, match="3 categories"):
        categorical_drift(["a", "b", "c"], [1, 2], [1, 2])
