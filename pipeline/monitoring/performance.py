"""Live model performance once ground-truth labels arrive, overall and per slice.

ROC AUC is the measure because the gate and the registered holdout metrics use it and it
does not depend on the decision threshold. The overall reference is the model version's
holdout ROC AUC tag when there is one (the honest estimate), else the AUC on the baseline
rows, which are training rows and so flatter the model; per slice
(``pipeline.schema.SLICE_COLUMNS``) the reference is the baseline rows' slice AUC, with a
wider limit for that reason. Too few labels, or a single class, leaves performance
unjudged rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from pipeline.monitoring.thresholds import Thresholds
from pipeline import schema


@dataclass(frozen=True)
class SlicePerformance:
    """ROC AUC of one slice value, live and on the baseline rows."""

    column: str
    value: str
    labelled_rows: int
    live_roc_auc: float | None
    baseline_roc_auc: float | None
    drop: float | None
    dropped: bool
    note: str = ""


@dataclass(frozen=True)
class Performance:
    """What the labels say about the model on this window."""

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


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC, or None when only one class is present (AUC is undefined then)."""
    if labels.size == 0 or np.unique(labels).size < 2:
        return None
    return float(roc_auc_score(labels, scores))


def evaluate_performance(
    features: pd.DataFrame,
    labels: np.ndarray,
    probabilities: np.ndarray,
    predictions: np.ndarray,
    baseline: pd.DataFrame,
    holdout_roc_auc: float | None,
    thresholds: Thresholds,
) -> Performance:
    """Live ROC AUC and accuracy on the labelled rows, compared with the reference.

    ``labels`` is aligned with ``features`` (NaN where no label arrived); ``baseline``
    needs ``label`` and ``prediction`` for the fallback and slice references.
    """
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
        return Performance("insufficient", count, live_auc, note=f"{count} labelled rows, {why}: performance not judged")
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
                                 slice_drop is not None and slice_drop > thresholds.max_slice_auc_drop, note)
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
    )
