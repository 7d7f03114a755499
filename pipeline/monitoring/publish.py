"""The monitor's scores as metrics: CloudWatch for the alarms, a Prometheus textfile locally.

CloudWatch names, namespace and dimensions come from ``pipeline.metric_names`` and nowhere
else, because the Monitoring component's alarms (and the retrain rule behind them) read
exactly those names: a typo here would be an alarm that never fires. A window that is
empty or too small publishes no drift datapoints at all, so an alarm sees missing data
(treated as not breaching) rather than a noisy score it would act on.

The Prometheus textfile (for node_exporter's textfile collector, or just to read) is
always written; its names are listed in ``PROMETHEUS_METRICS`` and docs/monitoring.md.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Final

from pipeline import metric_names
from pipeline.monitoring.analysis import MonitorResult, Verdict

PROMETHEUS_METRICS: Final = {
    "mlmonitor_feature_psi": "PSI of one feature, live window against the training baseline",
    "mlmonitor_feature_drift_score": "largest per-feature PSI in the window",
    "mlmonitor_prediction_drift_psi": "PSI of the predictions (probabilities, or values for regression)",
    "mlmonitor_drifted_features": "number of features that drifted (PSI and test)",
    "mlmonitor_live_roc_auc": "ROC AUC on the window's labelled rows",
    "mlmonitor_performance_drop": "reference ROC AUC minus live ROC AUC (regression: live error over the reference, minus 1)",
    "mlmonitor_window_rows": "captured rows in the window for the serving version",
    "mlmonitor_malformed_lines": "capture lines skipped as malformed",
    "mlmonitor_verdict": "1 for the run's verdict, 0 for the others",
    "mlmonitor_last_run_timestamp_seconds": "when the monitor last ran (Unix time)",
}


def cloudwatch_datums(result: MonitorResult, *, stack: str, timestamp: datetime) -> list[dict[str, Any]]:
    """The ``MetricData`` entries for one run: drift scores when the window was judged,
    performance when labels were enough. Every entry carries the ``ModelName`` and
    ``Stack`` dimensions. Raises ``ValueError`` on an empty stack name."""
    if not stack:
        raise ValueError("a CloudWatch datapoint needs a stack name (--stack or MLOPS_STACK)")
    dimensions = [
        {"Name": metric_names.DIM_MODEL_NAME, "Value": result.model_name},
        {"Name": metric_names.DIM_STACK, "Value": stack},
    ]
    values: list[tuple[str, float | None, str]] = []
    if result.verdict not in (Verdict.EMPTY, Verdict.INSUFFICIENT_DATA):
        values += [
            (metric_names.FEATURE_DRIFT_SCORE, result.feature_drift_score, "None"),
            (metric_names.PREDICTION_DRIFT_SCORE, result.prediction_drift_score, "None"),
            (metric_names.DRIFTED_FEATURE_COUNT, float(len(result.drifted_features)), "Count"),
        ]
        performance = result.performance
        # Both metrics are ROC AUC figures, and the alarms on them compare AUC points: a
        # regression model's relative error increase would trip them at the wrong level,
        # so its performance stays in the report, MLflow and Prometheus.
        if performance is not None and performance.status == "measured" and performance.metric == "roc_auc":
            values.append((metric_names.LIVE_ROC_AUC, performance.live_roc_auc, "None"))
            values.append((metric_names.PERFORMANCE_DROP, performance.drop, "None"))
    return [
        {"MetricName": name, "Dimensions": dimensions, "Timestamp": timestamp, "Value": float(value), "Unit": unit}
        for name, value, unit in values
        if value is not None
    ]


def publish_cloudwatch(datums: list[dict[str, Any]], *, region: str, client: Any = None) -> int:
    """Send the datapoints to CloudWatch under ``MONITORING_NAMESPACE``; returns how many.

    The client is made here, not at import (it honours ``AWS_ENDPOINT_URL``, which is how
    tests point it at moto). ``PutMetricData`` takes at most 1,000 datapoints per call.
    """
    if not datums:
        return 0
    if client is None:
        import boto3

        client = boto3.client("cloudwatch", region_name=region)
    for start in range(0, len(datums), 1000):
        client.put_metric_data(Namespace=metric_names.MONITORING_NAMESPACE, MetricData=datums[start : start + 1000])
    return len(datums)


def write_prometheus(result: MonitorResult, path: Path, *, timestamp: datetime) -> Path:
    """Write the run's metrics in Prometheus text format, atomically (write_to_textfile
    renames a temporary file, so a scraper never reads half a file)."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    registry = CollectorRegistry()
    labels = {"model_name": result.model_name, "model_version": result.model_version}
    names = list(labels)

    def gauge(name: str, extra: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, PROMETHEUS_METRICS[name], [*names, *extra], registry=registry)

    feature_psi = gauge("mlmonitor_feature_psi", ("feature",))
    for item in result.features:
        if item.psi is not None:
            feature_psi.labels(**labels, feature=item.feature).set(item.psi)
    for name, value in (
        ("mlmonitor_feature_drift_score", result.feature_drift_score),
        ("mlmonitor_prediction_drift_psi", result.prediction_drift_score),
        ("mlmonitor_drifted_features", float(len(result.drifted_features)) if result.features else None),
        ("mlmonitor_live_roc_auc", None if result.performance is None else result.performance.live_roc_auc),
        ("mlmonitor_performance_drop", None if result.performance is None else result.performance.drop),
        ("mlmonitor_window_rows", float(result.capture["rows"])),
        ("mlmonitor_malformed_lines", float(result.capture["malformed_lines"])),
        ("mlmonitor_last_run_timestamp_seconds", timestamp.timestamp()),
    ):
        metric = gauge(name)
        if value is not None:
            metric.labels(**labels).set(value)
    verdict = gauge("mlmonitor_verdict", ("verdict",))
    for option in Verdict:
        verdict.labels(**labels, verdict=option.value).set(1.0 if option is result.verdict else 0.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
    return path
