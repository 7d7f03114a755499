"""The commit pipeline's evaluate, gate and register adapters with a regression project:
the evaluate and gate steps run a real scikit-learn regressor to a report and its
pictures, and the candidate run's metric names (``pipeline.wiring.run_metrics``) per task
are what the docs promise and what a dashboard or ``search_runs`` filter reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline import schema
from pipeline.steps.evaluate import evaluate
from pipeline.steps.gate import judge
from pipeline.wiring import run_metrics
from tests.pipeline.regression_case import noisy, regression_frame, write_project


def test_regression_metrics_are_named_by_error_slice_and_group(use_project, tmp_path) -> None:
    frame = regression_frame()
    frame.loc[:99, "region"] = None  # a missing slice value: "<missing>" is no valid MLflow name
    thresholds = use_project(write_project(tmp_path, frame)).THRESHOLDS
    challenger, champion = noisy(frame, 0.9, seed=1), noisy(frame, 1.0, seed=2)
    evaluation = json.loads(json.dumps(evaluate(frame, challenger).to_dict()))
    gate = json.loads(json.dumps(judge(frame, challenger, champion, thresholds).to_dict()))
    metrics = run_metrics(evaluation, gate)
    assert {"holdout_rmse", "holdout_mae", "holdout_r2"} <= set(metrics)
    assert {"slice_region_east_rmse", "slice_region_east_mae", "slice_region__missing__rmse"} <= set(metrics)
    assert metrics["group_group_F_rmse"] == evaluation["fairness"]["groups"]["F"]["rmse"]
    assert metrics["group_error_ratio"] == evaluation["fairness"]["error_ratio"]
    assert metrics["gate_rmse_difference_ci_high"] == gate["bootstrap"]["ci_high"]
    assert not [k for k in metrics if "roc_auc" in k or k.startswith("fairness_")], metrics
    assert all(set(k) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-. /") for k in metrics)


def test_binary_metrics_keep_their_names(use_project) -> None:
    use_project(schema.SHIPPED_PROJECT)
    evaluation = {"metrics": {"roc_auc": 0.9, "brier": 0.1},
                  "slices": [{"column": "sex", "value": "Female", "rows": 10, "positives": 3, "roc_auc": 0.8,
                              "accuracy": 0.7}],
                  "fairness": {"attribute": "sex", "equal_opportunity_difference": 0.05,
                               "demographic_parity_difference": 0.1, "groups": {}}}
    metrics = run_metrics(evaluation, {"bootstrap": {"ci_low": -0.004}})
    assert metrics == {"holdout_roc_auc": 0.9, "holdout_brier": 0.1, "slice_sex_Female_roc_auc": 0.8,
                       "fairness_equal_opportunity_difference": 0.05, "fairness_demographic_parity_difference": 0.1,
                       "gate_auc_difference_ci_low": -0.004}
    assert np.isfinite(list(metrics.values())).all()


def test_the_evaluate_and_gate_steps_judge_a_regressor(use_project, tmp_path) -> None:
    from types import SimpleNamespace

    import joblib
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from pipeline.runner import Artifact, StepContext
    from pipeline.wiring import evaluate_step, gate_step
    from training.train import MODEL_FILE

    frame = regression_frame()
    use_project(write_project(tmp_path, frame))
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["region", "group"]), remainder="passthrough"), LinearRegression()
    ).fit(frame[list(schema.FEATURES)], frame["price"])
    (tmp_path / "model").mkdir()
    joblib.dump(model, tmp_path / "model" / MODEL_FILE)
    frame.to_parquet(tmp_path / "holdout.parquet")
    (tmp_path / "champion.json").write_text("null")

    def context(name: str, **inputs: Path) -> StepContext:
        (tmp_path / name).mkdir()
        return StepContext(config=SimpleNamespace(gate=schema.THRESHOLDS, model_name="prices"), store=None,
                           tracking_uri="", inputs={k: Artifact(k, v, k) for k, v in inputs.items()},
                           output_dir=tmp_path / name, report_dir=tmp_path / "reports", key=name, keys={})

    evaluated = evaluate_step(context("evaluate", model=tmp_path / "model", holdout=tmp_path / "holdout.parquet"))
    gate = context("gate", evaluation=evaluated["evaluation"].path, holdout=tmp_path / "holdout.parquet",
                   champion=tmp_path / "champion.json")
    gate_step(gate)
    report = json.loads((tmp_path / "reports" / "gate_report.json").read_text())
    assert gate.outcome_changes["gate_passed"] is True, report["reasons"]
    assert report["challenger"]["task"] == "regression" and report["challenger"]["metrics"]["r2"] > 0.95
    assert {p.name for p in (tmp_path / "gate" / "plots").iterdir()} == {"predicted_vs_actual.png",
                                                                          "residuals_by_slice.png"}
    assert "## Slices (RMSE)" in (tmp_path / "reports" / "gate_report.md").read_text()
