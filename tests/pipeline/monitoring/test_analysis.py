"""The verdict and its reasons on known windows: unchanged, shifted, broken, thin, empty,
and with labels that show the model got worse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.monitoring.analysis import MonitorResult, Verdict, analyse
from pipeline.monitoring.baseline import ServingBaseline
from pipeline.monitoring.capture import CaptureWindow, read_capture
from pipeline.monitoring.labels import LabelJoin, join_labels, read_labels
from pipeline.monitoring.thresholds import Thresholds
from tests.pipeline.monitoring.conftest import Trained, shift, write_capture, write_labels

THRESHOLDS = Thresholds()


@pytest.fixture(scope="module")
def serving(baseline_frame: pd.DataFrame) -> ServingBaseline:
    return ServingBaseline("adult-income", "1", "champion", "run", "file:///baseline.parquet", baseline_frame, holdout_roc_auc=None)


def window_of(folder: Path, frame: pd.DataFrame, trained: Trained) -> tuple[CaptureWindow, list[str]]:
    ids = write_capture(folder, frame, trained.probabilities(frame), version="1")
    return read_capture(folder, model_name="adult-income", model_version="1"), ids


def labelled(folder: Path, window: CaptureWindow, ids: list[str], labels: np.ndarray) -> LabelJoin:
    path = write_labels(folder / "labels.csv", ids, labels)
    return join_labels(window, read_labels(path), source=str(path))


def run(serving: ServingBaseline, window: CaptureWindow, labels: LabelJoin | None = None) -> MonitorResult:
    return analyse(serving, window, labels, THRESHOLDS)


def test_unchanged_traffic_is_ok(serving, trained: Trained, tmp_path: Path) -> None:
    window, _ = window_of(tmp_path, trained.holdout.iloc[:1000], trained)
    result = run(serving, window)
    assert result.verdict is Verdict.OK, result.reasons
    assert not result.drifted_features and not result.prediction.drifted
    assert "no feature drifted on 1000 rows" in result.reasons[0]
    assert result.feature_drift_score is not None and result.feature_drift_score < THRESHOLDS.psi_drift
    assert not any(q.failed for q in result.quality)


def test_shifted_traffic_drifts_on_the_features_that_moved(serving, trained: Trained, tmp_path: Path) -> None:
    window, _ = window_of(tmp_path, shift(trained.holdout.iloc[:1000]), trained)
    result = run(serving, window)
    assert result.verdict is Verdict.DRIFT
    assert set(result.drifted_features) == {"age", "hours_per_week", "workclass", "marital_status"}
    assert result.prediction.drifted
    assert any(r.startswith("age: PSI") for r in result.reasons)
    assert result.to_dict()["scores"]["drifted_feature_count"] == 4


def test_broken_inputs_fail_data_quality(serving, trained: Trained, tmp_path: Path) -> None:
    frame = trained.holdout.iloc[:1000].copy()
    frame.loc[frame.index[:60], "age"] = 250  # out of range
    frame["native_country"] = frame["native_country"].astype(object)
    frame.loc[frame.index[100:150], "native_country"] = "Atlantis"  # unseen
    frame["education"] = frame["education"].astype(object)
    frame.loc[frame.index[200:320], "education"] = None  # nulls the baseline never had
    window, _ = window_of(tmp_path, frame, trained)
    result = run(serving, window)
    assert result.verdict is Verdict.DRIFT
    failed = {(q.feature, q.check) for q in result.quality if q.failed}
    assert failed == {("age", "out_of_range"), ("native_country", "unseen_categories"), ("education", "nulls")}
    unseen = next(q for q in result.quality if q.check == "unseen_categories" and q.feature == "native_country")
    # The holdout has a few rare countries the 5,000 baseline rows lack: real unseen values.
    assert 50 <= unseen.count <= 55 and unseen.examples[0] == "Atlantis"
    assert any("data quality age: out of range 6.0%" in r for r in result.reasons)


def test_a_thin_window_is_insufficient_not_an_alarm(serving, trained: Trained, tmp_path: Path) -> None:
    window, _ = window_of(tmp_path, shift(trained.holdout.iloc[:50]), trained)
    result = run(serving, window)
    assert result.verdict is Verdict.INSUFFICIENT_DATA
    assert not result.verdict.alarms
    assert "50 row(s)" in result.reasons[0] and "min_rows=200" in result.reasons[0]
    assert result.features == [] and result.feature_drift_score is None


def test_an_empty_window_says_so(serving, tmp_path: Path) -> None:
    (tmp_path / "capture-1.jsonl").write_text("{broken\n")
    result = run(serving, read_capture(tmp_path, model_name="adult-income", model_version="1"))
    assert result.verdict is Verdict.EMPTY
    assert "no captured rows" in result.reasons[0] and "1 malformed" in result.reasons[0]
    assert result.notes == ["skipped 1 malformed capture line(s) of 1"]


def test_true_labels_keep_the_verdict_ok_and_report_auc(serving, trained: Trained, tmp_path: Path) -> None:
    frame = trained.holdout.iloc[:1000]
    window, ids = window_of(tmp_path, frame, trained)
    result = run(serving, window, labelled(tmp_path, window, ids, frame["label"].to_numpy()))
    assert result.verdict is Verdict.OK, result.reasons
    perf = result.performance
    assert perf is not None and perf.status == "measured" and perf.labelled_rows == 1000
    assert perf.reference_source == "baseline rows (training data)"
    assert 0.8 < perf.live_roc_auc < 0.95 and not perf.dropped
    assert {(s.column, s.value) for s in perf.slices} >= {("sex", "Male"), ("sex", "Female")}


def test_labels_that_disagree_are_a_performance_drop(serving, trained: Trained, tmp_path: Path) -> None:
    frame = trained.holdout.iloc[:1000]
    window, ids = window_of(tmp_path, frame, trained)
    truth = frame["label"].to_numpy().copy()
    flip = np.random.default_rng(0).random(truth.size) < 0.3
    truth[flip] = 1 - truth[flip]
    result = run(serving, window, labelled(tmp_path, window, ids, truth))
    assert result.verdict is Verdict.PERFORMANCE_DROP
    assert result.performance.drop > THRESHOLDS.max_auc_drop
    assert result.reasons[0].startswith("ROC AUC ")


def test_a_slice_that_got_worse_is_named(trained: Trained, baseline_frame: pd.DataFrame, tmp_path: Path) -> None:
    serving = ServingBaseline("adult-income", "1", "champion", "run", "uri", baseline_frame, holdout_roc_auc=0.5)
    frame = trained.holdout.iloc[:2000]
    window, ids = window_of(tmp_path, frame, trained)
    truth = frame["label"].to_numpy().copy()
    female = (frame["sex"] == "Female").to_numpy()
    truth[female] = np.random.default_rng(1).integers(0, 2, female.sum())
    result = run(serving, window, labelled(tmp_path, window, ids, truth))
    assert result.verdict is Verdict.PERFORMANCE_DROP
    flagged = {(s.column, s.value) for s in result.performance.slices if s.dropped}
    assert ("sex", "Female") in flagged and ("sex", "Male") not in flagged
    assert result.performance.reference_source == "model version holdout metric"
    assert any(r.startswith("slice sex=Female") for r in result.reasons)


def test_too_few_labels_are_noted_not_judged(serving, trained: Trained, tmp_path: Path) -> None:
    frame = trained.holdout.iloc[:1000]
    window, ids = window_of(tmp_path, frame, trained)
    labels = labelled(tmp_path, window, ids[:2], 1 - frame["label"].to_numpy()[:50])
    result = run(serving, window, labels)
    assert result.verdict is Verdict.OK
    assert result.performance.status == "insufficient"
    assert any("50 labelled rows" in n for n in result.notes)


def test_thresholds_refuse_nonsense_and_list_every_problem() -> None:
    with pytest.raises(ValueError) as error:
        Thresholds(min_rows=0, psi_bins=1, p_value=2.0, psi_drift=-0.1)
    message = str(error.value)
    for fragment in ("min_rows=0", "psi_bins=1", "p_value=2.0", "psi_drift=-0.1 is negative"):
        assert fragment in message
    with pytest.raises(ValueError, match="not a number"):
        Thresholds(max_auc_drop=float("nan"))


def test_the_synthetic_generator_drifts_only_when_asked(serving, trained: Trained, tmp_path: Path) -> None:
    """``pipeline.synthetic`` (written apart from the monitor) at drift 0 and 0.8."""
    from pipeline.synthetic import generate_synthetic

    calm, moved = generate_synthetic(800, seed=11, drift=0.0), generate_synthetic(800, seed=12, drift=0.8)
    calm_result = run(serving, window_of(tmp_path / "calm", calm, trained)[0])
    moved_result = run(serving, window_of(tmp_path / "moved", moved, trained)[0])
    # At drift 0 every feature is the real one (the generator's rank jitter keeps the
    # 40-hour spike), so nothing may drift.
    assert calm_result.drifted_features == [], calm_result.reasons
    assert not calm_result.prediction.drifted
    assert moved_result.verdict is Verdict.DRIFT
    assert {"age", "hours_per_week", "occupation"} <= set(moved_result.drifted_features)
    assert moved_result.feature_drift_score > 2 * calm_result.feature_drift_score


def test_all_null_probabilities_are_insufficient_not_psi_zero_ok(serving, trained: Trained, tmp_path: Path) -> None:
    frame = trained.holdout.iloc[:1000]
    write_capture(tmp_path, frame, trained.probabilities(frame), version="1")
    # The server writes null for a model without predict_proba: no line has a probability.
    path = tmp_path / "capture-0001.jsonl"
    records = [json.loads(text) for text in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({**record, "probabilities": None}) + "\n" for record in records))
    result = run(serving, read_capture(tmp_path, model_name="adult-income", model_version="1"))
    assert result.verdict is Verdict.INSUFFICIENT_DATA, result.reasons
    assert "0 of 1000 row(s)" in result.reasons[0] and "prediction drift cannot be judged" in result.reasons[0]
    assert result.prediction is not None and result.prediction.psi is None
