"""Wiring of the commit pipeline: which step feeds which, kept apart from the step bodies.

Each adapter below reads its inputs from the cache, calls the pure step function from
``pipeline.steps`` (or ``training``), and writes its outputs; the runner decides whether
it needs to run at all. ``commit_pipeline()`` returns the step list.

    resume* -> ingest -> validate -> split -> train -> evaluate -> champion* -> gate*
    -> register* -> deploy* (serve the new champion on 127.0.0.1, smoke-test, roll back on failure)
    (* under the registry lock; resume finishes a deploy a killed run left unfinished)
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipeline.digest import file_digest
from pipeline.exit_codes import ExitCode
from pipeline.runner import Artifact, Step, StepContext, StopPipeline

_STEPS = "pipeline.steps."


def _copy_report(ctx: StepContext, *files: Path) -> Path:
    """Copy report files into this run's folder under ``reports/``; returns the folder."""
    ctx.report_dir.mkdir(parents=True, exist_ok=True)
    for file in files:
        shutil.copy2(file, ctx.report_dir / file.name)
    return ctx.report_dir


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def _invalid_file_report(ctx: StepContext, error: Exception) -> None:
    from pipeline.steps.validate import Failure, ValidationReport, write_report

    report = ValidationReport(
        source=str(ctx.config.data),
        rows=0,
        thresholds=asdict(ctx.config.validation),
        failures=[Failure("<file>", "readable", str(error))],
    )
    _, md = write_report(report, ctx.report_dir)
    ctx.set_outcome(report_path=md)


def ingest_step(ctx: StepContext) -> dict[str, Artifact]:
    from pipeline.data import DataLoadError
    from pipeline.steps.ingest import ingest

    try:
        ingested = ingest(ctx.config.data)
    except DataLoadError as exc:
        _invalid_file_report(ctx, exc)
        raise
    path = ctx.output_dir / "raw.pkl"
    ingested.frame.to_pickle(path)
    (ctx.output_dir / "ingest.json").write_text(
        json.dumps({
            "data_digest": ingested.digest,
            "data_source": ingested.source,
            "data_path": str(ctx.config.data),
            "rows": len(ingested.frame),
        })
    )
    return {
        "raw": Artifact("raw", path, ingested.digest),
        "ingest_info": Artifact("ingest_info", ctx.output_dir / "ingest.json", ingested.digest),
    }


def validate_step(ctx: StepContext) -> dict[str, Artifact]:
    import pandas as pd

    from pipeline.digest import frame_digest
    from pipeline.steps.validate import contract_columns, require_configuration_fits, validate_frame, write_report

    frame = pd.read_pickle(ctx.inputs["raw"].path)
    require_configuration_fits(frame)
    report = validate_frame(frame, ctx.config.validation, source=str(ctx.config.data))
    json_path, md_path = write_report(report, ctx.output_dir / "report")
    if not report.passed:
        from pipeline.steps.validate import DataValidationError

        _copy_report(ctx, json_path, md_path)
        ctx.set_outcome(report_path=ctx.report_dir / md_path.name)
        raise DataValidationError(report)
    dataset = contract_columns(frame)
    path = ctx.output_dir / "dataset.parquet"
    dataset.to_parquet(path, index=False)
    return {
        "dataset": Artifact("dataset", path, frame_digest(dataset)),
        "validation_report": Artifact("validation_report", json_path.parent, ctx.key),
    }


def split_step(ctx: StepContext) -> dict[str, Artifact]:
    import pandas as pd

    from pipeline.digest import frame_digest
    from pipeline.steps.split import split

    parts = split(pd.read_parquet(ctx.inputs["dataset"].path), ctx.config.split)
    out: dict[str, Artifact] = {}
    for name in ("train", "validation", "holdout"):
        frame = getattr(parts, name)
        path = ctx.output_dir / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        out[name] = Artifact(name, path, parts.holdout_digest if name == "holdout" else frame_digest(frame))
    return out


def train_step(ctx: StepContext) -> dict[str, Artifact]:
    import pandas as pd

    from training.train import train

    train(
        pd.read_parquet(ctx.inputs["train"].path),
        pd.read_parquet(ctx.inputs["validation"].path),
        ctx.config.hyperparameters,
        ctx.output_dir / "model",
    )
    # The model is named by its recipe (this key), not its bytes: refits are not
    # guaranteed byte-identical and must not bust every downstream cache.
    return {"model": Artifact("model", ctx.output_dir / "model", ctx.key)}


def _load_model(artifact: Artifact) -> Any:
    import joblib

    from training.train import MODEL_FILE

    return joblib.load(artifact.path / MODEL_FILE)


def evaluate_step(ctx: StepContext) -> dict[str, Artifact]:
    import numpy as np
    import pandas as pd

    from pipeline.steps.evaluate import evaluate, predictions

    holdout = pd.read_parquet(ctx.inputs["holdout"].path)
    scores = predictions(_load_model(ctx.inputs["model"]), holdout)
    evaluation = evaluate(holdout, scores)
    # Probabilities (binary) or predicted values (regression): what the gate compares.
    np.save(ctx.output_dir / "challenger_scores.npy", scores)
    (ctx.output_dir / "evaluation.json").write_text(json.dumps(evaluation.to_dict(), indent=2))
    return {"evaluation": Artifact("evaluation", ctx.output_dir, ctx.key)}


def champion_step(ctx: StepContext) -> dict[str, Artifact]:
    """Look up the champion (under the lock) and what the registry already holds of this
    candidate; stop when registering it again would repeat or undo a decision.

    The registry decides, never the step cache: a version built from this candidate key
    that is champion means "nothing to do"; one that passed the gate but is no longer
    champion was moved away by someone (an operator's rollback) and is left so; one the
    gate refused against the same champion is refused again without a duplicate. A
    version whose local deploy failed is registered afresh (the deploy rolled it back).
    ``--force`` skips all of this and registers a new version.
    """
    from pipeline.registry import GATE_CHAMPION_TAG, SMOKE_TAG, current_champion, registered_candidate

    config = ctx.config
    champion = current_champion(ctx.tracking_uri, config.model_name)
    if not config.force:
        if champion is not None and champion.tags.get("candidate_key") == ctx.key:
            raise StopPipeline(_nothing_to_do(champion))
        earlier = registered_candidate(ctx.tracking_uri, config.model_name, ctx.key)
        if earlier is not None and earlier.tags.get(SMOKE_TAG) != "failed":
            now = champion.version if champion else "none"
            if earlier.tags.get("gate_passed") == "true":
                raise StopPipeline(
                    {
                        "exit_code": ExitCode.OK,
                        "status": "rollback_respected",
                        "gate_passed": True,
                        "reasons": [],
                        "champion_version": champion.version if champion else None,
                        "model_version": earlier.version,
                        "message": (
                            f"v{earlier.version} was built from this data, code and parameters and promoted "
                            f"before, but champion is now {'v' + now if champion else 'unset'}: that move is "
                            "respected, nothing registered (--force registers and gates a new version)"
                        ),
                    }
                )
            if earlier.tags.get(GATE_CHAMPION_TAG) == now:
                reasons = [r for r in earlier.tags.get("gate_reasons", "").split(" | ") if r]
                raise StopPipeline(
                    {
                        "exit_code": ExitCode.GATE_REFUSED,
                        "status": "refused",
                        "gate_passed": False,
                        "reasons": reasons,
                        "champion_version": champion.version if champion else None,
                        "model_version": earlier.version,
                        "report_path": _report_of(earlier),
                        "message": (
                            f"v{earlier.version} was built from this data, code and parameters and the gate "
                            f"refused it against this champion; nothing registered again"
                        ),
                    }
                )
    path = ctx.output_dir / "champion.json"
    path.write_text(json.dumps(None if champion is None else asdict(champion)))
    return {
        "champion": Artifact("champion", path, champion.digest if champion else "none"),
        "candidate_key": Artifact("candidate_key", path, ctx.key),
    }


def _report_of(version: Any) -> Path | None:
    report = version.tags.get("gate_report", "")
    return _local_path(report.replace(".json", ".md")) if report else None


def _nothing_to_do(champion: Any) -> dict[str, Any]:
    return {
        "exit_code": ExitCode.OK,
        "status": "nothing_to_do",
        "gate_passed": True,
        "reasons": [],
        "champion_version": champion.version,
        "model_version": champion.version,
        "report_path": _report_of(champion),
        "message": f"nothing to do: champion v{champion.version} was built from this data, code and parameters",
    }


def _local_path(uri: str) -> Path | None:
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    return None


def gate_step(ctx: StepContext) -> dict[str, Artifact]:
    """Judge the challenger against the champion; any error here is a refusal (fails closed)."""
    import numpy as np
    import pandas as pd

    from pipeline import plots
    from pipeline import schema
    from pipeline.steps.gate import judge, refusal

    thresholds = ctx.config.gate
    holdout = pd.read_parquet(ctx.inputs["holdout"].path)
    challenger = np.load(ctx.inputs["evaluation"].path / "challenger_scores.npy")
    champion_info = _json(ctx.inputs["champion"].path)
    champion_proba = None
    try:
        if champion_info is not None:
            from pipeline.steps.evaluate import predictions
            from pipeline.steps.register import load_champion_model

            model = load_champion_model(ctx.tracking_uri, ctx.config.model_name, champion_info["version"])
            champion_proba = predictions(model, holdout)
        report = judge(
            holdout, challenger, champion_proba, thresholds,
            champion_version=None if champion_info is None else champion_info["version"],
        )
    except Exception as exc:  # noqa: BLE001 - the gate fails closed: an error is a refusal
        report = refusal(exc, thresholds)
    out = ctx.output_dir / "report"
    out.mkdir()
    (out / "gate_report.json").write_text(json.dumps(report.to_dict(), indent=2, default=str))
    (out / "gate_report.md").write_text(report.to_markdown())
    plots.gate_plots(schema.target(holdout), challenger, champion_proba, report, ctx.output_dir / "plots",
                     frame=holdout)
    _copy_report(ctx, out / "gate_report.json", out / "gate_report.md")
    ctx.set_outcome(
        gate_passed=report.passed,
        reasons=list(report.reasons),
        report_path=str(ctx.report_dir / "gate_report.md"),
    )
    return {"gate": Artifact("gate", ctx.output_dir, ctx.key)}


def _metric_key(*parts: Any) -> str:
    """An MLflow metric name from its parts: characters MLflow refuses in a name (a slice
    value such as ``<missing>``) become ``_``, so one odd value cannot fail the whole run."""
    import re

    return re.sub(r"[^\w\-. /]", "_", "_".join(map(str, parts)))


def run_metrics(evaluation: dict[str, Any], gate: dict[str, Any]) -> dict[str, float]:
    """The candidate run's metrics, named for the active task.

    Both tasks: ``holdout_<metric>`` and ``slice_<column>_<value>_<metric>`` (binary:
    ``roc_auc``; regression: ``rmse`` and ``mae``). Binary: ``fairness_*`` gaps when a
    sensitive attribute is set and ``gate_auc_difference_ci_low`` (the bound the gate
    judges). Regression: ``group_<attribute>_<group>_<rmse|mae>`` and ``group_error_ratio``
    with a sensitive attribute, and ``gate_<metric>_difference_ci_high``."""
    from pipeline import schema
    from pipeline.steps.evaluate import REGRESSION_ERRORS

    metrics = {_metric_key("holdout", k): float(v) for k, v in evaluation["metrics"].items()}
    per_slice = ("roc_auc",) if schema.IS_CLASSIFIER else REGRESSION_ERRORS
    for s in evaluation["slices"]:
        for name in per_slice:
            metrics[_metric_key("slice", s["column"], s["value"], name)] = float(s[name])
    fairness = evaluation["fairness"]
    bootstrap = gate.get("bootstrap")
    if schema.IS_CLASSIFIER:
        if fairness.get("attribute") is not None:
            metrics["fairness_equal_opportunity_difference"] = float(fairness["equal_opportunity_difference"])
            metrics["fairness_demographic_parity_difference"] = float(fairness["demographic_parity_difference"])
        if bootstrap:
            metrics["gate_auc_difference_ci_low"] = float(bootstrap["ci_low"])
        return metrics
    if fairness.get("attribute") is not None:
        for group, values in fairness["groups"].items():
            for name in REGRESSION_ERRORS:
                metrics[_metric_key("group", fairness["attribute"], group, name)] = float(values[name])
        metrics["group_error_ratio"] = float(fairness["error_ratio"])
    if bootstrap:
        metrics[_metric_key("gate", bootstrap["metric"], "difference_ci_high")] = float(bootstrap["ci_high"])
    return metrics


def register_step(ctx: StepContext) -> dict[str, Artifact]:
    import pandas as pd

    from pipeline.registry import current_champion
    from pipeline.steps.register import Candidate, register

    config = ctx.config
    gate = _json(ctx.inputs["gate"].path / "report" / "gate_report.json")
    evaluation = _json(ctx.inputs["evaluation"].path / "evaluation.json")
    info = _json(ctx.inputs["ingest_info"].path)
    training = _json(ctx.inputs["model"].path / "training.json")
    metrics = run_metrics(evaluation, gate)
    params = {
        "train.trainer": training.get("trainer", "xgboost"),
        **{f"train.{k}": v for k, v in training["hyperparameters"].items()},
        **{f"split.{k}": v for k, v in asdict(config.split).items()},
        **{f"gate.{k}": v for k, v in asdict(config.gate).items()},
        "training_device": training["device"],
        "best_iteration": training["best_iteration"],
    }
    gate_dir = ctx.inputs["gate"].path
    candidate = Candidate(
        model=_load_model(ctx.inputs["model"]),
        model_name=config.model_name,
        train=pd.read_parquet(ctx.inputs["train"].path),
        validation=pd.read_parquet(ctx.inputs["validation"].path),
        holdout=pd.read_parquet(ctx.inputs["holdout"].path),
        data_digest=info["data_digest"],
        data_source=info["data_source"],
        data_path=info["data_path"],
        holdout_digest=ctx.inputs["holdout"].digest,
        params=params,
        metrics=metrics,
        gate=gate,
        training=training,
        candidate_key=ctx.inputs["candidate_key"].digest,
        # The champion step writes the champion it saw beside the candidate key.
        champion_version=(_json(ctx.inputs["candidate_key"].path) or {}).get("version"),
        deploy_follows=config.deploy,
        release_alias=config.release_alias,
        artifacts={
            "gate": gate_dir / "report",
            "plots": gate_dir / "plots",
            "validation": ctx.inputs["validation_report"].path,
        },
    )
    local_artifacts = ctx.store.artifact_root.as_uri() if ctx.tracking_uri == ctx.store.tracking_uri else None
    ctx.progress("logging parameters, metrics, datasets, plots, reports and the model (skops) to MLflow, "
                 "then registering the version")
    registered = register(candidate, tracking_uri=ctx.tracking_uri, artifact_location=local_artifacts)
    champion = current_champion(ctx.tracking_uri, config.model_name)
    path = ctx.output_dir / "registration.json"
    path.write_text(json.dumps(asdict(registered), indent=2))
    ctx.set_outcome(
        exit_code=ExitCode.OK if registered.promoted else ExitCode.GATE_REFUSED,
        status=("promoted" if registered.alias == "champion" else "candidate") if registered.promoted else "refused",
        model_version=registered.version,
        champion_version=champion.version if champion else None,
        message=(
            f"v{registered.version} promoted to {registered.alias}"
            if registered.promoted
            else f"v{registered.version} registered as challenger; gate refused it, champion unchanged"
        ),
    )
    return {"registration": Artifact("registration", path, ctx.key)}


def _write_deploy_report(ctx: StepContext, result: Any) -> None:
    ctx.report_dir.mkdir(parents=True, exist_ok=True)
    (ctx.report_dir / "deploy.json").write_text(
        json.dumps(
            {
                "passed": result.passed,
                "version": result.version,
                "checks": [asdict(check) for check in result.checks],
                "rolled_back_to": result.rolled_back_to,
                "alias_deleted": result.alias_deleted,
                "server_log": str(result.log_path),
                "message": result.message,
            },
            indent=2,
        )
    )


def _rolled_back(result: Any, notes: list[str]) -> StopPipeline:
    return StopPipeline(
        {
            "exit_code": ExitCode.DEPLOY_FAILED,
            "status": "rolled_back",
            "champion_version": result.rolled_back_to,
            "reasons": [f"smoke check {c.name} failed: {c.detail}" for c in result.checks if not c.passed],
            "message": result.message,
            "notes": notes,
        }
    )


def resume_deploy_step(ctx: StepContext) -> dict[str, Artifact]:
    """Finish what a killed run left: stop its orphaned deploy server, and smoke-test a
    champion whose deploy never reached a verdict (rolling it back if it fails).

    Runs first, under the registry lock, so no live run's deploy is in progress. A champion
    tagged ``deploy_smoke_test=pending`` was promoted by a run that died before its smoke
    test; serving it untested would be the outcome the deploy exists to prevent.
    """
    from pipeline.deploy_server import PIDFILE_NAME, reap_orphan
    from pipeline.registry import PENDING, REPLACED_TAG, SMOKE_TAG, current_champion

    notes: list[str] = []
    reaped = reap_orphan(ctx.store.root / PIDFILE_NAME)
    if reaped:
        notes.append(reaped)
    champion = current_champion(ctx.tracking_uri, ctx.config.model_name)
    if champion is not None and champion.tags.get(SMOKE_TAG) == PENDING:
        if not ctx.config.deploy:
            notes.append(f"champion v{champion.version} was promoted by a run that stopped before its smoke "
                         "test; run without --no-deploy to finish that deploy")
        else:
            from pipeline.steps.deploy import deploy

            replaced = champion.tags.get(REPLACED_TAG, "none")
            result = deploy(
                ctx.tracking_uri, ctx.config.model_name, champion.version,
                None if replaced == "none" else replaced,
                log_dir=ctx.report_dir, pidfile=ctx.store.root / PIDFILE_NAME, progress=ctx.progress,
            )
            _write_deploy_report(ctx, result)
            notes.append(f"finished the interrupted deploy of v{champion.version}: {result.message}")
            if not result.passed:
                raise _rolled_back(result, notes)
    if notes:
        ctx.set_outcome(notes=notes)
    return {}


def deploy_step(ctx: StepContext) -> dict[str, Artifact]:
    """Serve a newly promoted champion on 127.0.0.1 and smoke-test it; roll back on failure.

    Runs only when register promoted a version. A failed smoke test moves ``champion``
    back to the version it replaced (``pipeline.steps.deploy``) and ends the run with
    DEPLOY_FAILED; the version keeps ``deploy_smoke_test=failed``, so a re-run registers
    and deploys afresh. The server is recorded in the store's pidfile while it runs.
    """
    from pipeline.deploy_server import PIDFILE_NAME
    from pipeline.steps.deploy import deploy

    registration = _json(ctx.inputs["registration"].path)
    if not ctx.config.deploy:
        ctx.skip("--no-deploy")
        return {}
    if not registration["promoted"]:
        ctx.skip(f"v{registration['version']} was not promoted, nothing to deploy")
        return {}
    previous = _json(ctx.inputs["champion"].path)
    result = deploy(
        ctx.tracking_uri,
        ctx.config.model_name,
        registration["version"],
        previous["version"] if previous else None,
        log_dir=ctx.report_dir,
        pidfile=ctx.store.root / PIDFILE_NAME,
        progress=ctx.progress,
    )
    _write_deploy_report(ctx, result)
    if not result.passed:
        raise _rolled_back(result, [])
    ctx.set_outcome(message=f"v{result.version} promoted to champion; {result.message}")
    return {}


def _src(*modules: str) -> tuple[str, ...]:
    # The step's adapter in this module, and what it imports, join the key by themselves
    # (``pipeline.step_code``): naming the whole module here would follow every adapter's
    # imports and make each step depend on all the others' code.
    return modules


def commit_pipeline() -> list[Step]:
    """The commit pipeline's steps in order; append later stages to the returned list."""
    return [
        Step(
            "resume", resume_deploy_step, sources=_src("pipeline.deploy_server", "pipeline.registry"),
            params=lambda c: {"deploy": c.deploy, "model_name": c.model_name, "tracking_uri": c.tracking_uri},
            locked=True, effects=("registry", "process"), what="finishing an interrupted deploy, if any",
        ),
        Step(
            "ingest", ingest_step, sources=_src(_STEPS + "ingest", "pipeline.data", "pipeline.digest"),
            params=lambda c: {"data": str(c.data)}, what="reading the dataset and its digest",
            external=lambda c: {"data": file_digest(c.data) if c.data.is_file() else "missing"},
        ),
        Step(
            "validate", validate_step, sources=_src(_STEPS + "validate", "pipeline.schema"), inputs=("raw",),
            params=lambda c: asdict(c.validation), what="checking the data against the schema contract",
        ),
        Step("split", split_step, sources=_src(_STEPS + "split",), inputs=("dataset",), params=lambda c: asdict(c.split),
             what="splitting train, validation and the frozen holdout"),
        Step(
            "train", train_step, sources=_src("training.train", "training.model"), inputs=("train", "validation"),
            params=lambda c: c.hyperparameters.to_dict(), what="training the model (training.entry_point of the project file)",
        ),
        Step("evaluate", evaluate_step, sources=_src(_STEPS + "evaluate",), inputs=("model", "holdout"),
             what="scoring the holdout: metrics, slices, fairness"),
        Step(
            "champion", champion_step,
            sources=_src("pipeline.registry", _STEPS + "gate", _STEPS + "register", "pipeline.plots"),
            inputs=("evaluation", "ingest_info", "validation_report"),
            params=lambda c: {"gate": asdict(c.gate), "model_name": c.model_name, "tracking_uri": c.tracking_uri},
            cache=False, locked=True,
        ),
        Step(
            "gate", gate_step, sources=_src(_STEPS + "gate", "pipeline.plots"),
            inputs=("evaluation", "holdout", "champion"), params=lambda c: asdict(c.gate), locked=True,
            what="comparing challenger and champion on the holdout",
        ),
        Step(
            "register", register_step, sources=_src(_STEPS + "register", "pipeline.registry"),
            inputs=("gate", "evaluation", "ingest_info", "model", "train", "validation", "holdout",
                    "candidate_key", "validation_report"),
            params=lambda c: {"model_name": c.model_name, "tracking_uri": c.tracking_uri, "deploy": c.deploy,
                              "release_alias": c.release_alias},
            locked=True, effects=("registry",), what="logging the candidate to MLflow and registering it",
        ),
        Step(
            "deploy", deploy_step,
            sources=_src(_STEPS + "deploy", _STEPS + "smoke_test", "serving.process"),
            inputs=("registration", "champion"),
            params=lambda c: {"deploy": c.deploy},
            locked=True, effects=("registry", "process"), what="serving the new champion on 127.0.0.1 and smoke-testing it",
        ),
    ]
