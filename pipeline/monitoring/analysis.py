"""The monitor's judgement: every statistic of one window, and a verdict with reasons.

``analyse`` is pure: it takes the serving baseline, the capture window and the joined
labels, and returns a ``MonitorResult`` that the report, the metrics and the command all
read. The verdict is one of five, in this order of precedence:

- ``empty``: no captured rows for the serving model version;
- ``insufficient_data``: fewer rows than ``Thresholds.min_rows``, too few for a test to
  mean anything, or no probabilities to compare (all null), so the monitor says so
  instead of alarming or claiming "ok";
- ``performance_drop``: labelled rows show the model got worse past a limit, overall or
  in a slice (ROC AUC for a binary model, the gate's error metric for regression);
- ``drift``: a feature or the predictions drifted, or a data-quality check failed;
- ``ok``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import numpy as np

from pipeline.monitoring.baseline import PREDICTION_COLUMN, ServingBaseline
from pipeline.monitoring.capture import CaptureWindow
from pipeline.monitoring.drift import FeatureDrift, feature_drift, prediction_drift
from pipeline.monitoring.labels import LabelJoin
from pipeline.monitoring.performance import Performance, evaluate_performance
from pipeline.monitoring.quality import QualityCheck, data_quality
from pipeline.monitoring.thresholds import Thresholds
from pipeline import schema

METRIC_NAMES = {"roc_auc": "ROC AUC", "rmse": "RMSE", "mae": "MAE"}


class Verdict(StrEnum):
    """What the window says about the serving model."""

    OK = "ok"
    DRIFT = "drift"
    PERFORMANCE_DROP = "performance_drop"
    INSUFFICIENT_DATA = "insufficient_data"
    EMPTY = "empty"

    @property
    def alarms(self) -> bool:
        """Whether this verdict should page someone and may start a retrain."""
        return self in (Verdict.DRIFT, Verdict.PERFORMANCE_DROP)


@dataclass
class MonitorResult:
    """Everything one monitor run found; ``to_dict`` is the JSON report's body."""

    verdict: Verdict
    reasons: list[str]
    notes: list[str]
    model_name: str
    model_version: str
    alias: str
    baseline_uri: str
    baseline_rows: int
    capture: dict[str, Any]
    labels: dict[str, Any] | None
    thresholds: Thresholds
    features: list[FeatureDrift] = field(default_factory=list)
    prediction: FeatureDrift | None = None
    quality: list[QualityCheck] = field(default_factory=list)
    performance: Performance | None = None
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def feature_drift_score(self) -> float | None:
        """Largest per-feature PSI (``FeatureDriftScore``), None when nothing was compared."""
        scores = [f.psi for f in self.features if f.psi is not None]
        return max(scores) if scores else None

    @property
    def prediction_drift_score(self) -> float | None:
        return None if self.prediction is None else self.prediction.psi

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    def to_dict(self) -> dict[str, Any]:
        """A strict-JSON-ready dict (NaN and infinities become null)."""
        body = asdict(self)
        body["verdict"] = self.verdict.value
        body["scores"] = {
            "feature_drift_score": self.feature_drift_score,
            "prediction_drift_score": self.prediction_drift_score,
            "drifted_feature_count": len(self.drifted_features),
            "drifted_features": self.drifted_features,
            "live_roc_auc": None if self.performance is None else self.performance.live_roc_auc,
            "performance_metric": None if self.performance is None else self.performance.metric,
            "live_performance": None if self.performance is None else self.performance.live_value,
            "performance_drop": None if self.performance is None else self.performance.drop,
        }
        return _finite(body)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value


def _capture_summary(window: CaptureWindow) -> dict[str, Any]:
    return {
        "source": window.source,
        "files": window.files,
        "lines": window.lines,
        "requests": window.requests,
        "rows": window.rows,
        "rows_read": window.rows_read,
        "rows_over_request_cap": window.rows_over_request_cap,
        "max_rows": window.limits.max_rows,
        "max_rows_per_request": window.limits.max_rows_per_request,
        "damaged_files": list(window.damaged_files),
        "malformed_lines": window.malformed_lines,
        "malformed_examples": list(window.malformed_examples),
        "other_model_lines": window.other_model_lines,
        "other_model_rows": window.other_model_rows,
        "versions_seen": dict(window.versions_seen),
    }


def _labels_summary(labels: LabelJoin) -> dict[str, Any]:
    return {
        "source": labels.source,
        "label_lines": labels.label_lines,
        "matched": labels.matched,
        "malformed": labels.malformed,
        "duplicates": labels.duplicates,
        "unknown_request_ids": labels.unknown_request_ids,
        "unknown_request_examples": list(labels.unknown_request_examples),
        "unknown_rows": labels.unknown_rows,
        "ambiguous_request_ids": labels.ambiguous_request_ids,
        "ambiguous_labels": labels.ambiguous_labels,
        "ambiguous_examples": list(labels.ambiguous_examples),
        "over_cap": labels.over_cap,
    }


def _drift_reason(item: FeatureDrift, limit: float, thresholds: Thresholds) -> str:
    return (
        f"{item.feature}: PSI {item.psi:.3f} > {limit} and {item.test.upper()} p={item.p_value:.2g} "
        f"< {thresholds.p_value} ({item.live_count} live vs {item.baseline_count} baseline values)"
    )


def live_scores(window: CaptureWindow) -> np.ndarray:
    """What prediction drift compares for the active task: the probability of the positive
    class (binary, the baseline's ``prediction`` then holds the same), or the predicted
    value (regression)."""
    return window.probabilities if schema.IS_CLASSIFIER else window.predictions


def _worse(performance: Performance) -> str:
    """How far the measure moved: AUC points, or an error's relative increase."""
    if performance.metric == "roc_auc":
        return f"{performance.drop:.3f} below"
    return f"{performance.drop:.1%} above"


def analyse(
    baseline: ServingBaseline,
    window: CaptureWindow,
    labels: LabelJoin | None,
    thresholds: Thresholds,
) -> MonitorResult:
    """Judge one capture window against the serving model's baseline; see the module doc."""
    result = MonitorResult(
        verdict=Verdict.OK,
        reasons=[],
        notes=[],
        model_name=baseline.model_name,
        model_version=baseline.model_version,
        alias=baseline.alias,
        baseline_uri=baseline.baseline_uri,
        baseline_rows=len(baseline.frame),
        capture=_capture_summary(window),
        labels=None if labels is None else _labels_summary(labels),
        thresholds=thresholds,
    )
    if window.malformed_lines:
        result.notes.append(f"skipped {window.malformed_lines} malformed capture line(s) of {window.lines}")
    for damaged in window.damaged_files:
        result.notes.append(f"capture file ended early, lines before the damage kept: {damaged}")
    if window.rows_over_request_cap:
        result.notes.append(
            f"{window.rows_over_request_cap} row(s) of large requests left out: a request counts at most "
            f"{window.limits.max_rows_per_request} rows, so one client's batches cannot dominate the window"
        )
    if window.sampled:
        result.notes.append(f"window sampled uniformly: {window.rows} of {window.rows_read} rows (max_rows)")
    if window.other_model_rows:
        result.notes.append(
            f"left out {window.other_model_rows} row(s) captured for other model versions: {window.versions_seen}"
        )
    if labels is not None:
        if labels.unknown_request_ids:
            result.notes.append(
                f"{labels.unknown_request_ids} label(s) name request ids not in this window, e.g. "
                + ", ".join(labels.unknown_request_examples)
            )
        if labels.unknown_rows:
            result.notes.append(f"{labels.unknown_rows} label(s) name a row their request does not have")
        if labels.ambiguous_request_ids:
            result.notes.append(
                f"{labels.ambiguous_labels} label(s) of {labels.ambiguous_request_ids} request id(s) excluded: each id "
                "appears in more than one capture record, so its labels cannot be placed, e.g. "
                + ", ".join(labels.ambiguous_examples)
            )
        if labels.over_cap:
            result.notes.append(f"{labels.over_cap} labelled row(s) beyond max_labelled_rows left out")
        if labels.malformed or labels.duplicates:
            result.notes.append(f"{labels.malformed} malformed and {labels.duplicates} repeated label line(s) skipped")

    target = f"{baseline.model_name} version {baseline.model_version}"
    if window.rows == 0:
        result.verdict = Verdict.EMPTY
        result.reasons.append(
            f"no captured rows for {target} in {window.source} "
            f"({window.files} file(s), {window.lines} line(s), {window.malformed_lines} malformed)"
        )
        return result

    result.quality = data_quality(baseline.frame, window.features, window.non_numeric, thresholds)
    if window.rows < thresholds.min_rows:
        result.verdict = Verdict.INSUFFICIENT_DATA
        result.reasons.append(
            f"window has {window.rows} row(s) for {target}, fewer than min_rows={thresholds.min_rows}: "
            "too few for the drift tests to mean anything, so no alarm"
        )
        failing = [q.describe() for q in result.quality if q.failed]
        if failing:
            result.notes.append("data-quality checks that would fail on a full window: " + "; ".join(failing))
        return result

    result.features = feature_drift(baseline.frame, window.features, thresholds)
    scores = live_scores(window)
    result.prediction = prediction_drift(baseline.frame[PREDICTION_COLUMN].to_numpy(), scores, thresholds)
    if labels is not None:
        result.performance = evaluate_performance(
            labels.features, labels.labels, labels.probabilities, labels.predictions,
            baseline.frame, baseline.holdout_roc_auc, thresholds, baseline.holdout_metrics,
        )
        if result.performance.note:
            result.notes.append(result.performance.note)

    drop_reasons: list[str] = []
    performance = result.performance
    if performance is not None and performance.status == "measured":
        name = METRIC_NAMES.get(performance.metric, performance.metric)
        binary = performance.metric == "roc_auc"
        limit = thresholds.max_auc_drop if binary else f"{thresholds.max_error_increase:.0%}"
        slice_limit = thresholds.max_slice_auc_drop if binary else f"{thresholds.max_slice_error_increase:.0%}"
        if performance.dropped:
            drop_reasons.append(
                f"{name} {performance.live_value:.3f} on {performance.labelled_rows} labelled rows is "
                f"{_worse(performance)} the reference {performance.reference_value:.3f} "
                f"({performance.reference_source}), limit {limit}"
            )
        drop_reasons.extend(
            f"slice {s.column}={s.value}: {name} {s.live_value:.3f} is "
            f"{f'{s.drop:.3f} below' if binary else f'{s.drop:.1%} above'} its baseline "
            f"{s.baseline_value:.3f}, limit {slice_limit}"
            for s in performance.slices
            if s.dropped
        )
    drift_reasons = [_drift_reason(f, thresholds.psi_drift, thresholds) for f in result.features if f.drifted]
    if result.prediction.drifted:
        drift_reasons.append(_drift_reason(result.prediction, thresholds.prediction_psi_drift, thresholds))
    drift_reasons.extend("data quality " + q.describe() for q in result.quality if q.failed)

    if drop_reasons:
        result.verdict = Verdict.PERFORMANCE_DROP
        result.reasons = drop_reasons + drift_reasons
    elif drift_reasons:
        result.verdict = Verdict.DRIFT
        result.reasons = drift_reasons
    elif result.prediction.psi is None:
        # No scores (probabilities all null: a classifier without predict_proba, or a
        # broken writer): prediction drift was never compared, and "PSI 0.000, ok" would
        # claim that it was.
        scored = int(np.isfinite(scores).sum())
        kind = "a probability" if schema.IS_CLASSIFIER else "a numeric prediction"
        result.verdict = Verdict.INSUFFICIENT_DATA
        result.reasons.append(
            f"only {scored} of {window.rows} row(s) for {target} carry {kind}: prediction drift "
            "cannot be judged, so no verdict (no feature drifted)"
        )
    else:
        top = max((f for f in result.features if f.psi is not None), key=lambda f: f.psi or 0.0, default=None)
        summary = f"no feature drifted on {window.rows} rows"
        if top is not None:
            summary += f" (largest PSI {top.psi:.3f} on {top.feature}, limit {thresholds.psi_drift})"
        result.reasons.append(summary)
        result.reasons.append(f"prediction PSI {result.prediction.psi or 0.0:.3f}, limit {thresholds.prediction_psi_drift}")
        result.reasons.append("all data-quality checks passed")
        if performance is not None and performance.status == "measured" and performance.live_value is not None:
            reference = "n/a" if performance.reference_value is None else f"{performance.reference_value:.3f}"
            name = METRIC_NAMES.get(performance.metric, performance.metric)
            result.reasons.append(f"{name} {performance.live_value:.3f} on {performance.labelled_rows} labelled rows (reference {reference})")
    return result
