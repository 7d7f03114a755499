"""The monitor on a project that is not the shipped one: a regression model (scikit-learn's
diabetes data, ``tests/pipeline/monitoring/regression.py``) whose window, labels and
baseline follow its own contract, and a binary project whose label is text."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import schema
from pipeline.monitoring.analysis import MonitorResult, Verdict, analyse
from pipeline.monitoring.baseline import ServingBaseline, normalise_baseline
from pipeline.monitoring.capture import CaptureWindow, read_capture
from pipeline.monitoring.labels import LabelJoin, join_labels, label_targets, read_labels
from pipeline.monitoring.thresholds import Thresholds
from pipeline.synthetic import generate_synthetic
from tests.pipeline.monitoring.conftest import write_capture, write_labels
from tests.pipeline.monitoring.regression import LABEL, MODEL_NAME, diabetes_frame, fit_regressor, rmse, write_project

THRESHOLDS = Thresholds()


@pytest.fixture
def diabetes(use_project, tmp_path: Path) -> pd.DataFrame:
    """The regression project active (gate metric RMSE, slice and sensitive attribute ``sex``)."""
    frame = diabetes_frame()
    use_project(write_project(tmp_path, frame))
    return frame


def serving_of(model, frame: pd.DataFrame, holdout_metrics: dict[str, float] | None = None) -> ServingBaseline:
    """The baseline the registering run saves (training rows, label, predicted value)."""
    rows = frame.loc[:, [*schema.FEATURES, schema.LABEL]].copy()
    rows["prediction"] = model.predict(rows.loc[:, list(schema.FEATURES)])
    return ServingBaseline(MODEL_NAME, "1", "champion", "run", "uri", normalise_baseline(rows, "test"),
                           holdout_metrics=dict(holdout_metrics or {}))


def window_of(folder: Path, frame: pd.DataFrame, model) -> tuple[CaptureWindow, list[str]]:
    """Capture lines as the server writes them for a regression model: values, null probabilities."""
    predictions = model.predict(frame.loc[:, list(schema.FEATURES)])
    ids = write_capture(folder, frame, None, predictions=predictions, version="1", model_name=MODEL_NAME)
    return read_capture(folder, model_name=MODEL_NAME, model_version="1"), ids


def labelled(folder: Path, window: CaptureWindow, ids: list[str], truth: np.ndarray) -> LabelJoin:
    path = write_labels(folder / "labels.csv", ids, truth)
    return join_labels(window, read_labels(path), source=str(path))


def judge(serving: ServingBaseline, window: CaptureWindow, labels: LabelJoin | None = None) -> MonitorResult:
    return analyse(serving, window, labels, THRESHOLDS)


def test_same_distribution_is_ok_and_reports_the_error(diabetes: pd.DataFrame, tmp_path: Path) -> None:
    """Same-distribution traffic with its true labels: no drift, prediction drift judged on
    the predicted values (the capture has no probabilities), RMSE close to the reference."""
    model = fit_regressor(diabetes)
    live = generate_synthetic(1000, seed=4, reference=diabetes)
    window, ids = window_of(tmp_path, live, model)
    result = judge(serving_of(model, diabetes), window, labelled(tmp_path, window, ids, live[LABEL].to_numpy()))
    assert result.verdict is Verdict.OK, result.reasons
    assert result.prediction is not None and result.prediction.psi is not None and not result.prediction.drifted
    perf = result.performance
    assert perf is not None and perf.status == "measured" and perf.metric == "rmse" and perf.labelled_rows == 1000
    assert perf.reference_source == "baseline rows (training data)"
    assert perf.live_value == pytest.approx(rmse(live[LABEL], model.predict(live.loc[:, list(schema.FEATURES)])))
    assert perf.live_mae is not None and perf.live_mae < perf.live_rmse
    assert abs(perf.drop) < THRESHOLDS.max_error_increase and not perf.dropped
    assert {(s.column, s.value) for s in perf.slices} == {("sex", "one"), ("sex", "two")}
    assert any(r.startswith("RMSE ") and "1000 labelled rows" in r for r in result.reasons)
    assert result.to_dict()["scores"]["performance_metric"] == "rmse"


@pytest.mark.parametrize("metric", ["rmse", "mae"])
def test_errors_that_grow_are_a_performance_drop_named_by_slice(metric: str, use_project, tmp_path: Path) -> None:
    """Labels far from the predictions for one sex: the gate's error metric rises past the
    relative limit overall and in that slice, against the version's holdout metric."""
    from pipeline.project import Gate, RegressionThresholds

    frame = diabetes_frame()
    use_project(write_project(tmp_path, frame, gate=Gate(metric, RegressionThresholds())))
    model = fit_regressor(frame)
    live = generate_synthetic(1200, seed=5, reference=frame)
    window, ids = window_of(tmp_path, live, model)
    reference = {"rmse": rmse(frame[LABEL], model.predict(frame.loc[:, list(schema.FEATURES)]))}
    reference["mae"] = float(np.mean(np.abs(frame[LABEL] - model.predict(frame.loc[:, list(schema.FEATURES)]))))
    truth = live[LABEL].to_numpy().copy()
    two = (live["sex"] == "two").to_numpy()
    truth[two] += np.random.default_rng(0).normal(0.0, 2 * reference["rmse"], two.sum())
    result = judge(serving_of(model, frame, reference), window, labelled(tmp_path, window, ids, truth))
    assert result.verdict is Verdict.PERFORMANCE_DROP, result.reasons
    perf = result.performance
    assert perf.metric == metric and perf.reference_value == pytest.approx(reference[metric])
    assert perf.reference_source == "model version holdout metric"
    assert perf.drop > THRESHOLDS.max_error_increase and perf.dropped
    flagged = {(s.column, s.value) for s in perf.slices if s.dropped}
    assert flagged == {("sex", "two")}
    name = metric.upper()
    assert result.reasons[0].startswith(f"{name} ") and "% above the reference" in result.reasons[0]
    assert any(r.startswith(f"slice sex=two: {name} ") for r in result.reasons)


def test_large_drift_is_drift_and_moves_the_predictions(diabetes: pd.DataFrame, tmp_path: Path) -> None:
    model = fit_regressor(diabetes)
    window, _ = window_of(tmp_path, generate_synthetic(1000, seed=6, drift=1.0, reference=diabetes), model)
    result = judge(serving_of(model, diabetes), window)
    assert result.verdict is Verdict.DRIFT, result.reasons
    assert {"age", "bmi", "bp"} <= set(result.drifted_features)
    assert result.prediction.drifted, "the predicted values moved with the inputs"


def test_a_contract_of_numbers_only_with_open_bounds(use_project, tmp_path: Path) -> None:
    """No categorical feature and ``bmi`` bounded below only: drift and the range check
    still work (the open side is infinite), and a negative bmi is out of range."""
    frame = diabetes_frame().drop(columns="sex")
    path = write_project(tmp_path, frame, sensitive=None, slices=())
    document = yaml.safe_load(path.read_text())
    bmi = next(c for c in document["data"]["columns"] if c["name"] == "bmi")
    del bmi["max"]
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    use_project(path)
    assert schema.CATEGORICAL_FEATURES == () and "bmi" not in schema.NUMERIC_RANGES
    model = fit_regressor(frame)
    live = generate_synthetic(600, seed=7, reference=frame)
    live.loc[live.index[:30], "bmi"] = -5.0
    window, _ = window_of(tmp_path, live, model)
    result = judge(serving_of(model, frame), window)
    failed = {(q.feature, q.check) for q in result.quality if q.failed}
    assert failed == {("bmi", "out_of_range")}
    assert result.verdict is Verdict.DRIFT
    assert all(f.kind == "numeric" for f in result.features)


def test_regression_labels_are_numbers(diabetes: pd.DataFrame, tmp_path: Path) -> None:
    """A regression label is any finite number; text, blanks and infinities are malformed."""
    targets = label_targets(pd.Series(["151.5", "75", "-3e1", "inf", "x", ""]))
    assert targets.tolist()[:3] == [151.5, 75.0, -30.0] and targets.iloc[3:].isna().all()
    model = fit_regressor(diabetes)
    window, ids = window_of(tmp_path, diabetes.iloc[:50], model)
    csv = tmp_path / "labels.csv"
    csv.write_text(f"request_id,row,label\n{ids[0]},0,151.5\n{ids[0]},1,75\n{ids[1]},0,nan\n{ids[1]},1,big\n")
    joined = join_labels(window, read_labels(csv), source=str(csv))
    assert sorted(joined.labels.tolist()) == [75.0, 151.5] and joined.malformed == 2


def test_a_text_label_is_read_by_its_positive_class(use_project, tmp_path: Path) -> None:
    """A binary contract whose label is ``yes``/``no``: labels and the baseline's label
    become 1/0 by the positive class, and a value the label does not have is malformed."""
    from pipeline.project import profile, render

    frame = diabetes_frame()
    frame["high"] = np.where(frame.pop(LABEL) > 140, "yes", "no")
    project = dataclasses.replace(profile(frame, "high", "binary", model_name="diabetes-high"), slices=("sex",))
    (tmp_path / "project.yaml").write_text(render(project))
    use_project(tmp_path / "project.yaml")
    assert schema.POSITIVE_CLASS == "yes"
    assert label_targets(pd.Series(["yes", "no", "maybe", "1"])).tolist()[:2] == [1.0, 0.0]
    assert label_targets(pd.Series(["maybe", "1"])).isna().all()
    rows = frame.copy()
    rows["prediction"] = 0.5
    baseline = normalise_baseline(rows, "test")
    assert baseline["high"].tolist() == [1.0 if v == "yes" else 0.0 for v in frame["high"]]


def test_the_holdout_errors_are_the_registering_runs_metrics(diabetes: pd.DataFrame, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from pipeline.monitoring.baseline import _holdout_metrics

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("x", artifact_location=(tmp_path / "a").as_uri())
    good = client.create_run(experiment).info.run_id
    for key, value in (("holdout_rmse", 54.2), ("holdout_mae", 43.9), ("holdout_roc_auc", 0.9)):
        client.log_metric(good, key, value)
    odd = client.create_run(experiment).info.run_id
    client.log_metric(odd, "holdout_rmse", -1.0)
    assert _holdout_metrics(client, good) == {"rmse": 54.2, "mae": 43.9}
    assert _holdout_metrics(client, odd) == {}, "a negative error is not a reference"


@pytest.mark.slow  # a registry, a report with plots, an MLflow run
def test_the_monitor_runs_end_to_end_on_a_regression_model(diabetes: pd.DataFrame, tmp_path: Path) -> None:
    """``run_monitor`` from the registry to the report, MLflow and the metrics: the report
    and the MLflow run carry RMSE and MAE; CloudWatch gets no ROC AUC figures."""
    import mlflow
    from mlflow import MlflowClient

    from pipeline import metric_names
    from pipeline.cli import main
    from pipeline.exit_codes import ExitCode
    from pipeline.monitoring.publish import cloudwatch_datums
    from pipeline.monitoring.runner import MonitorOptions, run_monitor

    model = fit_regressor(diabetes)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    baseline = diabetes.loc[:, [*schema.FEATURES, schema.LABEL]].copy()
    baseline["prediction"] = model.predict(baseline.loc[:, list(schema.FEATURES)])
    baseline.to_parquet(tmp_path / "baseline.parquet")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("train", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment)
    client.log_artifact(run.info.run_id, str(tmp_path / "baseline.parquet"), "monitoring")
    client.log_metric(run.info.run_id, "holdout_rmse", rmse(baseline[LABEL], baseline["prediction"]))
    client.create_registered_model(MODEL_NAME)
    version = client.create_model_version(MODEL_NAME, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_model_version_tag(MODEL_NAME, version.version, "baseline_uri",
                                 f"{run.info.artifact_uri}/monitoring/baseline.parquet")
    client.set_registered_model_alias(MODEL_NAME, "champion", version.version)

    live = generate_synthetic(800, seed=8, drift=0.8, reference=diabetes)
    capture = tmp_path / "capture"
    ids = write_capture(capture, live, None, predictions=model.predict(live.loc[:, list(schema.FEATURES)]),
                        version=str(version.version), model_name=MODEL_NAME)
    labels = write_labels(tmp_path / "labels.csv", ids, live[LABEL].to_numpy())
    try:
        outcome = run_monitor(MonitorOptions(capture=str(capture), tracking_uri=uri, reports_dir=tmp_path / "reports",
                                             labels=labels))
    finally:
        mlflow.set_tracking_uri(None)
    result = outcome.result
    assert result.model_name == MODEL_NAME and result.verdict is Verdict.PERFORMANCE_DROP, result.reasons
    assert result.performance.reference_source == "model version holdout metric"
    report = (outcome.report_dir / "report.md").read_text()
    assert "- RMSE " in report and "| slice | labelled rows | live RMSE | baseline RMSE |" in report
    assert (outcome.report_dir / "dist-prediction.png").is_file()
    logged = client.get_run(outcome.mlflow_run_id).data.metrics
    assert logged["live_rmse"] == pytest.approx(result.performance.live_rmse) and "live_roc_auc" not in logged
    assert "mlmonitor_performance_drop" in outcome.prometheus_file.read_text()
    published = {d["MetricName"] for d in cloudwatch_datums(result, stack="dev", timestamp=pd.Timestamp.now(tz="UTC"))}
    assert metric_names.DRIFTED_FEATURE_COUNT in published
    assert not published & {metric_names.LIVE_ROC_AUC, metric_names.PERFORMANCE_DROP}

    # The command: the model name is the project's, --max-error-increase reaches the verdict.
    reports = tmp_path / "cli-reports"
    code = main(["monitor", "--capture", str(capture), "--labels", str(labels), "--tracking-uri", uri,
                 "--reports-dir", str(reports), "--no-mlflow", "--max-error-increase", "5"])
    assert code == ExitCode.DRIFT_DETECTED
    (written,) = reports.glob("monitor/*/report.json")
    body = json.loads(written.read_text())
    assert body["model_name"] == MODEL_NAME and body["thresholds"]["max_error_increase"] == 5
    # The overall error is within 500 % now; a slice's own limit (25 %) is another matter.
    assert not body["performance"]["dropped"] and not any(r.startswith("RMSE ") for r in body["reasons"])


def test_a_binary_label_without_a_declared_negative_class_takes_any_other_number(
        use_project, tmp_path: Path) -> None:
    """``positive_class: 1`` on an integer label with no range: 1 is positive, any other
    number negative; text is still malformed."""
    frame = diabetes_frame()
    frame["high"] = (frame.pop(LABEL) > 140).astype("int64")
    path = write_project(tmp_path, frame.rename(columns={"high": LABEL}), slices=())
    document = yaml.safe_load(path.read_text())
    document["task"], document["data"]["positive_class"] = "binary", 1
    document["gate"] = {"metric": "roc_auc"}
    label = next(c for c in document["data"]["columns"] if c["name"] == LABEL)
    label["type"] = "integer"
    label.pop("min", None), label.pop("max", None)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    use_project(path)
    targets = label_targets(pd.Series(["1", "0", "1.0", "7", "yes", ""]))
    assert targets.tolist()[:4] == [1.0, 0.0, 1.0, 0.0] and targets.iloc[4:].isna().all()
