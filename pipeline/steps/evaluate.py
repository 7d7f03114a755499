"""Evaluate step: how good a model is on the frozen holdout, overall, per slice and for fairness.

Metrics are computed from predicted probabilities (so champion and challenger can be
compared on the same rows without refitting anything): ROC AUC and friends overall,
the same per value of each ``schema.SLICE_COLUMNS`` attribute, and two group-fairness gaps
across ``schema.SENSITIVE_ATTRIBUTE``: demographic parity difference (spread of positive
prediction rates) and equal-opportunity difference (spread of true-positive rates).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline import schema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

DECISION_THRESHOLD = 0.5
"""Probability above which a row is predicted positive (the model's ``predict``)."""


def weighted_roc_auc(y: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC for each row of ``weights`` (resample counts), ties counted as one half.

    A bootstrap resample is the original rows with integer multiplicities, so sorting
    the scores once and summing weights per tied-score group scores a whole batch of
    resamples with a few vectorised passes instead of one sort per resample.
    """
    import numpy as np

    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    w = weights[:, order]
    positive = y[order].astype(bool)
    pos = np.add.reduceat(np.where(positive, w, 0), starts, axis=1)
    neg = np.add.reduceat(np.where(positive, 0, w), starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    total_pos = pos.sum(axis=1)
    total_neg = neg.sum(axis=1)
    return (pos * (neg_below + 0.5 * neg)).sum(axis=1) / (total_pos * total_neg)


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney, ties counted one half); NaN when only one class is present.

    Hand-rolled rather than sklearn's because the gate's bootstrap shares the same
    kernel and sklearn spends most of its time on input checks.
    """
    import numpy as np

    y = np.asarray(y_true).astype(int)
    if len(y) == 0 or y.min() == y.max():
        return float("nan")
    return float(weighted_roc_auc(y, np.asarray(scores, dtype=float), np.ones((1, len(y))))[0])


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """ROC AUC, accuracy, precision, recall, F1, log loss and Brier score of probabilities."""
    import numpy as np

    y = np.asarray(y_true).astype(int)
    p = np.clip(np.asarray(proba, dtype=float), 1e-15, 1 - 1e-15)
    pred = (p >= DECISION_THRESHOLD).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "roc_auc": roc_auc(y, p),
        "accuracy": float((pred == y).mean()) if len(y) else float("nan"),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))) if len(y) else float("nan"),
        "brier": float(np.mean((p - y) ** 2)) if len(y) else float("nan"),
    }


def slice_metrics(holdout: pd.DataFrame, proba: np.ndarray) -> list[dict[str, Any]]:
    """Per value of every slice attribute: row count, positives, ROC AUC and accuracy."""
    import numpy as np

    rows: list[dict[str, Any]] = []
    y = holdout[schema.LABEL].to_numpy()
    for column in schema.SLICE_COLUMNS:
        values = holdout[column].astype("string").fillna("<missing>").to_numpy()
        for value in sorted(set(values)):
            mask = values == value
            m = classification_metrics(y[mask], np.asarray(proba)[mask])
            rows.append(
                {
                    "column": column,
                    "value": str(value),
                    "rows": int(mask.sum()),
                    "positives": int(y[mask].sum()),
                    "roc_auc": m["roc_auc"],
                    "accuracy": m["accuracy"],
                }
            )
    return rows


def fairness_metrics(holdout: pd.DataFrame, proba: np.ndarray) -> dict[str, Any]:
    """Demographic-parity and equal-opportunity differences across ``schema.SENSITIVE_ATTRIBUTE``.

    Each is the largest minus the smallest per-group rate (positive prediction rate;
    true-positive rate among actual positives), so 0 means parity; groups are reported.

    Written out rather than taken from fairlearn: its ``true_positive_rate`` gives 0.0 for
    a group with no positives (so such a group would read as the widest possible gap), and
    importing it costs seconds on every run; the arithmetic is two rates per group.
    """
    import numpy as np

    y = holdout[schema.LABEL].to_numpy().astype(int)
    pred = (np.asarray(proba) >= DECISION_THRESHOLD).astype(int)
    groups = holdout[schema.SENSITIVE_ATTRIBUTE].astype("string").fillna("<missing>").to_numpy()
    per_group: dict[str, dict[str, float]] = {}
    for group in sorted(set(groups)):
        mask = groups == group
        positives = mask & (y == 1)
        per_group[str(group)] = {
            "rows": int(mask.sum()),
            "positives": int(positives.sum()),
            "selection_rate": float(pred[mask].mean()) if mask.any() else float("nan"),
            "true_positive_rate": float(pred[positives].mean()) if positives.any() else float("nan"),
        }
    selection = [g["selection_rate"] for g in per_group.values() if g["selection_rate"] == g["selection_rate"]]
    tpr = [g["true_positive_rate"] for g in per_group.values() if g["true_positive_rate"] == g["true_positive_rate"]]
    return {
        "attribute": schema.SENSITIVE_ATTRIBUTE,
        "demographic_parity_difference": float(max(selection) - min(selection)) if selection else float("nan"),
        "equal_opportunity_difference": float(max(tpr) - min(tpr)) if len(tpr) >= 2 else float("nan"),
        "groups": per_group,
    }


@dataclass(frozen=True)
class Evaluation:
    """A model's scores on the holdout: overall, per slice and fairness."""

    metrics: dict[str, float]
    slices: list[dict[str, Any]]
    fairness: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "slices": self.slices, "fairness": self.fairness}


def evaluate(holdout: pd.DataFrame, proba: np.ndarray) -> Evaluation:
    """Score probabilities ``proba`` (one per holdout row) against the holdout's labels."""
    if len(proba) != len(holdout):
        raise ValueError(f"{len(proba)} probabilities for {len(holdout)} holdout rows")
    return Evaluation(
        metrics=classification_metrics(holdout[schema.LABEL].to_numpy(), proba),
        slices=slice_metrics(holdout, proba),
        fairness=fairness_metrics(holdout, proba),
    )


def predict_proba(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """Probability of ``label == 1`` for each row, from a fitted sklearn-style classifier."""
    from pipeline import schema

    return model.predict_proba(frame.loc[:, list(schema.FEATURES)])[:, 1]
