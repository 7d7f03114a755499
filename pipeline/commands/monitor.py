"""``python -m pipeline monitor``: judge a window of captured predictions for drift and
performance, report, publish metrics, and with ``--retrain`` close the loop.

Exit codes (``pipeline.exit_codes``): 0 for ``ok``, ``insufficient_data`` and ``empty``
(the outcome is printed: nothing to alarm on); 6 ``DRIFT_DETECTED`` for ``drift`` or
``performance_drop``, also after a retrain the gate decided (promoted or refused); the
retrain's own code when the retrain itself broke (invalid data 4, error 1); 4 for
unusable input (capture, labels, baseline, model version); 2 for bad arguments or a
tracking URI that is malformed or names no registry (none is ever created); 1 for an
unreachable tracking server (probed up front, a few seconds) or anything unexpected. See docs/monitoring.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipeline.exit_codes import ExitCode
from pipeline.local_store import LocalStore
from pipeline import schema



def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``monitor`` and its arguments."""
    parser = subparsers.add_parser(
        "monitor",
        help="check captured predictions for drift and performance; optionally retrain",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--capture", help="capture folder, file, or s3://bucket/prefix (default: the local store's capture/)")
    parser.add_argument("--labels", type=Path, help="CSV request_id,row,label of ground truth that has arrived")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else the local store)")
    parser.add_argument("--model-name", default=schema.DEFAULT_MODEL_NAME, help="registered model (default: %(default)s)")
    parser.add_argument("--alias", default="champion", help="alias of the serving version (default: %(default)s)")
    parser.add_argument("--all-versions", action="store_true", help="judge rows captured for any model version")
    parser.add_argument("--min-rows", type=int, help="rows below which the window is insufficient (default 200)")
    parser.add_argument("--psi-threshold", type=float, help="PSI above which a feature drifts (default 0.2)")
    parser.add_argument("--p-value", type=float, help="significance level of the drift tests (default 0.01)")
    parser.add_argument("--max-auc-drop", type=float, help="ROC AUC drop that is a performance drop (default 0.05)")
    parser.add_argument("--max-error-increase", type=float,
                        help="regression: relative increase of the live error (RMSE or MAE, the gate's metric) "
                             "over the reference that is a performance drop (default 0.10: 10%% worse)")
    parser.add_argument("--max-rows", type=int,
                        help="rows kept for the drift tests; beyond it a uniform sample (default 100000)")
    parser.add_argument("--max-rows-per-request", type=int,
                        help="rows one request may contribute, so one client cannot dominate (default 100)")
    parser.add_argument("--capture-retention-days", type=float,
                        help="first delete local capture files last written more than this many days ago")
    parser.add_argument("--reports-dir", type=Path, help="where reports go (default: the local store's reports/)")
    parser.add_argument("--prometheus-file", type=Path, help="Prometheus textfile (default: <reports-dir>/monitor.prom)")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log the run to MLflow")
    parser.add_argument("--retrain", action="store_true", help="on drift or a performance drop, run the commit pipeline")
    parser.add_argument("--retrain-data", type=Path, help="CSV or Parquet the retrain trains on (needed with --retrain)")
    parser.add_argument("--publish-cloudwatch", action="store_true", help="publish the scores as CloudWatch metrics")
    parser.add_argument("--stack", default=os.environ.get("MLOPS_STACK"), help="stack dimension, e.g. dev (default: MLOPS_STACK)")
    parser.add_argument(
        "--region",
        default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        help="CloudWatch region (default: AWS_REGION / AWS_DEFAULT_REGION)",
    )
    parser.set_defaults(func=run)


def _usage(message: str) -> int:
    print(f"monitor: {message}", file=sys.stderr)
    return int(ExitCode.USAGE)


def run(args: argparse.Namespace) -> int:
    """Run the monitor with parsed arguments; returns the exit code."""
    from pipeline.monitoring.capture import WindowLimits
    from pipeline.monitoring.errors import MonitorInputError
    from pipeline.monitoring.runner import MonitorOptions, record_retrain, run_monitor, run_retrain
    from pipeline.monitoring.thresholds import Thresholds

    if args.retrain and args.retrain_data is None:
        return _usage("--retrain needs --retrain-data PATH (the fresh data to train on)")
    if args.publish_cloudwatch and not args.stack:
        return _usage("--publish-cloudwatch needs --stack (or MLOPS_STACK)")
    if args.publish_cloudwatch and not args.region:
        return _usage("--publish-cloudwatch needs --region (or AWS_REGION)")
    overrides = {
        name: value
        for name, value in (
            ("min_rows", args.min_rows),
            ("psi_drift", args.psi_threshold),
            ("p_value", args.p_value),
            ("max_auc_drop", args.max_auc_drop),
            ("max_error_increase", args.max_error_increase),
        )
        if value is not None
    }
    try:
        thresholds = Thresholds(**overrides)
        limits = WindowLimits(**{
            name: value for name, value in (("max_rows", args.max_rows), ("max_rows_per_request", args.max_rows_per_request))
            if value is not None
        })
    except ValueError as error:
        return _usage(str(error))
    if args.capture_retention_days is not None and (
        args.capture_retention_days < 0 or str(args.capture or "").startswith("s3://")
    ):
        return _usage("--capture-retention-days needs a value >= 0 and a local capture folder "
                      "(on S3 the bucket's lifecycle rule prunes capture)")
    if args.retrain and not args.retrain_data.exists():
        print(f"monitor: retrain data {args.retrain_data} does not exist", file=sys.stderr)
        return int(ExitCode.INVALID_DATA)

    # MLflow draws a download progress bar on stderr for the one baseline file: noise here.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from pipeline.tracking_uri import HTTP_RETRY_ENV, TrackingUnreachable, TrackingUriError, check_tracking_uri

    store = LocalStore.default()
    tracking_uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or store.tracking_uri
    for name, value in HTTP_RETRY_ENV.items():
        os.environ.setdefault(name, value)
    if tracking_uri == store.tracking_uri and (moved := store.relocate()):
        print(f"monitor: {moved}", file=sys.stderr)
    try:
        # The monitor reads a registry; it never creates one (MLflow would, empty, on a typo).
        check_tracking_uri(tracking_uri)
    except TrackingUriError as error:
        return _usage(str(error))
    except TrackingUnreachable as error:
        print(f"monitor: {error}", file=sys.stderr)
        return int(ExitCode.ERROR)
    options = MonitorOptions(
        capture=args.capture or str(store.capture_dir),
        tracking_uri=tracking_uri,
        reports_dir=args.reports_dir or store.reports_dir,
        model_name=args.model_name,
        alias=args.alias,
        labels=args.labels,
        thresholds=thresholds,
        all_versions=args.all_versions,
        prometheus_file=args.prometheus_file,
        log_to_mlflow=not args.no_mlflow,
        stack=args.stack,
        region=args.region,
        publish_cloudwatch=args.publish_cloudwatch,
        limits=limits,
        capture_retention_days=args.capture_retention_days,
    )
    try:
        outcome = run_monitor(options)
    except MonitorInputError as error:
        print(f"monitor: {error}", file=sys.stderr)
        return int(ExitCode.INVALID_DATA)

    result = outcome.result
    document: dict[str, object] = {
        **result.to_dict(),
        "report": str(outcome.report_dir / "report.md"),
        "prometheus_file": str(outcome.prometheus_file),
        "mlflow_run_id": outcome.mlflow_run_id,
    }
    if not args.json:
        print(f"verdict: {result.verdict.value} ({result.model_name} version {result.model_version}, alias {result.alias})")
        for reason in result.reasons:
            print(f"  - {reason}")
        for note in result.notes:
            print(f"  note: {note}")
        print(f"report: {outcome.report_dir / 'report.md'}")
        print(f"prometheus metrics: {outcome.prometheus_file}")
        if outcome.mlflow_run_id:
            print(f"mlflow run: {outcome.mlflow_run_id} (experiment 'monitoring')")
        if args.publish_cloudwatch:
            print(f"cloudwatch: {outcome.cloudwatch_datapoints} datapoint(s) to {args.region}, stack {args.stack}")
    if args.publish_cloudwatch:
        document["cloudwatch_datapoints"] = outcome.cloudwatch_datapoints

    if not result.verdict.alarms:
        code = int(ExitCode.OK)
    elif not args.retrain:
        code = int(ExitCode.DRIFT_DETECTED)
    else:
        print(f"retrain: running the commit pipeline on {args.retrain_data}", flush=True)
        retrain = run_retrain(args.retrain_data, tracking_uri, args.model_name)
        record_retrain(outcome, retrain, tracking_uri)
        print(f"retrain: exit code {retrain.exit_code}: {retrain.outcome}")
        document["retrain"] = {"exit_code": int(retrain.exit_code), "outcome": retrain.outcome}
        code = int(ExitCode.DRIFT_DETECTED if retrain.exit_code in (ExitCode.OK, ExitCode.GATE_REFUSED)
                   else retrain.exit_code)
    if args.json:
        from pipeline import console

        console.emit_json({**document, "exit_code": code})
    return code
