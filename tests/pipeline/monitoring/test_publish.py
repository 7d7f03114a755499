"""Published metrics carry exactly the names, namespace and dimensions in
``pipeline.metric_names`` (what the alarms watch), and the Prometheus textfile parses.

moto's CloudWatch stores what it is sent; this proves our calls are well-formed and use
the agreed names, not that AWS would raise an alarm.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import boto3
import numpy as np
import pytest
from moto import mock_aws
from prometheus_client.parser import text_string_to_metric_families

from pipeline import metric_names
from pipeline.monitoring.analysis import MonitorResult, Verdict, analyse
from pipeline.monitoring.baseline import ServingBaseline
from pipeline.monitoring.capture import read_capture
from pipeline.monitoring.labels import join_labels, read_labels
from pipeline.monitoring.publish import PROMETHEUS_METRICS, cloudwatch_datums, publish_cloudwatch, write_prometheus
from pipeline.monitoring.thresholds import Thresholds
from tests.pipeline.monitoring.conftest import shift, write_capture, write_labels

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
MONITOR_METRICS = {
    metric_names.FEATURE_DRIFT_SCORE,
    metric_names.PREDICTION_DRIFT_SCORE,
    metric_names.DRIFTED_FEATURE_COUNT,
    metric_names.LIVE_ROC_AUC,
    metric_names.PERFORMANCE_DROP,
}


@pytest.fixture(scope="module")
def drifted(trained, baseline_frame, tmp_path_factory) -> MonitorResult:
    folder = tmp_path_factory.mktemp("publish")
    frame = shift(trained.holdout.iloc[:1000])
    ids = write_capture(folder, frame, trained.probabilities(frame), version="1")
    window = read_capture(folder)
    labels = join_labels(window, read_labels(write_labels(folder / "labels.csv", ids, frame["label"].to_numpy())))
    serving = ServingBaseline("adult-income", "1", "champion", "run", "uri", baseline_frame, holdout_roc_auc=0.9)
    return analyse(serving, window, labels, Thresholds())


@mock_aws
def test_cloudwatch_names_namespace_and_dimensions_are_the_shared_ones(drifted: MonitorResult) -> None:
    assert drifted.verdict.alarms
    sent = publish_cloudwatch(cloudwatch_datums(drifted, stack="dev", timestamp=NOW), region="us-east-1")
    assert sent == len(MONITOR_METRICS)
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    listed = cloudwatch.list_metrics(Namespace=metric_names.MONITORING_NAMESPACE)["Metrics"]
    assert {m["MetricName"] for m in listed} == MONITOR_METRICS
    for metric in listed:
        assert metric["Namespace"] == "MLOps/Monitoring"
        assert sorted((d["Name"], d["Value"]) for d in metric["Dimensions"]) == [("ModelName", "adult-income"), ("Stack", "dev")]
    stats = cloudwatch.get_metric_statistics(
        Namespace=metric_names.MONITORING_NAMESPACE,
        MetricName=metric_names.DRIFTED_FEATURE_COUNT,
        Dimensions=[{"Name": metric_names.DIM_MODEL_NAME, "Value": "adult-income"}, {"Name": metric_names.DIM_STACK, "Value": "dev"}],
        StartTime=datetime(2026, 11, 30, tzinfo=UTC),
        EndTime=datetime(2026, 12, 1, tzinfo=UTC),
        Period=3600,
        Statistics=["Maximum"],
    )
    assert [p["Maximum"] for p in stats["Datapoints"]] == [float(len(drifted.drifted_features))]
    assert not cloudwatch.list_metrics(Namespace=metric_names.SERVING_NAMESPACE)["Metrics"]


def test_a_window_that_was_not_judged_publishes_nothing(drifted: MonitorResult) -> None:
    for verdict in (Verdict.EMPTY, Verdict.INSUFFICIENT_DATA):
        thin = MonitorResult(**{**drifted.__dict__, "verdict": verdict})
        assert cloudwatch_datums(thin, stack="dev", timestamp=NOW) == []
    assert publish_cloudwatch([], region="us-east-1", client=object()) == 0
    with pytest.raises(ValueError, match="stack name"):
        cloudwatch_datums(drifted, stack="", timestamp=NOW)


def test_prometheus_textfile_has_every_documented_metric(drifted: MonitorResult, tmp_path: Path) -> None:
    path = write_prometheus(drifted, tmp_path / "prom" / "monitor.prom", timestamp=NOW)
    families = {f.name: f for f in text_string_to_metric_families(path.read_text())}
    assert set(families) == set(PROMETHEUS_METRICS)
    verdicts = {s.labels["verdict"]: s.value for s in families["mlmonitor_verdict"].samples}
    assert verdicts == {v.value: (1.0 if v is drifted.verdict else 0.0) for v in Verdict}
    psi = {s.labels["feature"]: s.value for s in families["mlmonitor_feature_psi"].samples}
    assert psi["age"] == pytest.approx(next(f.psi for f in drifted.features if f.feature == "age"))
    score = families["mlmonitor_feature_drift_score"].samples[0]
    assert score.labels == {"model_name": "adult-income", "model_version": "1"}
    assert score.value == pytest.approx(drifted.feature_drift_score)
    assert np.isfinite(families["mlmonitor_live_roc_auc"].samples[0].value)


@mock_aws
def test_every_monitoring_alarm_watches_a_metric_the_monitor_publishes(drifted: MonitorResult) -> None:
    """The Monitoring component's alarm specs (infra/monitoring.py) against what lands in
    CloudWatch: same namespace, metric name and dimension set, for every monitor alarm."""
    from infra.config import AlarmSettings
    from infra.monitoring import alarm_specs

    settings = AlarmSettings(errors_5xx=1, errors_4xx=10, latency_p99_ms=500, feature_drift_psi=0.2,
                             prediction_drift_psi=0.2, performance_drop=0.05, gpu_idle_minutes=30,
                             email="", retrain_on_drift=True)
    specs = [s for s in alarm_specs(settings, model_name="adult-income", stack="prod", cluster_name="c")
             if s.namespace == metric_names.MONITORING_NAMESPACE]
    assert specs, "the Monitoring component defines no monitor alarms"
    publish_cloudwatch(cloudwatch_datums(drifted, stack="prod", timestamp=NOW), region="us-east-1")
    published = {
        (m["Namespace"], m["MetricName"], frozenset((d["Name"], d["Value"]) for d in m["Dimensions"]))
        for m in boto3.client("cloudwatch", region_name="us-east-1").list_metrics()["Metrics"]
    }
    for spec in specs:
        assert (spec.namespace, spec.metric, frozenset(spec.dimensions.items())) in published, spec.key
