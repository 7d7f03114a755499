"""``python -m pipeline monitor`` end to end on a temporary MLflow registry: exit codes,
report files, the MLflow run linked to the model version, CloudWatch on moto, the
refusing paths, and ``--retrain`` handing over to the commit pipeline."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from pipeline import metric_names
from pipeline.cli import main
from pipeline.exit_codes import ExitCode
from pipeline.monitoring import runner
from tests.pipeline.monitoring.conftest import Registry, shift, write_capture

pytestmark = pytest.mark.slow  # the registry fixture trains and registers a model


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "store"))
    monkeypatch.delenv("MLOPS_STACK", raising=False)


@pytest.fixture(scope="module")
def captures(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    trained = registry.trained
    root = tmp_path_factory.mktemp("captures")
    calm = trained.holdout.iloc[:600]
    moved = shift(trained.holdout.iloc[600:1200])
    write_capture(root / "calm", calm, trained.probabilities(calm), version=registry.version)
    write_capture(root / "moved", moved, trained.probabilities(moved), version=registry.version)
    write_capture(root / "thin", calm.iloc[:40], trained.probabilities(calm.iloc[:40]), version=registry.version)
    return {name: root / name for name in ("calm", "moved", "thin")}


def monitor(registry: Registry, tmp_path: Path, *args: str) -> int:
    return main(["monitor", "--tracking-uri", registry.tracking_uri, "--reports-dir", str(tmp_path / "reports"), *args])


def only_report(tmp_path: Path) -> dict:
    (folder,) = (tmp_path / "reports" / "monitor").iterdir()
    return json.loads((folder / "report.json").read_text())


def test_calm_traffic_exits_ok_and_logs_a_linked_run(registry, captures, tmp_path, capsys) -> None:
    assert monitor(registry, tmp_path, "--capture", str(captures["calm"])) == ExitCode.OK
    out = capsys.readouterr().out
    assert out.startswith("verdict: ok (adult-income version 1, alias champion)")
    report = only_report(tmp_path)
    assert report["verdict"] == "ok" and report["capture"]["rows"] == 600
    folder = next((tmp_path / "reports" / "monitor").iterdir())
    assert folder.name.endswith("Z-adult-income-v1") and folder.name[:8].isdigit()
    assert {"report.md", "report.json", "psi.png", "dist-prediction.png"} <= {p.name for p in folder.iterdir()}
    assert (tmp_path / "reports" / "monitor.prom").is_file()

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=registry.tracking_uri)
    run_id = out.split("mlflow run: ")[1].split()[0]
    run = client.get_run(run_id)
    assert run.data.tags["model_name"] == "adult-income" and run.data.tags["model_version"] == registry.version
    assert run.data.tags["verdict"] == "ok"
    assert "feature_drift_score" in run.data.metrics and "psi.age" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run_id, "monitor_report")}
    assert "monitor_report/report.md" in artifacts


def test_shifted_traffic_exits_drift_detected(registry, captures, tmp_path, capsys) -> None:
    code = monitor(registry, tmp_path, "--capture", str(captures["moved"]), "--no-mlflow")
    assert code == ExitCode.DRIFT_DETECTED == 6
    assert "verdict: drift" in capsys.readouterr().out
    assert "age" in only_report(tmp_path)["scores"]["drifted_features"]


def test_thin_and_empty_windows_exit_ok_with_the_outcome_printed(registry, captures, tmp_path, capsys) -> None:
    assert monitor(registry, tmp_path, "--capture", str(captures["thin"]), "--no-mlflow") == ExitCode.OK
    assert "verdict: insufficient_data" in capsys.readouterr().out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert monitor(registry, tmp_path, "--capture", str(empty), "--no-mlflow") == ExitCode.OK
    assert "verdict: empty" in capsys.readouterr().out


def test_a_version_without_baseline_is_invalid_input_not_a_traceback(registry, captures, tmp_path, capsys) -> None:
    assert monitor(registry, tmp_path, "--capture", str(captures["calm"]), "--alias", "bare") == ExitCode.INVALID_DATA
    err = capsys.readouterr().err
    assert "version 2 (alias 'bare') has no 'baseline_uri' tag" in err and "Traceback" not in err
    assert monitor(registry, tmp_path, "--capture", str(captures["calm"]), "--alias", "nobody") == ExitCode.INVALID_DATA
    assert "has no version with alias 'nobody'" in capsys.readouterr().err
    assert monitor(registry, tmp_path, "--capture", str(tmp_path / "missing")) == ExitCode.INVALID_DATA
    assert "does not exist" in capsys.readouterr().err
    assert monitor(registry, tmp_path, "--capture", str(captures["calm"]), "--labels", str(tmp_path / "x.csv")) == 4


def test_bad_arguments_are_usage_errors(registry, captures, tmp_path, capsys) -> None:
    assert monitor(registry, tmp_path, "--retrain") == ExitCode.USAGE
    assert "--retrain needs --retrain-data" in capsys.readouterr().err
    assert monitor(registry, tmp_path, "--publish-cloudwatch") == ExitCode.USAGE
    assert "needs --stack" in capsys.readouterr().err
    assert monitor(registry, tmp_path, "--min-rows", "0") == ExitCode.USAGE
    assert "min_rows=0" in capsys.readouterr().err
    assert monitor(registry, tmp_path, "--max-error-increase", "-0.1") == ExitCode.USAGE
    assert "max_error_increase=-0.1 is negative" in capsys.readouterr().err
    assert monitor(registry, tmp_path, "--retrain", "--retrain-data", str(tmp_path / "none.csv")) == ExitCode.INVALID_DATA


@mock_aws
def test_publish_cloudwatch_from_the_command(registry, captures, tmp_path, capsys) -> None:
    code = monitor(registry, tmp_path, "--capture", str(captures["moved"]), "--no-mlflow",
                   "--publish-cloudwatch", "--stack", "prod", "--region", "eu-west-1")
    assert code == ExitCode.DRIFT_DETECTED
    assert "cloudwatch: 3 datapoint(s) to eu-west-1, stack prod" in capsys.readouterr().out
    listed = boto3.client("cloudwatch", region_name="eu-west-1").list_metrics(Namespace=metric_names.MONITORING_NAMESPACE)
    assert {m["MetricName"] for m in listed["Metrics"]} == {
        metric_names.FEATURE_DRIFT_SCORE, metric_names.PREDICTION_DRIFT_SCORE, metric_names.DRIFTED_FEATURE_COUNT
    }


def fake_pipeline(exit_code: int) -> list[str]:
    """Stands in for ``python -m pipeline run`` here (the commit pipeline has its own tests);
    it records the data path it was given and exits as the gate would."""
    return [sys.executable, "-c", f"import sys; print('run', sys.argv[1:]); sys.exit({exit_code})", "--data"]


@pytest.mark.parametrize(
    ("gate_code", "monitor_code", "outcome"),
    [
        (ExitCode.GATE_REFUSED, ExitCode.DRIFT_DETECTED, "the gate refused the retrained model"),
        (ExitCode.OK, ExitCode.DRIFT_DETECTED, "the retrained model cleared the gate and was promoted"),
        (ExitCode.ERROR, ExitCode.ERROR, "the retrain failed (error)"),
    ],
)
def test_retrain_runs_on_drift_and_reports_the_gate(registry, captures, tmp_path, capsys, monkeypatch, gate_code, monitor_code, outcome) -> None:
    data = tmp_path / "fresh.csv"
    data.write_text("age\n1\n")
    monkeypatch.setattr(runner, "retrain_argv", lambda path, uri, name: [*fake_pipeline(int(gate_code)), str(path)])
    # One case logs to MLflow to check the retrain tags; the others skip it to save time.
    log = gate_code == ExitCode.GATE_REFUSED
    code = monitor(registry, tmp_path, "--capture", str(captures["moved"]), "--retrain", "--retrain-data", str(data),
                   *([] if log else ["--no-mlflow"]))
    assert code == monitor_code
    out = capsys.readouterr().out
    assert f"retrain: exit code {int(gate_code)}: {outcome}" in out
    folder = next((tmp_path / "reports" / "monitor").iterdir())
    recorded = json.loads((folder / "retrain.json").read_text())
    assert recorded["exit_code"] == gate_code and recorded["argv"][-1] == str(data)
    if log:
        from mlflow import MlflowClient

        run_id = out.split("mlflow run: ")[1].split()[0]
        tags = MlflowClient(tracking_uri=registry.tracking_uri).get_run(run_id).data.tags
        assert (tags["retrain_exit_code"], tags["verdict"]) == ("3", "drift")


def test_retrain_is_not_run_when_nothing_drifted(registry, captures, tmp_path, capsys, monkeypatch) -> None:
    data = tmp_path / "fresh.csv"
    data.write_text("age\n1\n")
    monkeypatch.setattr(runner, "retrain_argv", lambda *_: pytest.fail("retrain must not run on an ok verdict"))
    assert monitor(registry, tmp_path, "--capture", str(captures["calm"]), "--no-mlflow", "--retrain", "--retrain-data", str(data)) == 0
    assert "retrain:" not in capsys.readouterr().out


def test_with_json_stdout_holds_the_document_alone_even_through_a_retrain(registry, captures, tmp_path, capfd,
                                                                         monkeypatch) -> None:
    """The retrain's own output goes where the monitor's prints go under ``--json``
    (stderr), not into the JSON document on stdout."""
    data = tmp_path / "fresh.csv"
    data.write_text("age\n1\n")
    monkeypatch.setattr(runner, "retrain_argv", lambda path, uri, name: [*fake_pipeline(0), str(path)])
    code = monitor(registry, tmp_path, "--capture", str(captures["moved"]), "--no-mlflow", "--json",
                   "--retrain", "--retrain-data", str(data))
    assert code == ExitCode.DRIFT_DETECTED
    out, err = capfd.readouterr()
    document = json.loads(out)
    assert document["retrain"]["exit_code"] == 0 and document["exit_code"] == ExitCode.DRIFT_DETECTED
    assert f"run ['--data', '{data}']" in err


def test_retrain_argv_is_the_commit_pipeline_forced(tmp_path) -> None:
    argv = runner.retrain_argv(tmp_path / "d.csv", "sqlite:///x.db", "m")
    assert argv == [sys.executable, "-m", "pipeline", "run", "--data", str(tmp_path / "d.csv"), "--force",
                    "--tracking-uri", "sqlite:///x.db", "--model-name", "m"]
    # The real command line parses: the commit pipeline accepts every flag we pass.
    from pipeline.cli import build_parser

    parsed = build_parser().parse_args(argv[3:])
    assert (parsed.command, parsed.force, parsed.tracking_uri, parsed.model_name) == ("run", True, "sqlite:///x.db", "m")


def test_capture_retention_prunes_old_files_before_the_window(registry, captures, tmp_path, capsys) -> None:
    import os
    import shutil
    import time

    folder = tmp_path / "capture"
    shutil.copytree(captures["calm"], folder)
    old = folder / "capture-0000-old.jsonl"
    shutil.copy(folder / "capture-0001.jsonl", old)
    month_ago = time.time() - 30 * 86_400
    os.utime(old, (month_ago, month_ago))
    code = monitor(registry, tmp_path, "--capture", str(folder), "--capture-retention-days", "7", "--no-mlflow")
    assert code == ExitCode.OK, capsys.readouterr()
    assert not old.exists() and (folder / "capture-0001.jsonl").exists()
    report = only_report(tmp_path)
    assert report["capture"]["rows"] == 600, "the pruned file's rows were still judged"
    assert any("pruned 1 capture file" in note for note in report["notes"])
    assert monitor(registry, tmp_path, "--capture", "s3://bucket/capture/", "--capture-retention-days", "7") == ExitCode.USAGE


def test_a_later_window_draws_drift_over_time_and_logs_it(registry, captures, tmp_path, capsys) -> None:
    assert monitor(registry, tmp_path, "--capture", str(captures["calm"])) == ExitCode.OK
    assert monitor(registry, tmp_path, "--capture", str(captures["moved"])) == ExitCode.DRIFT_DETECTED
    latest = sorted((tmp_path / "reports" / "monitor").iterdir())[-1]
    picture = latest / "psi_history.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "psi_history" in json.loads((latest / "report.json").read_text())["plots"][1]
    from mlflow import MlflowClient

    run_id = capsys.readouterr().out.split("mlflow run: ")[-1].split()[0]
    artifacts = {a.path for a in MlflowClient(tracking_uri=registry.tracking_uri).list_artifacts(run_id, "monitor_report")}
    assert "monitor_report/psi_history.png" in artifacts
