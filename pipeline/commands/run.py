"""``python -m pipeline run``: the commit pipeline end to end on the embedded default.

Validate, split, train, evaluate, gate, register, then serve a newly promoted champion
on 127.0.0.1 and smoke-test it (rolling the alias back if it fails), with progress per
step and a summary at the end (champion, gate decision and reasons, report, how to open
the MLflow UI). Exit codes: 0 promoted or nothing to do, 3 gate refused, 4 invalid data,
5 smoke test failed and rolled back, 1 error (``pipeline/exit_codes.py``); 143 when
stopped by SIGTERM, after stopping the deploy server (the next run finishes the deploy).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from pipeline.exit_codes import ExitCode
from pipeline.schema import DEFAULT_DATASET
from pipeline import schema


def _key_values(pairs: list[str], flag: str) -> dict[str, str]:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"{flag} expects KEY=VALUE, got {pair!r}")
        values[key.strip().replace("-", "_")] = value.strip()
    return values


def add_parser(subparsers: Any) -> None:
    """Register the ``run`` subcommand."""
    parser = subparsers.add_parser(
        "run",
        help="run the commit pipeline: validate, train, evaluate, gate, register, deploy locally",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, default=None,
                        help="dataset file with the project's columns, CSV or Parquet (default with the shipped "
                             f"Adult project: {DEFAULT_DATASET.relative_to(DEFAULT_DATASET.parent.parent)})")
    parser.add_argument("--force", action="store_true", help="ignore the step cache and re-run every step")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking/registry URI (default: MLFLOW_TRACKING_URI, else the local store)")
    parser.add_argument("--model-name", default=schema.DEFAULT_MODEL_NAME, help="registered model name (default: %(default)s)")
    parser.add_argument("--store", type=Path, default=None,
                        help="local store folder for cache and reports (default: MLOPS_HOME or .mlops/)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="training hyperparameter, e.g. --param n_estimators=200 --param device=cpu")
    parser.add_argument("--gate", action="append", default=[], metavar="KEY=VALUE",
                        help="gate threshold, e.g. --gate min_roc_auc=0.9 --gate auc_tolerance=0.005")
    parser.add_argument("--create-registry", action="store_true",
                        help="create the registry --tracking-uri names (SQLite file, file store) or the --store "
                             "folder when it does not exist; without it a missing one is refused (exit 2)")
    parser.add_argument("--no-deploy", dest="deploy", action="store_false",
                        help="stop after register: do not serve and smoke-test a new champion locally")
    parser.set_defaults(func=run_command)


def summary(result: Any, model_name: str | None = None) -> str:
    """The closing summary a person reads: champion, decision and why, report, MLflow UI
    (a command that runs as printed, opening the classic view: ``pipeline.mlflow_ui``)."""
    from pipeline.mlflow_ui import ui_hint

    ui = ui_hint(result.tracking_uri, model_name or schema.DEFAULT_MODEL_NAME)
    decision = {True: "passed", False: "REFUSED", None: "not reached"}[result.gate_passed]
    lines = [
        "",
        f"Outcome:   {result.status} (exit {int(result.exit_code)} {result.exit_code.name.lower()})",
        f"           {result.message}" if result.message else "",
        *[f"Note:      {note}" for note in result.notes],
        f"Champion:  {'v' + result.champion_version if result.champion_version else 'none'}",
        f"Candidate: {'v' + result.model_version if result.model_version else '-'}",
        f"Gate:      {decision}",
        *[f"           - {reason}" for reason in result.reasons],
        f"Report:    {result.report_path or '-'}",
        f"MLflow UI: {ui[0]}",
        *[f"           {line}" for line in ui[1:]],
    ]
    return "\n".join(line for line in lines if line)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every ``finally`` runs on the way out:
    the deploy server is stopped, half-written cache folders removed, the lock released.
    (Python's default for SIGTERM is to die on the spot and leak the server.)"""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated(signum)


def _project_problem(args: argparse.Namespace) -> str | None:
    """What stops the active project from running, before any step: no dataset named for a
    project other than the shipped example, or a trainer that cannot be imported."""
    from pipeline import schema
    from pipeline.schema import SHIPPED_PROJECT
    from training.entry_point import TrainerError, resolve

    if args.data is None:
        if schema.PROJECT_PATH != SHIPPED_PROJECT.resolve():
            return (f"--data is required: the project {schema.PROJECT_PATH} has no default dataset "
                    "(only the shipped Adult example does)")
        args.data = DEFAULT_DATASET
    if schema.ENTRY_POINT != "xgboost":
        try:
            resolve(schema.ENTRY_POINT)
        except TrainerError as exc:
            return str(exc)
    return None


def run_command(args: argparse.Namespace) -> int:
    """Build the run's configuration from the arguments, run it, print the summary."""
    import logging

    from pipeline import console
    from pipeline.local_store import LocalStore
    from pipeline.runner import RunConfig, run_pipeline

    # The training module says which device XGBoost uses; show it beside the progress lines.
    training_log = logging.getLogger("training")
    if not training_log.handlers and console.verbosity() != console.Verbosity.QUIET:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("      %(message)s"))
        training_log.addHandler(handler)
        training_log.setLevel(logging.INFO)

    problem = _project_problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return int(ExitCode.USAGE)
    try:
        hyper = _key_values(args.param, "--param")
        gate = _key_values(args.gate, "--gate")
        hyperparameters = gate_thresholds = None
        if hyper:
            from training.model import project_hyperparameters

            hyperparameters = project_hyperparameters(hyper)
        if gate:
            from pipeline.project import active_thresholds

            gate_thresholds = active_thresholds(gate)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(ExitCode.USAGE)
    import os

    from pipeline.tracking_uri import HTTP_RETRY_ENV, TrackingUnreachable, TrackingUriError

    if args.store is not None and not args.store.exists() and not args.create_registry:
        print(f"error: store folder {args.store} does not exist; pass --create-registry to create a new, "
              "empty store (its registry has no champion to compare against)", file=sys.stderr)
        return int(ExitCode.USAGE)
    store = LocalStore(args.store.resolve()) if args.store else LocalStore.default()
    if not (store.root / "mlflow.db").exists() and not (args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")):
        console.info(f"note: creating a new local store at {store.root} (empty registry)")
    for name, value in HTTP_RETRY_ENV.items():
        os.environ.setdefault(name, value)
    config = RunConfig(
        data=args.data,
        tracking_uri=args.tracking_uri,
        model_name=args.model_name,
        store=store,
        force=args.force,
        hyperparameters=hyperparameters,
        gate=gate_thresholds,
        deploy=args.deploy,
        create_registry=args.create_registry,
    )
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        result = run_pipeline(config, progress=console.progress_sink())
    except TrackingUriError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(ExitCode.USAGE)
    except TrackingUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(ExitCode.ERROR)
    except Terminated:
        print("run: stopped by SIGTERM; the deploy server (if any) was stopped and the registry lock "
              "released; the next run finishes an interrupted deploy", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.json:
        console.emit_json(result.to_dict())
        console.info(summary(result, args.model_name))
    else:
        print(summary(result, args.model_name))
    return int(result.exit_code)
