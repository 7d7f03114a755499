"""Live model performance once ground-truth labels arrive, overall and per slice.

Binary classification: ROC AUC is the measure because the gate and the registered
holdout metrics use it and it does not depend on the decision threshold. The overall
reference is the model version's holdout ROC AUC when there is one (the honest estimate),
else the AUC on the baseline rows, which are training rows and so flatter the model; per
slice (``pipeline.schema.SLICE_COLUMNS``) the reference is the baseline rows' slice AUC,
with a wider limit for that reason. A drop is in AUC points.

Regression: the error the gate judges by (``schema.GATE_METRIC``, RMSE or MAE; both are
reported) of the predicted values, against the version's ``holdout_<metric>`` or else the
baseline rows' error, overall and per slice. A drop is the *relative* increase
(live / reference - 1), because errors are in the label's own units.

Too few labels, or a single class, leaves performance unjudged rather than guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from pipeline.monitoring.thresholds import Thresholds
from pipeline import schema


REGRESSION_METRICS: Final = ("rmse", "mae")


@dataclass(frozen=True)
class SlicePerformance:
    """The measure of one slice value, live and on the baseline rows.

    ``live_value``/``baseline_value`` hold ``metric``; for a binary model
    ``live_roc_auc``/``baseline_roc_auc`` repeat them under their historical names."""

    column: str
    value: str
    labelled_rows: int
    live_roc_auc: float | None
    baseline_roc_auc: float | None
    drop: float | None
    dropped: bool
    note: str = ""
    metric: str = "roc_auc"
    live_value: float | None = None
    baseline_value: float | None = None


@dataclass(frozen=True)
class Performance:
    """What the labels say about the model on this window.

    ``metric`` is what was judged (``roc_auc``, ``rmse`` or ``mae``) and ``drop`` how much
    worse live is than the reference: AUC points for ``roc_auc``, the relative error
    increase for an error."""

    status: Literal["measured", "insufficient", "no_labels"]
    labelled_rows: int
    live_roc_auc: float | None = None
    live_accuracy: float | None = None
    reference_roc_auc: float | None = None
    reference_source: str = ""
    drop: float | None = None
    dropped: bool = False
    slices: list[SlicePerformance] = field(default_factory=list)
    note: str = ""
    metric: str = "roc_auc"
    live_value: float | None = None
    reference_value: float | None = None
    live_rmse: float | None = None
    live_mae: float | None = None


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC, or None when only one class is present (AUC is undefined then)."""
    if labels.size == 0 or np.unique(labels).size < 2:
        return None
    return float(roc_auc_score(labels, scores))


def _error(metric: str, labels: np.ndarray, predictions: np.ndarray) -> float | None:
    """RMSE or MAE, None on no rows."""
    if labels.size == 0:
        return None
    residuals = predictions - labels
    return float(np.sqrt(np.mean(residuals**2))) if metric == "rmse" else float(np.mean(np.abs(residuals)))


def _increase(live: float | None, reference: float | None) -> float | None:
    """Relative increase of an error; None when either is unknown or the reference is 0
    (a perfect reference leaves any error infinitely worse: not a usable ratio)."""
    if live is None or reference is None or reference <= 0:
        return None
    return live / reference - 1.0


def evaluate_performance(
    features: pd.DataFrame,
    labels: np.ndarray,
    probabilities: np.ndarray,
    predictions: np.ndarray,
    baseline: pd.DataFrame,
    holdout_roc_auc: float | None,
    thresholds: Thresholds,
    holdout_metrics: Mapping[str, float] | None = None,
) -> Performance:
    """Judge the labelled rows of the window by the active task (see the module doc).

    ``labels`` is aligned with ``features`` (NaN where no label arrived) and is the
    model's target (``schema.target``: 0/1, or the value); ``baseline`` needs the label
    and ``prediction`` for the fallback and slice references. ``holdout_metrics`` holds
    the version's ``holdout_*`` metrics by name (``rmse``, ``mae``) for regression.
    """
    if not schema.IS_CLASSIFIER:
        return _regression(features, labels, predictions, baseline, thresholds, holdout_metrics or {})
    return _binary(features, labels, probabilities, predictions, baseline, holdout_roc_auc, thresholds)


def _binary(
    features: pd.DataFrame,
    labels: np.ndarray,
    probabilities: np.ndarray,
    predictions: np.ndarray,
    baseline: pd.DataFrame,
    holdout_roc_auc: float | None,
    thresholds: Thresholds,
) -> Performance:
    """Live ROC AUC and accuracy on the labelled rows, compared with the reference."""
    # Rows captured without a probability (a model with no predict_proba) cannot be scored.
    mask = ~np.isnan(labels) & np.isfinite(probabilities)
    count = int(mask.sum())
    if count == 0:
        return Performance("no_labels", 0, note="no labels for this window")
    y = labels[mask].astype(np.int64)
    p = probabilities[mask]
    live_auc = _auc(y, p)
    if count < thresholds.min_labelled_rows or live_auc is None:
        why = "a single class" if live_auc is None else f"fewer than min_labelled_rows={thresholds.min_labelled_rows}"
        return Performance("insufficient", count, live_roc_auc=live_auc, live_value=live_auc,
                           note=f"{count} labelled rows, {why}: performance not judged")
    has_baseline_labels = schema.LABEL in baseline.columns and "prediction" in baseline.columns
    reference: float | None
    if holdout_roc_auc is not None:
        reference, source = holdout_roc_auc, "model version holdout metric"
    elif has_baseline_labels:
        reference, source = _auc(baseline[schema.LABEL].to_numpy(), baseline["prediction"].to_numpy()), "baseline rows (training data)"
    else:
        reference, source = None, "none"
    drop = None if reference is None else reference - live_auc
    slices: list[SlicePerformance] = []
    live_labelled = features.loc[mask]
    for column in schema.SLICE_COLUMNS:
        for value in sorted(live_labelled[column].dropna().unique()):
            in_slice = (live_labelled[column] == value).to_numpy()
            rows = int(in_slice.sum())
            slice_auc = _auc(y[in_slice], p[in_slice]) if rows >= thresholds.min_slice_rows else None
            base_auc = None
            if has_baseline_labels:
                base_rows = baseline[column] == value
                base_auc = _auc(baseline.loc[base_rows, schema.LABEL].to_numpy(), baseline.loc[base_rows, "prediction"].to_numpy())
            slice_drop = None if slice_auc is None or base_auc is None else base_auc - slice_auc
            note = "" if slice_auc is not None else f"{rows} labelled rows (needs {thresholds.min_slice_rows}, both classes)"
            slices.append(
                SlicePerformance(column, str(value), rows, slice_auc, base_auc, slice_drop,
                                 slice_drop is not None and slice_drop > thresholds.max_slice_auc_drop, note,
                                 live_value=slice_auc, baseline_value=base_auc)
            )
    return Performance(
        status="measured",
        labelled_rows=count,
        live_roc_auc=live_auc,
        live_accuracy=float(np.mean(predictions[mask] == y)),
        reference_roc_auc=reference,
        reference_source=source,
        drop=drop,
        dropped=drop is not None and drop > thresholds.max_auc_drop,
        slices=slices,
        live_value=live_auc,
        reference_value=reference,
    )


def _regression(
    features: pd.DataFrame,
    labels: np.ndarray,
    predictions: np.ndarray,
    baseline: pd.DataFrame,
    thresholds: Thresholds,
    holdout_metrics: Mapping[str, float],
) -> Performance:
    """Live RMSE and MAE of the predicted values on the labelled rows; the gate's metric
    is judged against the reference by its relative increase."""
    metric = schema.GATE_METRIC if schema.GATE_METRIC in REGRESSION_METRICS else REGRESSION_METRICS[0]
    mask = np.isfinite(labels) & np.isfinite(predictions)
    count = int(mask.sum())
    if count == 0:
        return Performance("no_labels", 0, metric=metric, note="no labels for this window")
    y, predicted = labels[mask], predictions[mask]
    live = _error(metric, y, predicted)
    if count < thresholds.min_labelled_rows:
        return Performance("insufficient", count, metric=metric, live_value=live,
                           note=f"{count} labelled rows, fewer than min_labelled_rows={thresholds.min_labelled_rows}: "
                                "performance not judged")
    has_baseline_labels = schema.LABEL in baseline.columns and "prediction" in baseline.columns
    reference: float | None
    if holdout_metrics.get(metric) is not None:
        reference, source = float(holdout_metrics[metric]), "model version holdout metric"
    elif has_baseline_labels:
        reference = _error(metric, baseline[schema.LABEL].to_numpy(dtype=np.float64), baseline["prediction"].to_numpy(dtype=np.float64))
        source = "baseline rows (training data)"
    else:
        reference, source = None, "none"
    increase = _increase(live, reference)
    slices: list[SlicePerformance] = []
    live_labelled = features.loc[mask]
    for column in schema.SLICE_COLUMNS:
        for value in sorted(live_labelled[column].dropna().unique()):
            in_slice = (live_labelled[column] == value).to_numpy()
            rows = int(in_slice.sum())
            slice_live = _error(metric, y[in_slice], predicted[in_slice]) if rows >= thresholds.min_slice_rows else None
            base_value = None
            if has_baseline_labels:
                base_rows = (baseline[column] == value).to_numpy()
                base_value = _error(metric, baseline.loc[base_rows, schema.LABEL].to_numpy(dtype=np.float64),
                                    baseline.loc[base_rows, "prediction"].to_numpy(dtype=np.float64))
            slice_increase = _increase(slice_live, base_value)
            note = "" if slice_live is not None else f"{rows} labelled rows (needs {thresholds.min_slice_rows})"
            slices.append(
                SlicePerformance(column, str(value), rows, None, None, slice_increase,
                                 slice_increase is not None and slice_increase > thresholds.max_slice_error_increase,
                                 note, metric=metric, live_value=slice_live, baseline_value=base_value)
            )
    return Performance(
        status="measured",
        labelled_rows=count,
        reference_source=source,
        drop=increase,
        dropped=increase is not None and increase > thresholds.max_error_increase,
        slices=slices,
        metric=metric,
        live_value=live,
        reference_value=reference,
        live_rmse=_error("rmse", y, predicted),
        live_mae=_error("mae", y, predicted),
    )
