"""Gate step: should the challenger replace the champion? Fails closed.

``judge`` applies the rules of the active project's task (``schema.TASK``), each with
its threshold as a parameter, and promotes only if every one holds.

Binary (``GateThresholds``): the challenger's ROC AUC clears an absolute floor; a paired
bootstrap of the AUC difference (the same resampled holdout rows score both models)
has a lower confidence bound no worse than ``-auc_tolerance``; no slice of
``SLICE_COLUMNS`` loses more than ``slice_tolerance`` AUC (slices too small to judge are
skipped and named in the report); and the fairness gaps across ``schema.SENSITIVE_ATTRIBUTE``
stay within their bounds. With no champion (the first model) only the floor and the
fairness bounds apply.

Regression (``pipeline.project.RegressionThresholds``; the error is ``schema.GATE_METRIC``,
RMSE or MAE, and every tolerance is relative to the champion's error because errors are
in the label's own units): the challenger's R² must be above ``min_r2`` (0: beat predicting the holdout's mean,
the no-skill floor); the upper confidence bound of a paired bootstrap of the error
difference (challenger - champion) may not exceed ``error_tolerance`` x the champion's
error; no slice with ``min_slice_rows`` rows may see its error grow by more than
``slice_tolerance`` x the champion's error on it; and, with a sensitive attribute and
``max_group_error_ratio`` set, the worst group's error over the best's stays within it
(groups under ``min_slice_rows`` rows are not judged). With no champion only the floor
and the group bound apply.

``enforce`` raises one ``GateRefused`` listing every violation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline import schema

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import numpy as np
    import pandas as pd

    from pipeline.project import RegressionThresholds
    from pipeline.steps.evaluate import Evaluation


@dataclass(frozen=True)
class GateThresholds:
    """Every number the gate judges by.

    The defaults were chosen against the Adult data: the default model reaches about
    0.93 AUC with an equal-opportunity gap across sex near 0.06 and a demographic-parity
    gap near 0.18 (the two groups' base rates differ by about 0.19, so parity is bounded
    loosely and equal opportunity tightly).

    A fairness gap is judged only across groups with enough support: a group with fewer
    than ``min_fairness_group_rows`` rows is left out of the demographic-parity gap, one
    with fewer than ``min_fairness_group_positives`` positives out of the equal-opportunity
    gap (a true-positive rate over 4 positives moves by 0.25 per row). When fewer than two
    groups remain, that gap is reported as not judged, naming the thin groups, and is no
    refusal.
    """

    min_roc_auc: float = 0.85
    auc_tolerance: float = 0.01
    bootstrap_samples: int = 1000
    confidence: float = 0.95
    slice_tolerance: float = 0.03
    min_slice_rows: int = 200
    min_slice_positives: int = 20
    max_equal_opportunity_difference: float = 0.15
    max_demographic_parity_difference: float = 0.30
    min_fairness_group_rows: int = 30
    min_fairness_group_positives: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_roc_auc <= 1.0:
            raise ValueError(f"min_roc_auc must be in [0, 1], got {self.min_roc_auc}")
        if not 0.5 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0.5, 1), got {self.confidence}")
        if self.bootstrap_samples < 100:
            raise ValueError(f"bootstrap_samples must be >= 100, got {self.bootstrap_samples}")
        for name in ("auc_tolerance", "slice_tolerance", "max_equal_opportunity_difference",
                     "max_demographic_parity_difference", "min_fairness_group_rows",
                     "min_fairness_group_positives"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> GateThresholds:
        """Build from ``k=v`` strings or numbers, rejecting unknown keys by name."""
        from pipeline.typed_params import from_mapping

        return from_mapping(cls, values, what="gate threshold")


@dataclass(frozen=True)
class GateReport:
    """The decision, every reason for a refusal, and every number used to reach it."""

    passed: bool
    reasons: list[str]
    thresholds: dict[str, Any]
    challenger: dict[str, Any]
    champion: dict[str, Any] | None
    bootstrap: dict[str, Any] | None
    slices: list[dict[str, Any]]
    fairness: dict[str, Any]
    bootstrap_differences: np.ndarray | None = field(default=None, repr=False, compare=False)
    """Every resample's difference (AUC, or the regression error), for the bootstrap
    picture; not part of the report's JSON (``bootstrap`` summarises it)."""

    def to_dict(self) -> dict[str, Any]:
        report = asdict(self)
        del report["bootstrap_differences"]
        return report

    def to_markdown(self) -> str:
        if task_of(self) == "regression":
            return _regression_markdown(self)
        lines = _opening_lines(self, [], lambda value: "-" if value is None else f"{value:.4f}")
        if self.bootstrap:
            b = self.bootstrap
            lines += [
                "",
                "## Paired bootstrap of the ROC AUC difference (challenger - champion)",
                "",
                f"{b['samples']} resamples, mean {b['mean_difference']:+.4f}, "
                f"{b['confidence']:.0%} CI [{b['ci_low']:+.4f}, {b['ci_high']:+.4f}], "
                f"tolerance -{b['tolerance']}",
            ]
        if self.slices:
            lines += ["", "## Slices (ROC AUC)", "", "| slice | rows | challenger | champion | change | judged |", "|---|---|---|---|---|---|"]
            for s in self.slices:
                champ_auc = s.get("champion_roc_auc")
                change = s.get("change")
                lines.append(
                    f"| {s['column']}={s['value']} | {s['rows']} | {_fmt(s['challenger_roc_auc'])} | "
                    f"{_fmt(champ_auc)} | {_fmt(change, signed=True)} | {s['judged']} |"
                )
        f = self.fairness
        if f["attribute"] is not None:
            lines += [
                "",
                f"## Fairness across `{f['attribute']}`",
                "",
                f"- equal-opportunity difference: {_fmt(f['equal_opportunity_difference'])} "
                f"(bound {self.thresholds['max_equal_opportunity_difference']})",
                f"- demographic-parity difference: {_fmt(f['demographic_parity_difference'])} "
                f"(bound {self.thresholds['max_demographic_parity_difference']})",
            ]
        else:
            lines += ["", "## Fairness", ""]
        lines += [f"- {note}" for note in f.get("notes", [])] + [
            "",
            "## Thresholds",
            "",
        ] + [f"- {k}: {v}" for k, v in self.thresholds.items()]
        return "\n".join(lines) + "\n"


def _opening_lines(report: GateReport, intro: list[str], number: Callable[[Any], str]) -> list[str]:
    """What every gate report opens with, whatever the task: the decision, ``intro``, the
    reasons, the overall metrics of challenger and champion (``number`` formats each) and
    the champion's version."""
    lines = ["# Gate report", "", f"**Decision: {'PROMOTE' if report.passed else 'REFUSED'}**", "", *intro]
    if report.reasons:
        lines += ["## Reasons", ""] + [f"- {r}" for r in report.reasons] + [""]
    lines += ["## Overall (holdout)", "", "| metric | challenger | champion |", "|---|---|---|"]
    champion = (report.champion or {}).get("metrics", {})
    for name, value in report.challenger["metrics"].items():
        lines.append(f"| {name} | {number(value)} | {number(champion.get(name))} |")
    if report.champion is not None:
        lines += ["", f"Champion: version {report.champion.get('version')}"]
    return lines


def _fmt(value: float | None, *, signed: bool = False) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def task_of(report: GateReport | Mapping[str, Any]) -> str:
    """The task a gate report (the object or its ``to_dict()``) judged: a regression
    report says so in its ``challenger`` entry; binary reports keep their original shape."""
    challenger = report.challenger if isinstance(report, GateReport) else report.get("challenger") or {}
    return str(challenger.get("task", "binary"))


def metric_label(metric: str) -> str:
    """How a metric is written in reports: ``rmse`` -> ``RMSE``, ``roc_auc`` -> ``ROC AUC``."""
    return {"roc_auc": "ROC AUC", "rmse": "RMSE", "mae": "MAE", "r2": "R²"}.get(metric, metric)


def _regression_markdown(report: GateReport) -> str:
    metric = report.challenger["gate_metric"]
    name = metric_label(metric)
    lines = _opening_lines(report, [f"Task: regression; the gate compares {name} (lower is better).", ""], _fmt)
    if report.bootstrap:
        b = report.bootstrap
        lines += [
            "",
            f"## Paired bootstrap of the {name} difference (challenger - champion)",
            "",
            f"{b['samples']} resamples, mean {b['mean_difference']:+.4f}, "
            f"{b['confidence']:.0%} CI [{b['ci_low']:+.4f}, {b['ci_high']:+.4f}], "
            f"bound +{b['bound']:.4f} (error_tolerance {b['tolerance']} x champion {name} {b['champion_error']:.4f})",
        ]
    if report.slices:
        lines += ["", f"## Slices ({name})", "", "| slice | rows | challenger | champion | change | bound | judged |",
                  "|---|---|---|---|---|---|---|"]
        for s in report.slices:
            lines.append(
                f"| {s['column']}={s['value']} | {s['rows']} | {_fmt(s[f'challenger_{metric}'])} | "
                f"{_fmt(s.get(f'champion_{metric}'))} | {_fmt(s.get('change'), signed=True)} | "
                f"{_fmt(s.get('bound'), signed=True)} | {s['judged']} |"
            )
    g = report.fairness
    if g.get("attribute") is not None:
        lines += ["", f"## Group errors across `{g['attribute']}` ({name})", "",
                  "| group | rows | RMSE | MAE |", "|---|---|---|---|"]
        lines += [f"| {group} | {v['rows']} | {_fmt(v.get('rmse'))} | {_fmt(v.get('mae'))} |"
                  for group, v in g.get("groups", {}).items()]
        bound = report.thresholds.get("max_group_error_ratio")
        lines += ["", f"- worst group over best group ({g.get('worst_group')} / {g.get('best_group')}): "
                      f"{_fmt(g.get('error_ratio'))} (bound {'none' if bound is None else bound})"]
    lines += [f"- {note}" for note in g.get("notes", [])]
    lines += ["", "## Thresholds", ""] + [f"- {k}: {v}" for k, v in report.thresholds.items()]
    return "\n".join(lines) + "\n"


class GateRefused(Exception):
    """The challenger was refused; ``report.reasons`` lists every violation."""

    def __init__(self, report: GateReport) -> None:
        self.report = report
        super().__init__("gate refused the challenger:\n" + "\n".join(f"  - {r}" for r in report.reasons))


def paired_bootstrap_auc(
    y_true: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    *,
    samples: int,
    confidence: float,
    seed: int,
) -> dict[str, Any]:
    """Percentile CI of AUC(challenger) - AUC(champion) over row resamples shared by both.

    Pairing (one resample scores both models) cancels the holdout's own sampling noise,
    so the interval reflects the models' difference, not how lucky the rows were.
    Resamples that draw a single class are dropped and redrawn. The resampled
    differences themselves are under ``differences`` (an array, for the picture).
    """
    import numpy as np

    from pipeline.steps.evaluate import roc_auc, weighted_roc_auc

    y = np.asarray(y_true).astype(int)
    a = np.asarray(challenger, dtype=float)
    b = np.asarray(champion, dtype=float)
    if not len(y) == len(a) == len(b):
        raise ValueError(f"length mismatch: {len(y)} labels, {len(a)} and {len(b)} scores")
    rng = np.random.default_rng(seed)
    n = len(y)
    batch = max(1, min(samples, 2_000_000 // max(n, 1)))
    chunks: list[np.ndarray] = []
    kept = 0
    while kept < samples:
        idx = rng.integers(0, n, size=(batch, n))
        offsets = (idx + (np.arange(batch) * n)[:, None]).ravel()
        weights = np.bincount(offsets, minlength=batch * n).reshape(batch, n).astype(float)
        pos_weight = weights @ y
        usable = (pos_weight > 0) & (pos_weight < n)
        weights = weights[usable]
        if len(weights):
            chunks.append(weighted_roc_auc(y, a, weights) - weighted_roc_auc(y, b, weights))
            kept += len(weights)
    differences = np.concatenate(chunks)[:samples]
    alpha = (1.0 - confidence) / 2.0
    return {
        "samples": samples,
        "confidence": confidence,
        "observed_difference": roc_auc(y, a) - roc_auc(y, b),
        "mean_difference": float(differences.mean()),
        "ci_low": float(np.quantile(differences, alpha)),
        "ci_high": float(np.quantile(differences, 1.0 - alpha)),
        "differences": differences,
    }


def _slice_table(
    holdout: pd.DataFrame,
    challenger: Evaluation,
    champion: Evaluation | None,
    thresholds: GateThresholds,
) -> list[dict[str, Any]]:
    champion_auc = {(s["column"], s["value"]): s["roc_auc"] for s in (champion.slices if champion else [])}
    table = []
    for s in challenger.slices:
        negatives = s["rows"] - s["positives"]
        too_small = (
            s["rows"] < thresholds.min_slice_rows
            or s["positives"] < thresholds.min_slice_positives
            or negatives < thresholds.min_slice_positives
        )
        champ = champion_auc.get((s["column"], s["value"]))
        entry = {
            "column": s["column"],
            "value": s["value"],
            "rows": s["rows"],
            "positives": s["positives"],
            "challenger_roc_auc": s["roc_auc"],
            "champion_roc_auc": champ,
            "change": None if champ is None else s["roc_auc"] - champ,
        }
        if champion is None:
            entry["judged"] = "no champion"
        elif too_small:
            entry["judged"] = (
                f"skipped: too small to judge (needs >= {thresholds.min_slice_rows} rows and "
                f">= {thresholds.min_slice_positives} of each class)"
            )
        else:
            entry["judged"] = "yes"
        table.append(entry)
    return table


_FAIRNESS_SUPPORT = (
    # gap, per-group rate, count it rests on, GateThresholds field with its minimum
    ("demographic_parity_difference", "selection_rate", "rows", "min_fairness_group_rows"),
    ("equal_opportunity_difference", "true_positive_rate", "positives", "min_fairness_group_positives"),
)


def supported_fairness(fairness: dict[str, Any], thresholds: GateThresholds) -> tuple[dict[str, Any], set[str]]:
    """The fairness gaps over the groups with enough support, and the gaps not judged.

    A group below its minimum is left out of a gap and named in ``notes``; a gap with
    fewer than two supported groups left is NaN and returned among the not judged, which
    the gate reports instead of refusing. Groups at or above every minimum leave the
    evaluation's figures unchanged.
    """
    import math

    judged = dict(fairness)
    notes: list[str] = []
    unjudged: set[str] = set()
    groups: dict[str, dict[str, Any]] = fairness.get("groups", {})
    for gap, rate, count, threshold in _FAIRNESS_SUPPORT:
        minimum = getattr(thresholds, threshold)
        thin = {g: v[count] for g, v in groups.items() if v.get(count, minimum) < minimum}
        if not thin:
            continue
        rates = [v[rate] for g, v in groups.items() if g not in thin and not math.isnan(v[rate])]
        named = ", ".join(f"group {g!r} has {n} {count}" for g, n in sorted(thin.items()))
        why = f"too few to judge (needs >= {minimum}, {threshold})"
        if len(rates) >= 2:
            judged[gap] = max(rates) - min(rates)
            notes.append(f"{gap}: {named}: {why}; left out of the gap")
        else:
            judged[gap] = float("nan")
            unjudged.add(gap)
            notes.append(f"{gap} not judged: {named}: {why}; not a refusal")
    judged["notes"] = notes
    return judged, unjudged


def judge(
    holdout: pd.DataFrame,
    challenger_proba: np.ndarray,
    champion_proba: np.ndarray | None,
    thresholds: GateThresholds | RegressionThresholds,
    *,
    champion_version: str | None = None,
) -> GateReport:
    """Apply every rule of the active task's gate and return the report (``passed`` False
    when any rule fails).

    ``challenger_proba``/``champion_proba`` are ``evaluate.predictions``: probabilities
    (binary) or predicted values (regression). Raises only on malformed input (mismatched
    lengths, non-finite scores, thresholds of the other task); the runner treats any
    exception here as a refusal.
    """
    from pipeline.project import RegressionThresholds

    expected = GateThresholds if schema.IS_CLASSIFIER else RegressionThresholds
    if not isinstance(thresholds, expected):
        raise TypeError(f"the {schema.TASK} gate needs {expected.__name__}, got {type(thresholds).__name__} "
                        f"(the gate thresholds do not match the project's task)")
    if not schema.IS_CLASSIFIER:
        return judge_regression(holdout, challenger_proba, champion_proba, thresholds,  # type: ignore[arg-type]
                                champion_version=champion_version)
    return _judge_binary(holdout, challenger_proba, champion_proba, thresholds,  # type: ignore[arg-type]
                         champion_version=champion_version)


def _judge_binary(
    holdout: pd.DataFrame,
    challenger_proba: np.ndarray,
    champion_proba: np.ndarray | None,
    thresholds: GateThresholds,
    *,
    champion_version: str | None,
) -> GateReport:
    from pipeline.steps.evaluate import check_scores, evaluate

    y = schema.target(holdout)
    challenger = evaluate(holdout, challenger_proba)
    if champion_proba is not None:
        champion_proba = check_scores(champion_proba, len(holdout), "champion")
    champion = evaluate(holdout, champion_proba) if champion_proba is not None else None
    reasons: list[str] = []

    auc = challenger.metrics["roc_auc"]
    if not auc >= thresholds.min_roc_auc:  # also catches NaN
        reasons.append(f"floor: challenger ROC AUC {auc:.4f} is below the floor {thresholds.min_roc_auc}")

    bootstrap = differences = None
    if champion_proba is not None:
        bootstrap = paired_bootstrap_auc(
            y,
            challenger_proba,
            champion_proba,
            samples=thresholds.bootstrap_samples,
            confidence=thresholds.confidence,
            seed=thresholds.seed,
        )
        differences = bootstrap.pop("differences")
        bootstrap["tolerance"] = thresholds.auc_tolerance
        if bootstrap["ci_low"] < -thresholds.auc_tolerance:
            reasons.append(
                f"paired bootstrap: the {thresholds.confidence:.0%} CI of the ROC AUC difference "
                f"[{bootstrap['ci_low']:+.4f}, {bootstrap['ci_high']:+.4f}] reaches below "
                f"-{thresholds.auc_tolerance} (challenger {auc:.4f} vs champion {champion.metrics['roc_auc']:.4f})"  # type: ignore[union-attr]
            )

    slices = _slice_table(holdout, challenger, champion, thresholds)
    for s in slices:
        if s["judged"] == "yes" and s["change"] is not None and not s["change"] >= -thresholds.slice_tolerance:
            reasons.append(
                f"slice regression: {s['column']}={s['value']} ROC AUC {s['challenger_roc_auc']:.4f} vs "
                f"champion {s['champion_roc_auc']:.4f} ({s['change']:+.4f}, tolerance -{thresholds.slice_tolerance})"
            )

    fairness, unjudged = supported_fairness(challenger.fairness, thresholds)
    if fairness["attribute"] is None:
        unjudged = {gap for gap, *_ in _FAIRNESS_SUPPORT}
        fairness["notes"] = ["no sensitive attribute is configured: fairness is not judged"]
    eo = fairness["equal_opportunity_difference"]
    dp = fairness["demographic_parity_difference"]
    if "equal_opportunity_difference" not in unjudged and not eo <= thresholds.max_equal_opportunity_difference:
        reasons.append(
            f"fairness: equal-opportunity difference across {schema.SENSITIVE_ATTRIBUTE} is {eo:.4f}, "
            f"above the bound {thresholds.max_equal_opportunity_difference}"
        )
    if "demographic_parity_difference" not in unjudged and not dp <= thresholds.max_demographic_parity_difference:
        reasons.append(
            f"fairness: demographic-parity difference across {schema.SENSITIVE_ATTRIBUTE} is {dp:.4f}, "
            f"above the bound {thresholds.max_demographic_parity_difference}"
        )

    return GateReport(
        passed=not reasons,
        reasons=reasons,
        thresholds=asdict(thresholds),
        challenger={"metrics": challenger.metrics},
        champion=None if champion is None else {"version": champion_version, "metrics": champion.metrics},
        bootstrap=bootstrap,
        slices=slices,
        fairness=fairness,
        bootstrap_differences=differences,
    )


def refusal(error: BaseException, thresholds: GateThresholds | RegressionThresholds) -> GateReport:
    """The report of a gate that could not decide: failing closed, the error is the reason.

    Shaped for the task ``thresholds`` belong to, so it renders like any report of it."""
    reasons = [f"gate error (failing closed): {type(error).__name__}: {error}"]
    if not isinstance(thresholds, GateThresholds):
        return GateReport(
            passed=False, reasons=reasons, thresholds=asdict(thresholds),
            challenger={"task": "regression", "gate_metric": _regression_metric(), "metrics": {}},
            champion=None, bootstrap=None, slices=[],
            fairness={"attribute": schema.SENSITIVE_ATTRIBUTE, "metric": _regression_metric(), "groups": {},
                      "worst_group": None, "best_group": None, "error_ratio": float("nan"), "notes": []},
        )
    return GateReport(
        passed=False,
        reasons=reasons,
        thresholds=asdict(thresholds),
        challenger={"metrics": {}},
        champion=None,
        bootstrap=None,
        slices=[],
        fairness={"attribute": schema.SENSITIVE_ATTRIBUTE, "equal_opportunity_difference": float("nan"),
                  "demographic_parity_difference": float("nan"), "groups": {}, "notes": []},
    )


def _regression_metric() -> str:
    """The active project's error metric, or ``rmse`` when the project is binary (a
    mismatched configuration still gets a readable refusal)."""
    from pipeline.steps.evaluate import REGRESSION_ERRORS

    metric = schema.GATE_METRIC
    return metric if metric in REGRESSION_ERRORS else REGRESSION_ERRORS[0]


def enforce(report: GateReport) -> GateReport:
    """Return the report when it passed; raise ``GateRefused`` listing every reason otherwise."""
    if not report.passed:
        raise GateRefused(report)
    return report


# ---------------------------------------------------------------------------------------
# Regression
# ---------------------------------------------------------------------------------------


def _errors(metric: str, residuals: np.ndarray) -> np.ndarray:
    """Per-row loss whose mean is the metric's core: squared (RMSE) or absolute (MAE)."""
    import numpy as np

    return residuals**2 if metric == "rmse" else np.abs(residuals)


def _finish(metric: str, mean_loss: np.ndarray | float) -> Any:
    import numpy as np

    return np.sqrt(mean_loss) if metric == "rmse" else mean_loss


def paired_bootstrap_error(
    y_true: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    *,
    metric: str,
    samples: int,
    confidence: float,
    seed: int,
) -> dict[str, Any]:
    """Percentile CI of error(challenger) - error(champion) over row resamples shared by both.

    ``metric`` is ``rmse`` or ``mae``; a negative difference means the challenger errs
    less. As with the AUC, pairing cancels the holdout's own sampling noise. The resampled
    differences themselves are under ``differences`` (an array, for the picture)."""
    import numpy as np

    from pipeline.steps.evaluate import REGRESSION_ERRORS

    if metric not in REGRESSION_ERRORS:
        raise ValueError(f"unknown regression gate metric {metric!r}; known: {', '.join(REGRESSION_ERRORS)}")
    y = np.asarray(y_true, dtype=float)
    a = np.asarray(challenger, dtype=float)
    b = np.asarray(champion, dtype=float)
    if not len(y) == len(a) == len(b):
        raise ValueError(f"length mismatch: {len(y)} labels, {len(a)} and {len(b)} predictions")
    if not len(y):
        raise ValueError("an empty holdout cannot be resampled")
    loss_a, loss_b = _errors(metric, a - y), _errors(metric, b - y)
    rng = np.random.default_rng(seed)
    n = len(y)
    batch = max(1, min(samples, 2_000_000 // n))
    chunks: list[np.ndarray] = []
    drawn = 0
    while drawn < samples:
        idx = rng.integers(0, n, size=(min(batch, samples - drawn), n))
        chunks.append(_finish(metric, loss_a[idx].mean(axis=1)) - _finish(metric, loss_b[idx].mean(axis=1)))
        drawn += len(idx)
    differences = np.concatenate(chunks)
    alpha = (1.0 - confidence) / 2.0
    return {
        "metric": metric,
        "samples": samples,
        "confidence": confidence,
        "observed_difference": float(_finish(metric, loss_a.mean()) - _finish(metric, loss_b.mean())),
        "mean_difference": float(differences.mean()),
        "ci_low": float(np.quantile(differences, alpha)),
        "ci_high": float(np.quantile(differences, 1.0 - alpha)),
        "differences": differences,
    }


def _regression_slices(
    challenger: Evaluation, champion: Evaluation | None, metric: str, thresholds: RegressionThresholds
) -> list[dict[str, Any]]:
    """Each slice's error for both models, its allowed growth and whether it is judged."""
    champion_error = {(s["column"], s["value"]): s[metric] for s in (champion.slices if champion else [])}
    table = []
    for s in challenger.slices:
        champ = champion_error.get((s["column"], s["value"]))
        entry: dict[str, Any] = {
            "column": s["column"],
            "value": s["value"],
            "rows": s["rows"],
            "metric": metric,
            f"challenger_{metric}": s[metric],
            f"champion_{metric}": champ,
            "change": None if champ is None else s[metric] - champ,
            "bound": None if champ is None else thresholds.slice_tolerance * champ,
        }
        if champion is None:
            entry["judged"] = "no champion"
        elif s["rows"] < thresholds.min_slice_rows:
            entry["judged"] = f"skipped: too small to judge (needs >= {thresholds.min_slice_rows} rows)"
        else:
            entry["judged"] = "yes"
        table.append(entry)
    return table


def supported_group_errors(groups: dict[str, Any], thresholds: RegressionThresholds) -> dict[str, Any]:
    """The regression group bound over the groups with at least ``min_slice_rows`` rows.

    A smaller group's error rests on too few rows to judge: it is left out and named in
    ``notes``; with fewer than two groups left the ratio is NaN and ``judged`` False
    (reported, not a refusal), like the binary fairness support rule."""
    from pipeline.steps.evaluate import error_ratio_of

    judged = dict(groups)
    metric = groups["metric"]
    per_group: dict[str, dict[str, Any]] = groups.get("groups", {})
    minimum = thresholds.min_slice_rows
    thin = {g: v["rows"] for g, v in per_group.items() if v["rows"] < minimum}
    supported = {g: v for g, v in per_group.items() if g not in thin}
    judged.update(error_ratio_of(supported, metric))
    notes: list[str] = []
    judged["judged"] = len(supported) >= 2
    if thin:
        named = ", ".join(f"group {g!r} has {n} rows" for g, n in sorted(thin.items()))
        why = f"too few to judge (needs >= {minimum}, min_slice_rows)"
        notes.append(f"error_ratio: {named}: {why}; left out of the ratio" if judged["judged"]
                     else f"error_ratio not judged: {named}: {why}; not a refusal")
    judged["notes"] = notes
    return judged


def judge_regression(
    holdout: pd.DataFrame,
    challenger_pred: np.ndarray,
    champion_pred: np.ndarray | None,
    thresholds: RegressionThresholds,
    *,
    champion_version: str | None = None,
) -> GateReport:
    """The regression gate (module docstring): floor, paired bootstrap, slices, group bound.

    Reasons name the metric, both models' figures and the bound they crossed. Raises
    ``ValueError`` on malformed input (lengths, non-finite predictions, an unknown metric)."""
    from pipeline.steps.evaluate import REGRESSION_ERRORS, check_scores, evaluate

    metric = schema.GATE_METRIC
    if metric not in REGRESSION_ERRORS:
        raise ValueError(f"gate.metric {metric!r} is not a regression error; known: {', '.join(REGRESSION_ERRORS)}")
    name = metric_label(metric)
    y = schema.target(holdout)
    challenger = evaluate(holdout, challenger_pred)
    champion = None
    if champion_pred is not None:
        champion_pred = check_scores(champion_pred, len(holdout), "champion")
        champion = evaluate(holdout, champion_pred)
    reasons: list[str] = []

    r2 = challenger.metrics["r2"]
    if not r2 > thresholds.min_r2:  # also catches NaN (a constant label)
        reasons.append(f"floor: challenger R² {r2:.4f} is not above min_r2 {thresholds.min_r2}"
                       + (": it predicts no better than the holdout's mean" if thresholds.min_r2 == 0 else "")
                       + f" (RMSE {challenger.metrics['rmse']:.4f})")

    bootstrap = differences = None
    if champion is not None:
        bootstrap = paired_bootstrap_error(y, challenger_pred, champion_pred, metric=metric,  # type: ignore[arg-type]
                                           samples=thresholds.bootstrap_samples, confidence=thresholds.confidence,
                                           seed=thresholds.seed)
        differences = bootstrap.pop("differences")
        champion_error = champion.metrics[metric]
        bound = thresholds.error_tolerance * champion_error
        bootstrap.update(tolerance=thresholds.error_tolerance, champion_error=champion_error, bound=bound)
        if bootstrap["ci_high"] > bound:
            reasons.append(
                f"paired bootstrap: the {thresholds.confidence:.0%} CI of the {name} difference (challenger - "
                f"champion) [{bootstrap['ci_low']:+.4f}, {bootstrap['ci_high']:+.4f}] reaches above +{bound:.4f} "
                f"(error_tolerance {thresholds.error_tolerance} x champion {name} {champion_error:.4f}; "
                f"challenger {challenger.metrics[metric]:.4f})"
            )

    slices = _regression_slices(challenger, champion, metric, thresholds)
    for s in slices:
        if s["judged"] == "yes" and not s["change"] <= s["bound"]:
            reasons.append(
                f"slice regression: {s['column']}={s['value']} {name} {s[f'challenger_{metric}']:.4f} vs champion "
                f"{s[f'champion_{metric}']:.4f} ({s['change']:+.4f}, bound +{s['bound']:.4f} = slice_tolerance "
                f"{thresholds.slice_tolerance} x champion's; {s['rows']} rows)"
            )

    groups = challenger.fairness
    if groups["attribute"] is None:
        groups = {**groups, "judged": False, "notes": ["no sensitive attribute is configured: group errors are "
                                                       "not judged"]}
    elif thresholds.max_group_error_ratio is None:
        groups = {**groups, "judged": False, "notes": ["max_group_error_ratio is not set: group errors are "
                                                       "reported, not judged"]}
    else:
        groups = supported_group_errors(groups, thresholds)
        ratio = groups["error_ratio"]
        if groups["judged"] and not ratio <= thresholds.max_group_error_ratio:
            worst, best = groups["worst_group"], groups["best_group"]
            reasons.append(
                f"group errors: across {groups['attribute']}, group {worst!r} has {name} "
                f"{groups['groups'][worst][metric]:.4f} and group {best!r} {groups['groups'][best][metric]:.4f}: "
                f"a ratio of {ratio:.4f}, above the bound {thresholds.max_group_error_ratio} (max_group_error_ratio)"
            )

    return GateReport(
        passed=not reasons,
        reasons=reasons,
        thresholds=asdict(thresholds),
        challenger={"task": "regression", "gate_metric": metric, "metrics": challenger.metrics},
        champion=None if champion is None else {"version": champion_version, "metrics": champion.metrics},
        bootstrap=bootstrap,
        slices=slices,
        fairness=groups,
        bootstrap_differences=differences,
    )
