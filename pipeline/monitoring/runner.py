"""One monitor run end to end: load, judge, report, log, publish, and maybe retrain.

This is the wiring behind ``python -m pipeline monitor``; every step it calls is a pure
function elsewhere in the package. It reads the serving model version's baseline, the
capture window of that version, and the labels; judges them (``analysis.analyse``);
writes the report and the Prometheus textfile; logs the run to MLflow; publishes the
CloudWatch metrics when asked. ``run_retrain`` runs the commit pipeline as a subprocess,
so a retrain passes through the very same gate as any commit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from pipeline.exit_codes import ExitCode
from pipeline.monitoring.analysis import MonitorResult, analyse, live_scores
from pipeline.monitoring.baseline import load_serving_baseline
from pipeline.monitoring.capture import WindowLimits, prune_capture, read_capture
from pipeline.monitoring.labels import LabelIndex, read_labels
from pipeline.monitoring.publish import cloudwatch_datums, publish_cloudwatch, write_prometheus
from pipeline.monitoring.report import report_folder, write_report
from pipeline.monitoring.thresholds import Thresholds
from pipeline.monitoring.tracking import drift_history, log_monitor_run
from pipeline import schema

PROMETHEUS_FILENAME: Final = "monitor.prom"


@dataclass(frozen=True)
class MonitorOptions:
    """What one monitor run reads and where it writes."""

    capture: str
    tracking_uri: str
    reports_dir: Path
    model_name: str = field(default_factory=lambda: schema.DEFAULT_MODEL_NAME)
    alias: str = "champion"
    labels: Path | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    all_versions: bool = False
    """Judge rows captured for any version, not only the one the alias names."""
    prometheus_file: Path | None = None
    log_to_mlflow: bool = True
    stack: str | None = None
    region: str | None = None
    publish_cloudwatch: bool = False
    limits: WindowLimits = field(default_factory=WindowLimits)
    capture_retention_days: float | None = None
    """Delete local capture files older than this before reading (None: keep all)."""


@dataclass
class MonitorOutcome:
    """The result and where its traces went."""

    result: MonitorResult
    report_dir: Path
    prometheus_file: Path
    mlflow_run_id: str | None = None
    cloudwatch_datapoints: int = 0


def run_monitor(options: MonitorOptions) -> MonitorOutcome:
    """Run the monitor once; see the module doc.

    Raises ``MonitorInputError`` subclasses for unusable input (the command maps them to
    exit 4); ``ValueError`` for CloudWatch publishing without a stack or region.
    """
    if options.publish_cloudwatch and not (options.stack and options.region):
        raise ValueError("--publish-cloudwatch needs a stack (--stack or MLOPS_STACK) and a region (--region or AWS_REGION)")
    baseline = load_serving_baseline(options.tracking_uri, options.model_name, options.alias)
    pruned = []
    if options.capture_retention_days is not None:
        pruned = prune_capture(options.capture, options.capture_retention_days)
    index = None
    if options.labels is not None:
        # Labels first: their index is small, and the capture is then streamed once.
        index = LabelIndex(read_labels(options.labels), source=str(options.labels),
                           max_rows=options.limits.max_labelled_rows)
    window = read_capture(
        options.capture,
        model_name=options.model_name,
        model_version=None if options.all_versions else baseline.model_version,
        limits=options.limits,
        labels=index,
    )
    result = analyse(baseline, window, window.labelled, options.thresholds)
    if pruned:
        result.notes.append(f"pruned {len(pruned)} capture file(s) older than "
                            f"{options.capture_retention_days} day(s)")

    now = datetime.now(UTC)
    # The earlier windows live in MLflow; with --no-mlflow there is no history to draw.
    history = drift_history(options.tracking_uri, options.model_name) if options.log_to_mlflow else []
    folder = write_report(result, baseline.frame, window.features, live_scores(window),
                          report_folder(options.reports_dir, result), history=history)
    prometheus = write_prometheus(result, options.prometheus_file or options.reports_dir / PROMETHEUS_FILENAME, timestamp=now)
    outcome = MonitorOutcome(result=result, report_dir=folder, prometheus_file=prometheus)
    if options.log_to_mlflow:
        outcome.mlflow_run_id = log_monitor_run(result, folder, options.tracking_uri)
    if options.publish_cloudwatch:
        datums = cloudwatch_datums(result, stack=options.stack or "", timestamp=now)
        outcome.cloudwatch_datapoints = publish_cloudwatch(datums, region=options.region or "")
    return outcome


RETRAIN_OUTCOMES: Final = {
    ExitCode.OK: "the retrained model cleared the gate and was promoted",
    ExitCode.GATE_REFUSED: "the gate refused the retrained model; the champion is unchanged",
    ExitCode.INVALID_DATA: "the retrain data failed validation; nothing was trained",
}


@dataclass(frozen=True)
class RetrainResult:
    """The commit pipeline's exit code on the retrain data, and what it means."""

    argv: tuple[str, ...]
    exit_code: int
    outcome: str


def retrain_argv(data: Path, tracking_uri: str, model_name: str) -> list[str]:
    """The commit pipeline's command line for a retrain: ``--force`` so the step cache
    cannot skip training on data it has seen, and the monitor's registry and model."""
    return [
        sys.executable, "-m", "pipeline", "run",
        "--data", str(data), "--force", "--tracking-uri", tracking_uri, "--model-name", model_name,
    ]


def _child_stdout() -> int | None:
    """Where the retrain's output goes: wherever our ``print`` goes now. With ``--json``
    that is stderr (``pipeline.console`` keeps stdout for the one JSON document), and a
    child inheriting file descriptor 1 would write its progress into that document. None
    (inherit) when ``sys.stdout`` has no file descriptor (an in-memory stream)."""
    try:
        sys.stdout.flush()
        return sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None


def run_retrain(data: Path, tracking_uri: str, model_name: str) -> RetrainResult:
    """Run the commit pipeline on ``data`` as a subprocess and report the gate's outcome.
    Its output streams through to ours (stderr under ``--json``)."""
    command = retrain_argv(data, tracking_uri, model_name)
    environment = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    code = subprocess.run(command, env=environment, stdout=_child_stdout(), check=False).returncode
    try:
        meaning = RETRAIN_OUTCOMES.get(ExitCode(code), f"the retrain failed ({ExitCode(code).name.lower()})")
    except ValueError:
        meaning = f"the retrain failed with exit code {code}"
    return RetrainResult(tuple(command), code, meaning)


def record_retrain(outcome: MonitorOutcome, retrain: RetrainResult, tracking_uri: str) -> None:
    """Add the retrain's outcome to the report folder and to the MLflow run's tags."""
    (outcome.report_dir / "retrain.json").write_text(
        json.dumps({"argv": list(retrain.argv), "exit_code": retrain.exit_code, "outcome": retrain.outcome}, indent=2) + "\n"
    )
    if outcome.mlflow_run_id:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri)
        client.set_tag(outcome.mlflow_run_id, "retrain_exit_code", str(retrain.exit_code))
        client.set_tag(outcome.mlflow_run_id, "retrain_outcome", retrain.outcome)
