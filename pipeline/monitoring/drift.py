"""Per-feature and prediction drift of a capture window against the training baseline.

Numeric features get PSI over baseline-decile bins and the two-sample Kolmogorov-Smirnov
test; categorical features get PSI over their categories and scipy's chi-squared test of
homogeneity; the predictions (a classifier's probabilities, a regressor's values) get the
numeric treatment. A feature drifts only
when its PSI is large *and* its test is significant (``Thresholds``): PSI says the shift
matters, the test says the window is big enough to believe it. The statistics themselves
live in ``pipeline.monitoring.stats``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import pandas as pd

from pipeline.monitoring.stats import categorical_drift, numeric_drift
from pipeline.monitoring.thresholds import Thresholds
from pipeline import schema

NULL_BUCKET: Final = "<null>"
OTHER_BUCKET: Final = "<other>"
"""Baseline categories rarer than ``Thresholds.min_category_share``, pooled."""
UNSEEN_BUCKET: Final = "<unseen>"
"""Live categories the baseline never had: a bucket of their own, so a new value that
takes over a feature shows as drift and not only as a data-quality note."""
PREDICTION: Final = "prediction"


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's (or the predictions') drift statistics and whether they alarm."""

    feature: str
    kind: Literal["numeric", "categorical", "prediction"]
    test: Literal["ks", "chi2"]
    psi: float | None
    statistic: float | None
    p_value: float | None
    baseline_count: int
    live_count: int
    drifted: bool
    note: str = ""


def _is_drift(psi: float, p_value: float, psi_limit: float, thresholds: Thresholds) -> bool:
    return psi > psi_limit and p_value < thresholds.p_value


def _numeric(
    names: Sequence[str],
    baseline: Sequence[np.ndarray],
    live: Sequence[np.ndarray],
    kind: Literal["numeric", "prediction"],
    psi_limit: float,
    thresholds: Thresholds,
) -> list[FeatureDrift]:
    results = []
    for name, drift in zip(names, numeric_drift(baseline, live, bins=thresholds.psi_bins), strict=True):
        if drift is None:
            results.append(
                FeatureDrift(name, kind, "ks", None, None, None, 0, 0, False, note="no finite values on one side: not compared")
            )
            continue
        results.append(
            FeatureDrift(
                feature=name,
                kind=kind,
                test="ks",
                psi=drift.psi,
                statistic=drift.ks_statistic,
                p_value=drift.p_value,
                baseline_count=drift.baseline_count,
                live_count=drift.live_count,
                drifted=_is_drift(drift.psi, drift.p_value, psi_limit, thresholds),
            )
        )
    return results


def category_buckets(baseline: pd.Series, live: pd.Series, min_share: float) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Bucket a categorical feature for PSI and chi-squared: frequent baseline categories
    each on their own (most frequent first), then rare ones pooled, nulls, and values the
    baseline never had. Returns the bucket names and both count vectors."""
    base_counts = baseline.fillna(NULL_BUCKET).value_counts()
    live_counts = live.fillna(NULL_BUCKET).value_counts()
    base_total = max(int(base_counts.sum()), 1)
    frequent = [c for c, n in base_counts.items() if c != NULL_BUCKET and n / base_total >= min_share]
    rare = set(base_counts.index) - set(frequent) - {NULL_BUCKET}

    def bucket(category: str) -> str:
        if category == NULL_BUCKET or category in frequent:
            return category
        return OTHER_BUCKET if category in rare else UNSEEN_BUCKET

    names = [*frequent, OTHER_BUCKET, NULL_BUCKET, UNSEEN_BUCKET]
    b = base_counts.groupby(base_counts.index.map(bucket)).sum().reindex(names, fill_value=0)
    a = live_counts.groupby(live_counts.index.map(bucket)).sum().reindex(names, fill_value=0) if len(live_counts) else pd.Series(0, index=names)
    return names, b.to_numpy(dtype=np.int64), a.to_numpy(dtype=np.int64)


def feature_drift(baseline: pd.DataFrame, live: pd.DataFrame, thresholds: Thresholds) -> list[FeatureDrift]:
    """Drift of every feature in ``pipeline.schema``, numeric then categorical.

    Both frames carry the schema's feature columns (numeric as float, NaN for missing).
    A column with no usable value on one side is reported with a note, not compared.
    """
    results = _numeric(
        schema.NUMERIC_FEATURES,
        [baseline[c].to_numpy(dtype=np.float64) for c in schema.NUMERIC_FEATURES],
        [live[c].to_numpy(dtype=np.float64) for c in schema.NUMERIC_FEATURES],
        "numeric",
        thresholds.psi_drift,
        thresholds,
    )
    for column in schema.CATEGORICAL_FEATURES:
        names, b, a = category_buckets(baseline[column], live[column], thresholds.min_category_share)
        if b.sum() == 0 or a.sum() == 0:
            results.append(FeatureDrift(column, "categorical", "chi2", None, None, None, int(b.sum()), int(a.sum()), False, "no values on one side: not compared"))
            continue
        drift = categorical_drift(names, b, a)
        results.append(
            FeatureDrift(
                feature=column,
                kind="categorical",
                test="chi2",
                psi=drift.psi,
                statistic=drift.chi2_statistic,
                p_value=drift.p_value,
                baseline_count=int(b.sum()),
                live_count=int(a.sum()),
                drifted=_is_drift(drift.psi, drift.p_value, thresholds.psi_drift, thresholds),
            )
        )
    return results


def prediction_drift(baseline_scores: np.ndarray, live_scores: np.ndarray, thresholds: Thresholds) -> FeatureDrift:
    """Drift of the predictions, live against the baseline's ``prediction`` column (PSI at
    the baseline's deciles, and KS): the probability of the positive class for a
    classifier, the predicted value for a regressor (``analysis.live_scores``)."""
    return _numeric(
        [PREDICTION],
        [np.asarray(baseline_scores, dtype=np.float64)],
        [np.asarray(live_scores, dtype=np.float64)],
        "prediction",
        thresholds.prediction_psi_drift,
        thresholds,
    )[0]
