"""The monitor's report: ``report.json``, ``report.md`` and PNG plots in one folder.

A person acting on an alarm needs the why at a glance: the verdict and its reasons, a
table of every feature's PSI and test, the failed data-quality checks, performance per
slice, and pictures: PSI per feature against the limit, PSI over the earlier windows
(from the MLflow ``monitoring`` runs), and the distributions that moved (baseline
against live). Plots use
matplotlib's ``Figure`` with the Agg canvas directly, so no pyplot global state and no
display is involved.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import pandas as pd

from pipeline.monitoring.analysis import MonitorResult
from pipeline.monitoring.drift import PREDICTION, FeatureDrift, category_buckets
from pipeline.monitoring.tracking import DriftWindow

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_FEATURE_PLOTS: Final = 14


def report_folder(reports_dir: Path, result: MonitorResult) -> Path:
    """``<reports>/monitor/<UTC stamp>-<model>-v<version>``: one new folder per run,
    sortable by time; a second run in the same second gets a ``-2`` suffix, never the
    first run's folder."""
    stamp = result.created_at.replace("+00:00", "Z").replace("-", "").replace(":", "")
    base = reports_dir / "monitor" / f"{stamp}-{result.model_name}-v{result.model_version}"
    folder, attempt = base, 1
    while folder.exists():
        attempt += 1
        folder = base.with_name(f"{base.name}-{attempt}")
    return folder


def _figure(width: float = 7.0, height: float = 4.0) -> Figure:
    """A figure on the Agg canvas (matplotlib is imported here, on first plot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def plot_psi(items: Sequence[FeatureDrift], limit: float, path: Path) -> Path:
    """Horizontal bars of PSI per feature (drifted ones red) with the limit marked."""
    compared = [f for f in items if f.psi is not None]
    figure = _figure(7.0, max(3.0, 0.35 * len(compared) + 1.0))
    axes = figure.add_subplot()
    axes.barh([f.feature for f in compared], [f.psi or 0.0 for f in compared],
              color=["tab:red" if f.drifted else "tab:blue" for f in compared])
    axes.axvline(limit, color="black", linestyle="--", label=f"limit {limit}")
    axes.set_xlabel("PSI (live vs baseline); red: drifted (PSI over the limit and the test rejects)")
    axes.invert_yaxis()
    # Outside the axes: inside, the legend covered the bars of the last features.
    figure.legend(loc="outside upper right", frameon=False)
    figure.savefig(path, dpi=100)
    return path


def plot_psi_history(history: Sequence[DriftWindow], current: MonitorResult, limit: float, path: Path) -> Path:
    """PSI over time: one line per feature that came near the limit (else the three that
    moved most), the largest PSI of any feature, the limit, and where the served version
    changed. ``history`` is the earlier windows, oldest first; ``current`` the new one."""
    from datetime import datetime

    current_psi = {f.feature: f.psi for f in current.features if f.psi is not None}
    windows = [*[(w.time, w.model_version, w.psi) for w in history],
               (datetime.fromisoformat(current.created_at), current.model_version, current_psi)]
    features = sorted({name for _, _, psi in windows for name in psi})
    peak = {name: max(psi.get(name, 0.0) for _, _, psi in windows) for name in features}
    shown = [n for n in features if peak[n] >= limit / 2] or sorted(features, key=peak.__getitem__, reverse=True)[:3]
    from matplotlib import dates

    times = [float(dates.date2num(time)) for time, _, _ in windows]
    figure = _figure(8.0, 4.5)
    axes = figure.add_subplot()
    axes.plot(times, [max(psi.values(), default=np.nan) for _, _, psi in windows], color="black", linewidth=2,
              marker="o", label="largest PSI (any feature)")
    for name in shown:
        axes.plot(times, [psi.get(name, np.nan) for _, _, psi in windows], marker=".", linewidth=1, label=name)
    axes.axhline(limit, color="tab:red", linestyle="--", label=f"limit {limit}")
    for (_, before, _), time, (_, version, _) in zip(windows, times[1:], windows[1:], strict=False):
        if version != before:
            axes.axvline(time, color="grey", linestyle=":", linewidth=1)
            axes.annotate(f"v{version}", (time, 1.0), xycoords=("data", "axes fraction"), fontsize=8,
                          ha="left", va="top")
    axes.xaxis_date()  # the x values are matplotlib date numbers
    axes.set_ylabel("PSI (live vs baseline)")
    axes.set_title(f"Drift over the last {len(windows)} windows of {current.model_name}")
    figure.autofmt_xdate()
    figure.legend(loc="outside right upper", fontsize=8, frameon=False)
    figure.savefig(path, dpi=100)
    return path


def plot_distribution(item: FeatureDrift, baseline: pd.Series, live: pd.Series, path: Path, min_share: float) -> Path:
    """Baseline against live for one feature: density histograms on shared bins for
    numbers, bucket shares side by side for categories."""
    figure = _figure()
    axes = figure.add_subplot()
    if item.kind == "categorical":
        names, b, a = category_buckets(baseline, live, min_share)
        x = np.arange(len(names))
        axes.bar(x - 0.2, b / max(b.sum(), 1), width=0.4, label="baseline")
        axes.bar(x + 0.2, a / max(a.sum(), 1), width=0.4, label="live")
        axes.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
        axes.set_ylabel("share of rows")
    else:
        b_values = baseline.to_numpy(dtype=np.float64)
        a_values = live.to_numpy(dtype=np.float64)
        b_values, a_values = b_values[np.isfinite(b_values)], a_values[np.isfinite(a_values)]
        both = np.concatenate([b_values, a_values])
        low, high = (np.quantile(both, [0.005, 0.995]) if both.size else (0.0, 1.0))
        bins = np.linspace(low, high if high > low else low + 1.0, 41)
        axes.hist(np.clip(b_values, bins[0], bins[-1]), bins=list(bins), density=True, alpha=0.5, label="baseline")
        axes.hist(np.clip(a_values, bins[0], bins[-1]), bins=list(bins), density=True, alpha=0.5, label="live")
        axes.set_ylabel("density")
    psi = "n/a" if item.psi is None else f"{item.psi:.3f}"
    axes.set_title(f"{item.feature}: PSI {psi}, {item.test.upper()} p={item.p_value if item.p_value is not None else float('nan'):.2g}")
    axes.legend()
    figure.savefig(path, dpi=100)
    return path


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render_markdown(result: MonitorResult, plots: Sequence[Path]) -> str:
    """The human-readable report."""
    lines = [
        f"# Monitor report: {result.model_name} version {result.model_version} ({result.alias})",
        "",
        f"**Verdict: `{result.verdict.value}`** at {result.created_at}",
        "",
        "## Reasons",
        *[f"- {r}" for r in result.reasons],
    ]
    if result.notes:
        lines += ["", "## Notes", *[f"- {n}" for n in result.notes]]
    capture = result.capture
    lines += [
        "",
        "## Window",
        f"- capture: `{capture['source']}`: {capture['files']} file(s), {capture['lines']} line(s), "
        f"{capture['requests']} request(s), {capture['rows']} row(s), {capture['malformed_lines']} malformed",
        f"- baseline: `{result.baseline_uri}` ({result.baseline_rows} rows)",
    ]
    if result.labels is not None:
        lab = result.labels
        lines.append(
            f"- labels: `{lab['source']}`: {lab['label_lines']} line(s), {lab['matched']} matched, "
            f"{lab['unknown_request_ids']} for unknown request ids, {lab['malformed']} malformed"
        )
    if result.features:
        lines += ["", "## Drift", "", "| feature | kind | PSI | test | statistic | p-value | drifted |", "|---|---|---|---|---|---|---|"]
        for f in [*result.features, *([result.prediction] if result.prediction else [])]:
            p = "n/a" if f.p_value is None else f"{f.p_value:.2g}"
            lines.append(f"| {f.feature} | {f.kind} | {_fmt(f.psi)} | {f.test} | {_fmt(f.statistic)} | {p} | {'**yes**' if f.drifted else 'no'} |")
    failed = [q for q in result.quality if q.failed]
    if result.quality:
        lines += ["", "## Data quality", ""]
        lines += [f"- FAILED {q.describe()}" for q in failed] or ["- all checks passed"]
    perf = result.performance
    if perf is not None:
        lines += ["", "## Performance", "", f"- status: {perf.status}, {perf.labelled_rows} labelled row(s)"]
        if perf.status == "measured" and perf.metric == "roc_auc":
            lines.append(
                f"- ROC AUC {_fmt(perf.live_roc_auc)} (reference {_fmt(perf.reference_roc_auc)}, {perf.reference_source}; "
                f"drop {_fmt(perf.drop)}), accuracy {_fmt(perf.live_accuracy)}"
            )
            lines += ["", "| slice | labelled rows | live AUC | baseline AUC | drop | flagged |", "|---|---|---|---|---|---|"]
            lines += [
                f"| {s.column}={s.value} | {s.labelled_rows} | {_fmt(s.live_roc_auc)} | {_fmt(s.baseline_roc_auc)} | {_fmt(s.drop)} | {'**yes**' if s.dropped else 'no'} |"
                for s in perf.slices
            ]
        elif perf.status == "measured":
            name = perf.metric.upper()
            lines.append(
                f"- {name} {_fmt(perf.live_value)} (reference {_fmt(perf.reference_value)}, {perf.reference_source}; "
                f"relative increase {_fmt(perf.drop)}), RMSE {_fmt(perf.live_rmse)}, MAE {_fmt(perf.live_mae)}"
            )
            lines += ["", f"| slice | labelled rows | live {name} | baseline {name} | relative increase | flagged |",
                      "|---|---|---|---|---|---|"]
            lines += [
                f"| {s.column}={s.value} | {s.labelled_rows} | {_fmt(s.live_value)} | {_fmt(s.baseline_value)} | {_fmt(s.drop)} | {'**yes**' if s.dropped else 'no'} |"
                for s in perf.slices
            ]
    if plots:
        lines += ["", "## Plots", "", *[f"![{p.stem}]({p.name})" for p in plots]]
    return "\n".join(lines) + "\n"


def write_report(
    result: MonitorResult,
    baseline: pd.DataFrame,
    live: pd.DataFrame,
    live_scores: np.ndarray,
    folder: Path,
    history: Sequence[DriftWindow] = (),
) -> Path:
    """Write ``report.json``, ``report.md`` and the plots into ``folder``; returns it.

    Plots: the PSI bar chart, PSI over time when ``history`` holds earlier windows, the
    distribution of the predictions (probabilities, or predicted values for regression), and
    one per drifted feature (or, when none drifted, the three with the largest PSI), at
    most 14.
    """
    folder.mkdir(parents=True, exist_ok=True)
    plots: list[Path] = []
    if result.features:
        plots.append(plot_psi([*result.features, *([result.prediction] if result.prediction else [])],
                              result.thresholds.psi_drift, folder / "psi.png"))
        if history:
            plots.append(plot_psi_history(history, result, result.thresholds.psi_drift, folder / "psi_history.png"))
        if result.prediction is not None:
            plots.append(plot_distribution(result.prediction, baseline["prediction"], pd.Series(live_scores),
                                           folder / f"dist-{PREDICTION}.png", result.thresholds.min_category_share))
        chosen = [f for f in result.features if f.drifted] or sorted(
            (f for f in result.features if f.psi is not None), key=lambda f: f.psi or 0.0, reverse=True
        )[:3]
        for item in chosen[:MAX_FEATURE_PLOTS]:
            plots.append(plot_distribution(item, baseline[item.feature], live[item.feature],
                                           folder / f"dist-{item.feature}.png", result.thresholds.min_category_share))
    body = result.to_dict()
    body["plots"] = [p.name for p in plots]
    (folder / "report.json").write_text(json.dumps(body, indent=2, allow_nan=False) + "\n")
    (folder / "report.md").write_text(render_markdown(result, plots))
    return folder
