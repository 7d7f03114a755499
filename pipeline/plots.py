"""Figures a person would rather look at than read: how the challenger scores beside the
champion, where it is miscalibrated, which slices moved, and how sure the gate was.

Drawn on matplotlib ``Figure`` objects with the Agg canvas (no pyplot global state, no
display: safe in CI and in SageMaker containers) and saved as PNG files that the register
step logs onto the MLflow run under ``plots/`` (docs/pipeline.md, "Pictures"). Curves
come from scikit-learn's metric functions, so they match what anyone else would compute.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from matplotlib.figure import Figure

GATE_PLOT_FILES: Final = (
    "roc_curve.png",
    "precision_recall.png",
    "calibration.png",
    "confusion_matrix.png",
    "slice_metrics.png",
    "bootstrap_auc_difference.png",
)
"""Every picture the gate step can draw for a binary model; the last two need slices and a champion."""
REGRESSION_GATE_PLOT_FILES: Final = (
    "predicted_vs_actual.png",
    "residuals_by_slice.png",
    "bootstrap_error_difference.png",
)
"""Every picture the gate step can draw for a regression model; the second needs slice
columns (and the holdout's rows), the last a champion."""
DPI: Final = 100


def _figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas with constrained layout (labels never clipped)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=DPI)
    return path


def _models(challenger: np.ndarray, champion: np.ndarray | None) -> list[tuple[str, np.ndarray]]:
    return [(name, scores) for name, scores in (("challenger", challenger), ("champion", champion)) if scores is not None]


def roc_curve_png(y: np.ndarray, challenger: np.ndarray, champion: np.ndarray | None, path: Path) -> Path:
    """ROC curves of the challenger (and the champion, when there is one) on the holdout."""
    from sklearn.metrics import roc_auc_score, roc_curve

    figure = _figure(5, 5)
    ax = figure.add_subplot()
    for name, scores in _models(challenger, champion):
        fpr, tpr, _ = roc_curve(y, scores)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, scores):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve (holdout)")
    ax.legend(loc="lower right")
    return _save(figure, path)


def precision_recall_png(y: np.ndarray, challenger: np.ndarray, champion: np.ndarray | None, path: Path) -> Path:
    """Precision against recall for both models, with the positive rate (a random
    model's precision) marked: the honest picture when positives are the minority."""
    import numpy as np
    from sklearn.metrics import average_precision_score, precision_recall_curve

    figure = _figure(5, 5)
    ax = figure.add_subplot()
    for name, scores in _models(challenger, champion):
        precision, recall, _ = precision_recall_curve(y, scores)
        ax.plot(recall, precision, label=f"{name} (AP {average_precision_score(y, scores):.3f})")
    base = float(np.mean(y))
    ax.axhline(base, linestyle="--", color="grey", linewidth=1, label=f"positive rate {base:.2f}")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (holdout)", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower left")
    return _save(figure, path)


def calibration_png(y: np.ndarray, challenger: np.ndarray, champion: np.ndarray | None, path: Path) -> Path:
    """Reliability diagram: mean predicted probability against the observed positive rate
    per decile of predictions (quantile bins, so every point rests on as many rows)."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    figure = _figure(5, 5)
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    for name, scores in _models(challenger, champion):
        observed, predicted = calibration_curve(y, scores, n_bins=10, strategy="quantile")
        ax.plot(predicted, observed, marker="o", label=f"{name} (Brier {brier_score_loss(y, scores):.3f})")
    ax.set(xlabel="mean predicted probability", ylabel="observed positive rate", title="Calibration (holdout)",
           xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left")
    return _save(figure, path)


def confusion_matrix_png(y: np.ndarray, proba: np.ndarray, path: Path, threshold: float = 0.5) -> Path:
    """The challenger's confusion matrix on the holdout at the decision threshold."""
    import numpy as np
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(np.asarray(y).astype(int), (np.asarray(proba) >= threshold).astype(int), labels=[0, 1])
    figure = _figure(4, 4)
    ax = figure.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", color="black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xlabel="predicted", ylabel="actual",
           title=f"Confusion matrix (holdout, threshold {threshold})")
    return _save(figure, path)


def slice_metrics_png(slices: list[dict[str, Any]], path: Path, tolerance: float | None = None) -> Path:
    """ROC AUC per slice, challenger beside champion (``slice_figure``), as a PNG."""
    return _save(slice_figure(slices, tolerance), path)


def slice_figure(slices: list[dict[str, Any]], tolerance: float | None = None) -> Figure:
    """ROC AUC per slice, challenger beside champion, with the change written at each row.

    The legend sits above the axes, outside them, so it never covers a bar; slices the
    gate skipped (too small to judge) are greyed, and a change beyond ``tolerance`` is red.
    """
    import numpy as np

    labels = [f"{s['column']}={s['value']} (n={s['rows']})" for s in slices]
    challenger = np.array([_nan(s["challenger_roc_auc"]) for s in slices])
    champion = np.array([_nan(s.get("champion_roc_auc")) for s in slices])
    has_champion = bool(np.isfinite(champion).any())
    y = np.arange(len(slices))
    figure = _figure(8, 0.5 * len(slices) + 1.8)
    ax = figure.add_subplot()
    skipped = [str(s.get("judged", "")).startswith("skipped") for s in slices]
    ax.barh(y - 0.2, np.nan_to_num(challenger), height=0.4, label="challenger",
            color=["tab:gray" if skip else "tab:blue" for skip in skipped])
    if has_champion:
        ax.barh(y + 0.2, np.nan_to_num(champion), height=0.4, label="champion", color="tab:orange")
    finite = np.concatenate([challenger[np.isfinite(challenger)], champion[np.isfinite(champion)]])
    low = max(0.0, float(finite.min()) - 0.05) if finite.size else 0.0
    ax.set_xlim(low, 1.0)
    for row, s in enumerate(slices):
        change = s.get("change")
        if change is None or change != change:
            continue
        bad = tolerance is not None and change < -tolerance and not skipped[row]
        # x in axes fraction (just right of the plot), y in data rows.
        ax.text(1.01, row, f"{change:+.3f}", va="center", fontsize=8, color="tab:red" if bad else "black",
                transform=ax.get_yaxis_transform(), clip_on=False)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set(xlabel="ROC AUC (holdout); change challenger - champion at the right", title="ROC AUC per slice")
    figure.legend(loc="outside upper right", ncols=2, frameon=False)
    return figure


def _nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


def bootstrap_png(bootstrap: dict[str, Any], differences: np.ndarray, path: Path) -> Path:
    """The paired bootstrap's distribution of AUC(challenger) - AUC(champion), its
    confidence interval, and the tolerance the interval's lower end must not cross."""
    import numpy as np

    tolerance = float(bootstrap["tolerance"])
    low, high = float(bootstrap["ci_low"]), float(bootstrap["ci_high"])
    figure = _figure(7, 4.8)
    ax = figure.add_subplot()
    ax.hist(np.asarray(differences, dtype=float), bins=40, color="tab:blue", alpha=0.7,
            label=f"{len(differences)} paired resamples")
    ax.axvspan(low, high, color="tab:green" if low >= -tolerance else "tab:red", alpha=0.15,
               label=f"{bootstrap['confidence']:.0%} interval [{low:+.4f}, {high:+.4f}]")
    ax.axvline(-tolerance, color="tab:red", linestyle="--", label=f"tolerance -{tolerance}")
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.axvline(float(bootstrap["observed_difference"]), color="tab:blue", linestyle=":",
               label=f"observed {bootstrap['observed_difference']:+.4f}")
    verdict = "within tolerance" if low >= -tolerance else "below tolerance: refused"
    ax.set(xlabel="ROC AUC difference (challenger - champion)", ylabel="resamples",
           title=f"Paired bootstrap: {verdict}")
    figure.legend(loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    return _save(figure, path)


MAX_SCATTER_POINTS: Final = 5000
"""Rows drawn in the predicted-against-actual scatter (a fixed random subset beyond it):
more points only darken the cloud and slow the PNG."""


def predicted_vs_actual_png(y: np.ndarray, challenger: np.ndarray, champion: np.ndarray | None, path: Path) -> Path:
    """Each holdout row's prediction against its label for both models, on the identity
    line a perfect model would sit on, with each model's RMSE."""
    import numpy as np

    y = np.asarray(y, dtype=float)
    rows = np.arange(len(y))
    if len(rows) > MAX_SCATTER_POINTS:
        rows = np.sort(np.random.default_rng(0).choice(rows, MAX_SCATTER_POINTS, replace=False))
    figure = _figure(5.5, 5.5)
    ax = figure.add_subplot()
    for (name, predicted), color in zip(_models(challenger, champion), ("tab:blue", "tab:orange"), strict=False):
        predicted = np.asarray(predicted, dtype=float)
        rmse = float(np.sqrt(np.mean((predicted - y) ** 2)))
        ax.scatter(y[rows], predicted[rows], s=6, alpha=0.35, color=color, label=f"{name} (RMSE {rmse:.3g})")
    low, high = float(np.min(y)), float(np.max(y))
    ax.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=1, label="perfect")
    ax.set(xlabel="actual", ylabel="predicted", title="Predicted against actual (holdout)")
    ax.legend(loc="upper left", fontsize=8)
    return _save(figure, path)


def residuals_by_slice_png(
    frame: pd.DataFrame,
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray | None,
    columns: tuple[str, ...],
    path: Path,
    refused: frozenset[str] = frozenset(),
) -> Path:
    """Box plots of the residuals (prediction - actual) per value of every slice column,
    challenger beside champion: a slice whose box widens or shifts off zero is where a
    model got worse, even when the overall error improved. Slices named in ``refused``
    (``column=value``, the gate's slice refusals) have red labels."""
    import numpy as np

    y = np.asarray(y, dtype=float)
    groups: list[tuple[str, np.ndarray]] = []
    for column in columns:
        values = frame[column].astype("string").fillna("<missing>").to_numpy()
        groups += [(f"{column}={value} (n={int((values == value).sum())})", values == value)
                   for value in sorted(set(values))]
    models = _models(challenger, champion)
    figure = _figure(8, 0.45 * len(groups) * len(models) + 1.8)
    ax = figure.add_subplot()
    step = 1.0 / (len(models) + 1)
    for index, ((name, predicted), color) in enumerate(zip(models, ("tab:blue", "tab:orange"), strict=False)):
        residuals = np.asarray(predicted, dtype=float) - y
        positions = np.arange(len(groups)) + (index - (len(models) - 1) / 2) * step
        boxes = ax.boxplot([residuals[mask] for _, mask in groups], positions=positions, widths=step * 0.8,
                           orientation="horizontal", patch_artist=True, showfliers=False)
        for box in boxes["boxes"]:
            box.set(facecolor=color, alpha=0.6)
        ax.plot([], [], color=color, linewidth=6, alpha=0.6, label=name)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(np.arange(len(groups)), [label for label, _ in groups])
    for tick, (label, _) in zip(ax.get_yticklabels(), groups, strict=True):
        if label.rsplit(" (n=", 1)[0] in refused:
            tick.set_color("tab:red")
    ax.invert_yaxis()
    ax.set(xlabel="residual (predicted - actual), holdout; whiskers 1.5 IQR", title="Residuals per slice")
    figure.legend(loc="outside upper right", ncols=2, frameon=False)
    return _save(figure, path)


def bootstrap_error_png(bootstrap: dict[str, Any], differences: np.ndarray, path: Path) -> Path:
    """The paired bootstrap's distribution of error(challenger) - error(champion) (RMSE or
    MAE), its confidence interval, and the bound its upper end must not cross
    (``error_tolerance`` x the champion's error)."""
    import numpy as np

    bound = float(bootstrap["bound"])
    low, high = float(bootstrap["ci_low"]), float(bootstrap["ci_high"])
    name = str(bootstrap["metric"]).upper()
    within = high <= bound
    figure = _figure(7, 4.8)
    ax = figure.add_subplot()
    ax.hist(np.asarray(differences, dtype=float), bins=40, color="tab:blue", alpha=0.7,
            label=f"{len(differences)} paired resamples")
    ax.axvspan(low, high, color="tab:green" if within else "tab:red", alpha=0.15,
               label=f"{bootstrap['confidence']:.0%} interval [{low:+.4g}, {high:+.4g}]")
    ax.axvline(bound, color="tab:red", linestyle="--",
               label=f"bound +{bound:.4g} ({bootstrap['tolerance']} x champion {name})")
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.axvline(float(bootstrap["observed_difference"]), color="tab:blue", linestyle=":",
               label=f"observed {bootstrap['observed_difference']:+.4g}")
    verdict = "within the bound" if within else "above the bound: refused"
    ax.set(xlabel=f"{name} difference (challenger - champion); lower is better", ylabel="resamples",
           title=f"Paired bootstrap: {verdict}")
    figure.legend(loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    return _save(figure, path)


def _regression_plots(
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray | None,
    report: Any,
    folder: Path,
    frame: pd.DataFrame | None,
) -> list[Path]:
    from pipeline import schema

    written = [predicted_vs_actual_png(y, challenger, champion, folder / "predicted_vs_actual.png")]
    if frame is not None and schema.SLICE_COLUMNS:
        refused = frozenset(f"{s['column']}={s['value']}" for s in report.slices
                            if s["judged"] == "yes" and not s["change"] <= s["bound"])
        written.append(residuals_by_slice_png(frame, y, challenger, champion, tuple(schema.SLICE_COLUMNS),
                                              folder / "residuals_by_slice.png", refused))
    if report.bootstrap and report.bootstrap_differences is not None:
        written.append(bootstrap_error_png(report.bootstrap, report.bootstrap_differences,
                                           folder / "bootstrap_error_difference.png"))
    return written


def gate_plots(
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray | None,
    report: Any,
    folder: Path,
    *,
    frame: pd.DataFrame | None = None,
) -> list[Path]:
    """Every picture of one gate decision into ``folder`` (named as ``GATE_PLOT_FILES``, or
    ``REGRESSION_GATE_PLOT_FILES`` for a regression report).

    ``y`` is ``schema.target`` of the holdout; ``report`` is the ``GateReport``: its task,
    slices, thresholds and bootstrap (with the resampled differences) decide which
    pictures apply. ``frame`` (the holdout) gives the regression residuals their slices.
    Returns the files written.
    """
    import numpy as np

    from pipeline.steps.gate import task_of

    folder.mkdir(parents=True, exist_ok=True)
    if task_of(report) == "regression":
        return _regression_plots(y, challenger, champion, report, folder, frame)
    written = []
    # Curves need both classes; a holdout with one is refused by the gate (AUC is NaN).
    if len(np.unique(y)) == 2:
        written += [
            roc_curve_png(y, challenger, champion, folder / "roc_curve.png"),
            precision_recall_png(y, challenger, champion, folder / "precision_recall.png"),
            calibration_png(y, challenger, champion, folder / "calibration.png"),
        ]
    written.append(confusion_matrix_png(y, challenger, folder / "confusion_matrix.png"))
    if report.slices:
        written.append(slice_metrics_png(report.slices, folder / "slice_metrics.png",
                                         report.thresholds.get("slice_tolerance")))
    if report.bootstrap and report.bootstrap_differences is not None:
        written.append(bootstrap_png(report.bootstrap, report.bootstrap_differences,
                                     folder / "bootstrap_auc_difference.png"))
    return written
