"""Evaluate step: how good a model is on the frozen holdout, overall, per slice and for fairness.

Metrics are computed from the model's scores on the holdout (``predictions``), so champion
and challenger are compared on the same rows without refitting anything. What a score is
and which metrics apply follow the active project's task (``schema.TASK``):

- binary: the positive class's probability; ROC AUC and friends overall, the same per
  value of each ``schema.SLICE_COLUMNS`` attribute, and two group-fairness gaps across
  ``schema.SENSITIVE_ATTRIBUTE``: demographic parity difference (spread of positive
  prediction rates) and equal-opportunity difference (spread of true-positive rates);
- regression: the predicted value; RMSE, MAE and R² overall, RMSE and MAE per slice
  value, and each sensitive group's error (``group_errors``) with the worst group's
  error over the best's.

The label always comes through ``schema.target`` (0/1 for the positive class, floats for
regression), never the raw column: a binary label may be written "yes"/"no".
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


REGRESSION_ERRORS = ("rmse", "mae")
"""The error metrics a regression gate may compare (``gate.metric``); lower is better."""


def regression_metrics(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R² of predictions (R² is NaN when the label is constant or empty)."""
    import numpy as np

    y = np.asarray(y_true, dtype=float)
    residuals = np.asarray(predicted, dtype=float) - y
    if not len(y):
        return {"rmse": float("nan"), "mae": float("nan"), "r2": float("nan")}
    total = float(((y - y.mean()) ** 2).sum())
    return {
        "rmse": float(np.sqrt(np.mean(residuals**2))),
        "mae": float(np.mean(np.abs(residuals))),
        "r2": 1.0 - float((residuals**2).sum()) / total if total > 0 else float("nan"),
    }


def _slice_values(holdout: pd.DataFrame, column: str) -> np.ndarray:
    """A column's values as the slice names the report uses (a missing value is its own slice)."""
    return holdout[column].astype("string").fillna("<missing>").to_numpy()


def slice_metrics(holdout: pd.DataFrame, scores: np.ndarray) -> list[dict[str, Any]]:
    """Per value of every slice attribute: row count and the task's slice metrics.

    Binary: positives, ROC AUC and accuracy. Regression: RMSE and MAE."""
    import numpy as np

    rows: list[dict[str, Any]] = []
    y = schema.target(holdout)
    scores = np.asarray(scores)
    for column in schema.SLICE_COLUMNS:
        values = _slice_values(holdout, column)
        for value in sorted(set(values)):
            mask = values == value
            entry: dict[str, Any] = {"column": column, "value": str(value), "rows": int(mask.sum())}
            if schema.IS_CLASSIFIER:
                m = classification_metrics(y[mask], scores[mask])
                entry.update(positives=int(y[mask].sum()), roc_auc=m["roc_auc"], accuracy=m["accuracy"])
            else:
                m = regression_metrics(y[mask], scores[mask])
                entry.update(rmse=m["rmse"], mae=m["mae"])
            rows.append(entry)
    return rows


def group_errors(holdout: pd.DataFrame, predicted: np.ndarray) -> dict[str, Any]:
    """Each group's RMSE and MAE across ``schema.SENSITIVE_ATTRIBUTE`` (regression).

    ``error_ratio`` is the worst group's ``schema.GATE_METRIC`` over the best group's (1
    means every group is served equally well; infinite when the best group's error is 0
    and another's is not), across every group; the gate recomputes it over the groups
    with enough rows. With no sensitive attribute there are no groups and no ratio."""
    import numpy as np

    metric = schema.GATE_METRIC
    attribute = schema.SENSITIVE_ATTRIBUTE
    result: dict[str, Any] = {"attribute": attribute, "metric": metric, "groups": {}, "worst_group": None,
                              "best_group": None, "error_ratio": float("nan")}
    if attribute is None:
        return result
    y = schema.target(holdout)
    predicted = np.asarray(predicted, dtype=float)
    groups = _slice_values(holdout, attribute)
    per_group: dict[str, dict[str, Any]] = {}
    for group in sorted(set(groups)):
        mask = groups == group
        per_group[str(group)] = {"rows": int(mask.sum()), **{k: v for k, v in
                                 regression_metrics(y[mask], predicted[mask]).items() if k in REGRESSION_ERRORS}}
    result["groups"] = per_group
    result.update(error_ratio_of(per_group, metric))
    return result


def error_ratio_of(groups: dict[str, dict[str, Any]], metric: str) -> dict[str, Any]:
    """The worst and best group by ``metric`` and the ratio of their errors (NaN below two groups)."""
    if len(groups) < 2:
        return {"worst_group": None, "best_group": None, "error_ratio": float("nan")}
    worst = max(groups, key=lambda g: groups[g][metric])
    best = min(groups, key=lambda g: groups[g][metric])
    high, low = groups[worst][metric], groups[best][metric]
    ratio = high / low if low > 0 else (1.0 if high == 0 else float("inf"))
    return {"worst_group": worst, "best_group": best, "error_ratio": float(ratio)}


def fairness_metrics(holdout: pd.DataFrame, proba: np.ndarray) -> dict[str, Any]:
    """Demographic-parity and equal-opportunity differences across ``schema.SENSITIVE_ATTRIBUTE``.

    With no sensitive attribute configured both gaps are NaN and there are no groups.
    Each is the largest minus the smallest per-group rate (positive prediction rate;
    true-positive rate among actual positives), so 0 means parity; groups are reported.

    Written out rather than taken from fairlearn: its ``true_positive_rate`` gives 0.0 for
    a group with no positives (so such a group would read as the widest possible gap), and
    importing it costs seconds on every run; the arithmetic is two rates per group.
    """
    import numpy as np

    if schema.SENSITIVE_ATTRIBUTE is None:
        return {"attribute": None, "demographic_parity_difference": float("nan"),
                "equal_opportunity_difference": float("nan"), "groups": {}}
    y = schema.target(holdout)
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
    """A model's scores on the holdout: overall, per slice and fairness.

    ``fairness`` holds the binary fairness gaps (``fairness_metrics``) or, for
    regression, the sensitive groups' errors (``group_errors``)."""

    metrics: dict[str, float]
    slices: list[dict[str, Any]]
    fairness: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "slices": self.slices, "fairness": self.fairness}


def check_scores(scores: np.ndarray, rows: int, what: str = "challenger") -> np.ndarray:
    """``scores`` as floats, refused (``ValueError`` naming ``what``) unless there is one
    finite score per holdout row: a NaN or infinite prediction would make every metric
    and comparison meaningless, and the gate fails closed on it instead."""
    import numpy as np

    kind = "probabilities" if schema.IS_CLASSIFIER else "predictions"
    values = np.asarray(scores, dtype=float)
    if values.ndim != 1 or len(values) != rows:
        raise ValueError(f"{len(values)} {what} {kind} for {rows} holdout rows")
    bad = int((~np.isfinite(values)).sum())
    if bad:
        raise ValueError(f"{bad} of the {what}'s {rows} {kind} are not finite numbers (NaN or infinite)")
    return values


def evaluate(holdout: pd.DataFrame, scores: np.ndarray) -> Evaluation:
    """Score ``scores`` (``predictions``: one per holdout row) against the holdout's labels.

    Raises ``ValueError`` when their number differs from the holdout's rows or any is
    not finite."""
    scores = check_scores(scores, len(holdout))
    y = schema.target(holdout)
    if schema.IS_CLASSIFIER:
        return Evaluation(
            metrics=classification_metrics(y, scores),
            slices=slice_metrics(holdout, scores),
            fairness=fairness_metrics(holdout, scores),
        )
    return Evaluation(
        metrics=regression_metrics(y, scores),
        slices=slice_metrics(holdout, scores),
        fairness=group_errors(holdout, scores),
    )


def predictions(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """The model's score of each row, as the active task's gate compares them.

    Binary: the positive class's probability (column 1 of ``predict_proba``; the
    trainer learns ``schema.target``, so class 1 is the positive class). Regression:
    ``predict``, as floats. Raises ``TypeError`` naming the method a model lacks."""
    import numpy as np

    method = "predict_proba" if schema.IS_CLASSIFIER else "predict"
    if not callable(getattr(model, method, None)):
        raise TypeError(f"a {schema.TASK} model must have {method}(); {type(model).__name__} has none "
                        f"(the training entry point returned the wrong kind of estimator)")
    features = frame.loc[:, list(schema.FEATURES)]
    if schema.IS_CLASSIFIER:
        return model.predict_proba(features)[:, 1]
    return np.asarray(model.predict(features), dtype=float).reshape(-1)


predict_proba = predictions
"""The name earlier callers use (``pipeline.commands.step``, the register step's
monitoring baseline): the same scores, for either task."""
