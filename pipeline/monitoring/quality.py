"""Data-quality checks on live inputs: nulls beyond the baseline, out-of-range and
non-numeric values, and categories the model never saw in training.

These catch a broken upstream (a renamed field that now arrives as null, a unit change
that puts ages in months) that drift statistics would report only indirectly. Ranges come
from the contract's ``min``/``max`` (either may be absent), null shares from the baseline
itself, because some columns are legitimately null (three of Adult's, about 6 % of the time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from pipeline.monitoring.capture import MAX_EXAMPLES
from pipeline.monitoring.thresholds import Thresholds
from pipeline import schema

CheckName = Literal["nulls", "out_of_range", "non_numeric", "unseen_categories"]


@dataclass(frozen=True)
class QualityCheck:
    """One check on one feature: the live share, the limit, and whether it failed."""

    feature: str
    check: CheckName
    count: int
    live_rate: float
    limit: float
    failed: bool
    baseline_rate: float | None = None
    examples: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for the verdict's reasons."""
        extra = f" (baseline {self.baseline_rate:.1%})" if self.baseline_rate is not None else ""
        seen = f": {', '.join(self.examples)}" if self.examples else ""
        return f"{self.feature}: {self.check.replace('_', ' ')} {self.live_rate:.1%} of live rows{extra}, limit {self.limit:.1%}{seen}"


def data_quality(
    baseline: pd.DataFrame, live: pd.DataFrame, non_numeric: dict[str, int], thresholds: Thresholds
) -> list[QualityCheck]:
    """Every check for every feature on a non-empty window.

    ``non_numeric`` counts, per numeric feature, live values that were present but not
    numbers (the capture reader turned them into NaN, so they are not counted as nulls).
    Raises ``ValueError`` on an empty window: rates of nothing mean nothing.
    """
    rows = len(live)
    if rows == 0:
        raise ValueError("data quality needs at least one live row")
    checks: list[QualityCheck] = []
    for column in schema.FEATURES:
        bad_type = non_numeric.get(column, 0)
        nulls = int(live[column].isna().sum()) - bad_type
        base_rate = float(baseline[column].isna().mean()) if len(baseline) else 0.0
        rate = nulls / rows
        checks.append(
            QualityCheck(column, "nulls", nulls, rate, base_rate + thresholds.max_null_rate_increase,
                         rate - base_rate > thresholds.max_null_rate_increase, baseline_rate=base_rate)
        )
    for column in schema.NUMERIC_FEATURES:
        # A contract may bound one side only (``min: 0``) or neither: the open side is infinite.
        declared = schema.PROJECT.data.column(column)
        low = -np.inf if declared.minimum is None else declared.minimum
        high = np.inf if declared.maximum is None else declared.maximum
        values = live[column].to_numpy(dtype=np.float64)
        present = ~np.isnan(values)
        outside = present & ((values < low) | (values > high))
        count = int(outside.sum())
        examples = tuple(f"{v:g}" for v in pd.unique(values[outside])[:MAX_EXAMPLES])
        checks.append(
            QualityCheck(column, "out_of_range", count, count / rows, thresholds.max_out_of_range_rate,
                         count / rows > thresholds.max_out_of_range_rate, examples=examples)
        )
        bad_type = non_numeric.get(column, 0)
        checks.append(
            QualityCheck(column, "non_numeric", bad_type, bad_type / rows, thresholds.max_out_of_range_rate,
                         bad_type / rows > thresholds.max_out_of_range_rate)
        )
    for column in schema.CATEGORICAL_FEATURES:
        known = set(baseline[column].dropna().unique())
        values = live[column].dropna()
        unseen = values[~values.isin(known)]
        count = int(len(unseen))
        examples = tuple(str(v) for v in unseen.value_counts().index[:MAX_EXAMPLES])
        checks.append(
            QualityCheck(column, "unseen_categories", count, count / rows, thresholds.max_unseen_category_rate,
                         count / rows > thresholds.max_unseen_category_rate, examples=examples)
        )
    return checks
