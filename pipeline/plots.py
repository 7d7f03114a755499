"""Figures a person would rather look at than read: ROC curve, confusion matrix, slices.

Drawn with matplotlib's Agg backend (no display needed, safe in CI and in SageMaker
containers) and saved as PNG files that the register step logs onto the MLflow run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _roc_points(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    order = np.argsort(-scores, kind="mergesort")
    ys = np.asarray(y)[order].astype(int)
    tps = np.r_[0, np.cumsum(ys)]
    fps = np.r_[0, np.cumsum(1 - ys)]
    return fps / max(fps[-1], 1), tps / max(tps[-1], 1)


def roc_curve_png(y: np.ndarray, challenger: np.ndarray, champion: np.ndarray | None, path: Path) -> Path:
    """ROC curves of the challenger (and the champion, when there is one) on the holdout."""
    from pipeline.steps.evaluate import roc_auc

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for label, scores in (("challenger", challenger), ("champion", champion)):
        if scores is None:
            continue
        fpr, tpr = _roc_points(y, scores)
        ax.plot(fpr, tpr, label=f"{label} (AUC {roc_auc(y, scores):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve (holdout)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def confusion_matrix_png(y: np.ndarray, proba: np.ndarray, path: Path, threshold: float = 0.5) -> Path:
    """The challenger's confusion matrix on the holdout at the decision threshold."""
    import numpy as np

    plt = _pyplot()
    y = np.asarray(y).astype(int)
    pred = (np.asarray(proba) >= threshold).astype(int)
    matrix = np.array([[((y == t) & (pred == p)).sum() for p in (0, 1)] for t in (0, 1)])
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", color="black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xlabel="predicted", ylabel="actual", title="Confusion matrix (holdout)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def slice_metrics_png(slices: list[dict[str, Any]], path: Path) -> Path:
    """Horizontal bars of ROC AUC per slice, challenger beside champion where known."""
    import numpy as np

    plt = _pyplot()
    labels = [f"{s['column']}={s['value']} (n={s['rows']})" for s in slices]
    challenger = [s["challenger_roc_auc"] for s in slices]
    champion = [s.get("champion_roc_auc") for s in slices]
    y = np.arange(len(slices))
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(slices) + 1.5))
    ax.barh(y - 0.2, challenger, height=0.4, label="challenger")
    if any(c is not None for c in champion):
        ax.barh(y + 0.2, [c if c is not None else 0 for c in champion], height=0.4, label="champion")
    ax.set_yticks(y, labels)
    ax.set_xlim(0.5, 1.0)
    ax.set(xlabel="ROC AUC", title="ROC AUC per slice (holdout)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
