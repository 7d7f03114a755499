"""The monitor's thresholds: one frozen dataclass, every limit a documented parameter.

Alarms are only as good as their limits, and the right limits depend on traffic volume
and on how much a retrain costs, so none is buried in the code. The defaults follow common
practice (PSI above 0.2 is a significant shift, 0.1 to 0.2 a moderate one) and are listed
with their reasons in docs/monitoring.md; the ``monitor`` command exposes the main ones.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Thresholds:
    """Limits that turn the monitor's statistics into a verdict."""

    min_rows: int = 200
    """Fewer captured rows than this: ``insufficient_data``, no drift verdict (with 10 PSI
    bins the PSI of two samples from the same distribution is about 9/n, 0.045 at 200)."""
    psi_bins: int = 10
    """Numeric features and predictions are binned at the baseline's deciles."""
    psi_drift: float = 0.2
    """A feature drifts when its PSI exceeds this..."""
    p_value: float = 0.01
    """...and its two-sample test (KS or chi-squared) rejects equality at this level, so
    a large but noisy PSI on a thin window does not alarm on its own."""
    prediction_psi_drift: float = 0.2
    """PSI of the predicted probabilities above which predictions drift (same test rule)."""
    min_category_share: float = 0.01
    """Baseline categories rarer than this are pooled into one bucket before PSI and the
    chi-squared test, whose approximation needs non-tiny expected counts."""
    max_null_rate_increase: float = 0.05
    """A feature's live null share may exceed its baseline share by at most this."""
    max_out_of_range_rate: float = 0.01
    """Share of live values outside the contract's declared ``min``/``max`` (or not numbers)."""
    max_unseen_category_rate: float = 0.01
    """Share of live values of a categorical feature never seen in the baseline."""
    min_labelled_rows: int = 200
    """Fewer labelled rows (or a single class): performance is not judged."""
    max_auc_drop: float = 0.05
    """Reference ROC AUC minus live ROC AUC above this is a ``performance_drop``."""
    min_slice_rows: int = 50
    """A slice (``pipeline.schema.SLICE_COLUMNS`` value) needs this many labelled rows."""
    max_slice_auc_drop: float = 0.10
    """A slice's baseline ROC AUC minus its live ROC AUC above this is a drop too."""
    max_error_increase: float = 0.10
    """Regression: live error (the gate's metric, RMSE or MAE) above the reference error
    by more than this share (0.10: 10 % worse) is a ``performance_drop``. Relative,
    because errors are in the label's own units, which differ per dataset."""
    max_slice_error_increase: float = 0.25
    """Regression: the same per slice, against the baseline rows' slice error (wider:
    training rows flatter the model)."""

    def __post_init__(self) -> None:
        problems = []
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                problems.append(f"{item.name}={value!r} is not a number")
            elif value < 0:
                problems.append(f"{item.name}={value} is negative")
        if self.psi_bins < 2:
            problems.append(f"psi_bins={self.psi_bins} must be at least 2")
        for name in ("p_value", "min_category_share", "max_null_rate_increase", "max_out_of_range_rate", "max_unseen_category_rate"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name}={getattr(self, name)} must lie in [0, 1]")
        if self.min_rows < 1:
            problems.append(f"min_rows={self.min_rows} must be at least 1")
        if problems:
            raise ValueError("invalid monitor thresholds: " + "; ".join(problems))
