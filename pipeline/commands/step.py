"""``python -m pipeline step NAME``: run one pipeline step from files, as SageMaker Processing does.

Each SageMaker Processing job runs one of these with its channels mounted under
``/opt/ml/processing/input/...`` and uploads ``--output`` when it ends; the step bodies
are the same functions the local runner calls. Inputs and outputs (docs/pipeline.md):

- ``validate --input DATA --output OUT``: OUT/validation.{json,md}; OUT/data.parquet when valid (exit 4 if not).
- ``split --input VALIDATED --output OUT``: OUT/train/, OUT/validation/, OUT/holdout/ (Parquet), OUT/split.json.
- ``train --input TRAIN [--input VALIDATION] --output MODEL``: MODEL/model.joblib, MODEL/training.json.
- ``gate`` (alias ``evaluate``) ``--input MODEL --input HOLDOUT [--input CHAMPION_MODEL] --output OUT``:
  OUT/evaluation.json ``{"gate": {"passed", "reasons"}, "metrics": {...}, ...}``, OUT/gate_report.md and OUT/plots/.
  Without a champion input, the champion comes from the registry at ``MLFLOW_TRACKING_URI`` when set.
  Exits 0 whenever it reached a decision (the Condition step reads ``gate.passed``).
- ``register --input MODEL --input EVALUATION --input VALIDATED --output OUT``: registers into
  ``MLFLOW_TRACKING_URI`` (``--param tracking_uri=``), promotes when the gate passed (exit 3 if refused).

``--param k=v`` sets the step's parameters (split fractions, hyperparameters, gate
thresholds, ``model_name``, ``tracking_uri``, ``git_commit``, ``image_digest``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipeline.exit_codes import ExitCode
from pipeline import schema

STEP_NAMES = ("validate", "split", "train", "evaluate", "gate", "register")
REGISTRY_STEPS = frozenset({"evaluate", "gate", "register"})
"""Steps that read the registry (the champion) or write it; only they log into MLflow."""


class StepUsageError(ValueError):
    """Bad inputs or parameters for a step (wrong count of --input, unknown --param)."""


def add_parser(subparsers: Any) -> None:
    """Register the ``step`` subcommand."""
    parser = subparsers.add_parser(
        "step", help="run one pipeline step from files (SageMaker Processing entry)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", choices=STEP_NAMES)
    parser.add_argument("--input", action="append", type=Path, default=[], dest="inputs", metavar="DIR")
    parser.add_argument("--output", type=Path, required=True, metavar="DIR")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    parser.set_defaults(func=step_command)


def _params(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise StepUsageError(f"--param expects KEY=VALUE, got {pair!r}")
        # The SageMaker compiler writes values with repr(): strip the quotes of strings.
        out[key.strip().replace("-", "_")] = value.strip().strip("'\"")
    return out


def _take(params: dict[str, str], keys: Any) -> dict[str, str]:
    return {k: params.pop(k) for k in list(params) if k in keys}


def _data_file(directory: Path) -> Path:
    from pipeline.data import CSV_SUFFIXES, PARQUET_SUFFIXES

    if directory.is_file():
        return directory
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name.lower().endswith(CSV_SUFFIXES + PARQUET_SUFFIXES))
    if not files:
        raise StepUsageError(f"{directory} holds no .csv or .parquet file")
    return files[0]


def _model_file(directory: Path) -> Path:
    from training.train import MODEL_FILE

    found = sorted(directory.rglob(MODEL_FILE)) if directory.is_dir() else []
    if not found:
        raise StepUsageError(f"{directory} holds no {MODEL_FILE}")
    return found[0]


def _expect(inputs: list[Path], low: int, high: int, name: str) -> None:
    if not low <= len(inputs) <= high:
        want = str(low) if low == high else f"{low}-{high}"
        raise StepUsageError(f"step {name} takes {want} --input folder(s), got {len(inputs)}")


def run_validate(inputs: list[Path], out: Path, params: dict[str, str]) -> int:
    from pipeline.data import DataLoadError, load_dataset
    from pipeline.steps.validate import ValidationThresholds, contract_columns, validate_frame, write_report

    _expect(inputs, 1, 1, "validate")
    raw = _take(params, ValidationThresholds.__dataclass_fields__)
    thresholds = ValidationThresholds(**{k: int(float(v)) if k == "min_rows" else float(v) for k, v in raw.items()})  # type: ignore[arg-type]
    path = _data_file(inputs[0])
    try:
        frame = load_dataset(path)
    except DataLoadError as exc:
        print(f"invalid data: {exc}", file=sys.stderr)
        return int(ExitCode.INVALID_DATA)
    report = validate_frame(frame, thresholds, source=str(path))
    write_report(report, out)
    if not report.passed:
        print(f"invalid data:\n{report.summary()}", file=sys.stderr)
        return int(ExitCode.INVALID_DATA)
    contract_columns(frame).to_parquet(out / "data.parquet", index=False)
    return int(ExitCode.OK)


def run_split(inputs: list[Path], out: Path, params: dict[str, str]) -> int:
    from pipeline.data import load_dataset
    from pipeline.steps.split import SplitParams, split

    _expect(inputs, 1, 1, "split")
    raw = _take(params, SplitParams.__dataclass_fields__)
    split_params = SplitParams(**{k: (v if k == "salt" else float(v)) for k, v in raw.items()})  # type: ignore[arg-type]
    parts = split(load_dataset(_data_file(inputs[0])), split_params)
    for name in ("train", "validation", "holdout"):
        (out / name).mkdir(parents=True, exist_ok=True)
        getattr(parts, name).to_parquet(out / name / f"{name}.parquet", index=False)
    (out / "split.json").write_text(json.dumps({
        "holdout_digest": parts.holdout_digest,
        "rows": {n: len(getattr(parts, n)) for n in ("train", "validation", "holdout")},
        "params": asdict(split_params),
    }, indent=2))
    return int(ExitCode.OK)


def run_train(inputs: list[Path], out: Path, params: dict[str, str]) -> int:
    from training.model import Hyperparameters, project_hyperparameters
    from training.train import read_channel, train

    _expect(inputs, 1, 2, "train")
    hyper = project_hyperparameters(_take(params, Hyperparameters.__dataclass_fields__))
    validation = read_channel(inputs[1]) if len(inputs) > 1 else None
    outcome = train(read_channel(inputs[0]), validation, hyper, out)
    print(f"trained on device={outcome.summary['device']}")
    return int(ExitCode.OK)


def _registry_champion(params: dict[str, str]) -> tuple[Any, str] | None:
    uri = params.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        return None
    from pipeline.tracking_uri import check_tracking_uri

    # A mistyped registry would read as "no champion" and gate a first model by the floor only.
    check_tracking_uri(uri)
    from pipeline.registry import current_champion
    from pipeline.steps.register import load_champion_model

    name = params.get("model_name") or os.environ.get("MLOPS_MODEL_NAME", schema.DEFAULT_MODEL_NAME)
    champion = current_champion(uri, name)
    if champion is None:
        return None
    return load_champion_model(uri, name, champion.version), champion.version


def run_gate(inputs: list[Path], out: Path, params: dict[str, str]) -> int:
    import joblib

    from pipeline.tracking_credentials import is_auth_refusal

    from pipeline.data import load_dataset
    from pipeline.steps.evaluate import evaluate, predictions
    from pipeline.project import active_thresholds
    from pipeline.steps.gate import judge, refusal

    _expect(inputs, 2, 3, "gate")
    thresholds = active_thresholds(_take(params, _threshold_fields()))
    holdout = load_dataset(_data_file(inputs[1]))
    challenger = predictions(joblib.load(_model_file(inputs[0])), holdout)
    metrics = evaluate(holdout, challenger)
    champion_proba = None
    try:
        champion = (joblib.load(_model_file(inputs[2])), "input") if len(inputs) > 2 else _registry_champion(params)
        champion_proba = predictions(champion[0], holdout) if champion else None
        report = judge(holdout, challenger, champion_proba, thresholds,
                       champion_version=champion[1] if champion else None)
    except Exception as exc:  # noqa: BLE001 - the gate fails closed: an error is a refusal
        if is_auth_refusal(exc):
            # Wrong credentials judge no model: a configuration error, not a refusal.
            raise
        report = refusal(exc, thresholds)
    evaluation = {
        "gate": {"passed": report.passed, "reasons": report.reasons},
        "metrics": metrics.metrics,
        "slices": metrics.slices,
        "fairness": metrics.fairness,
        "report": report.to_dict(),
    }
    (out / "evaluation.json").write_text(json.dumps(evaluation, indent=2, default=str))
    (out / "gate_report.md").write_text(report.to_markdown())
    from pipeline import plots
    from pipeline import schema

    plots.gate_plots(schema.target(holdout), challenger, champion_proba, report, out / "plots", frame=holdout)
    print(f"gate {'passed' if report.passed else 'REFUSED'}" + "".join(f"\n  - {r}" for r in report.reasons))
    return int(ExitCode.OK)


def run_register(inputs: list[Path], out: Path, params: dict[str, str]) -> int:
    import joblib

    from pipeline.data import load_dataset
    from pipeline.digest import frame_digest
    from pipeline.steps.ingest import describe_source
    from pipeline.steps.register import Candidate, register
    from pipeline.steps.split import SplitParams, split
    from training.train import SUMMARY_FILE

    _expect(inputs, 3, 3, "register")
    uri = params.pop("tracking_uri", None) or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise StepUsageError("register needs a tracking URI: --param tracking_uri=... or MLFLOW_TRACKING_URI")
    from pipeline.tracking_uri import check_tracking_uri

    create = params.pop("create_registry", "false").strip().lower()
    if create not in ("true", "false"):
        raise StepUsageError(f"create_registry must be true or false, got {create!r}")
    # Never register into a registry a typo would create (unless asked to).
    check_tracking_uri(uri, create=create == "true")
    name = params.pop("model_name", None) or os.environ.get("MLOPS_MODEL_NAME", schema.DEFAULT_MODEL_NAME)
    if params.get("git_commit"):
        os.environ["GIT_COMMIT"] = params["git_commit"]
    model_path = _model_file(inputs[0])
    evaluation = json.loads((inputs[1] / "evaluation.json").read_text())
    data_path = _data_file(inputs[2])
    data = load_dataset(data_path)
    parts = split(data, SplitParams())
    summary_path = model_path.parent / SUMMARY_FILE
    training = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    metrics = {f"holdout_{k}": float(v) for k, v in evaluation["metrics"].items()}
    extra = {k: v for k, v in params.items() if k in ("git_commit", "image_digest")}
    from pipeline.registry import CANDIDATE
    candidate = Candidate(
        model=joblib.load(model_path), model_name=name, train=parts.train, validation=parts.validation,
        holdout=parts.holdout, data_digest=frame_digest(data), data_source=describe_source(data_path),
        data_path=str(data_path), holdout_digest=parts.holdout_digest,
        params={**{f"train.{k}": v for k, v in training.get("hyperparameters", {}).items()}, **extra},
        # The full gate report (slices, fairness, bootstrap) feeds the model card.
        metrics=metrics, gate={**evaluation.get("report", {}), **evaluation["gate"]}, training=training,
        candidate_key=frame_digest(data) + ":" + str(training.get("hyperparameters")),
        artifacts={"gate": inputs[1], **({"plots": inputs[1] / "plots"} if (inputs[1] / "plots").is_dir() else {})},
        champion_version=evaluation.get("report", {}).get("champion", {}).get("version") if evaluation.get("report", {}).get("champion") else None,
        # The delivery path: champion moves only at the end of the release (SmokeTest).
        release_alias=CANDIDATE,
        extra_tags={"image_digest": extra["image_digest"]} if extra.get("image_digest") else {},
    )
    registered = register(candidate, tracking_uri=uri, artifact_location=None)
    (out / "registration.json").write_text(json.dumps(asdict(registered), indent=2))
    print(f"registered v{registered.version}; {'candidate for release' if registered.promoted else 'gate refused: not a candidate'}")
    return int(ExitCode.OK if registered.promoted else ExitCode.GATE_REFUSED)


RUNNERS = {
    "validate": run_validate, "split": run_split, "train": run_train,
    "evaluate": run_gate, "gate": run_gate, "register": run_register,
}


def _threshold_fields() -> set[str]:
    """The active project's gate thresholds (binary's or regression's)."""
    from dataclasses import fields

    return {f.name for f in fields(schema.THRESHOLDS)}


def allowed_params(name: str) -> set[str]:
    """The ``--param`` keys step ``name`` understands; anything else is a usage error."""
    from pipeline.steps.split import SplitParams
    from pipeline.steps.validate import ValidationThresholds
    from training.model import Hyperparameters

    registry = {"tracking_uri", "model_name"}
    return {
        "validate": set(ValidationThresholds.__dataclass_fields__),
        "split": set(SplitParams.__dataclass_fields__),
        "train": set(Hyperparameters.__dataclass_fields__),
        "evaluate": _threshold_fields() | registry,
        "gate": _threshold_fields() | registry,
        "register": registry | {"git_commit", "image_digest", "create_registry"},
    }[name]


def step_command(args: argparse.Namespace) -> int:
    """Run the named step; usage problems exit 2, unexpected errors 1, with a message.

    MLflow credentials come from the Secrets Manager secret named in the job's
    environment (``pipeline.tracking_credentials``); a tracking server refusing them is a
    configuration error (exit 2) naming the secret, never a gate refusal.
    """
    from pipeline.tracking_credentials import SECRET_ENV, CredentialsError, is_auth_refusal, load_tracking_credentials
    from pipeline.tracking_uri import HTTP_RETRY_ENV, TrackingUnreachable

    for name, value in HTTP_RETRY_ENV.items():
        os.environ.setdefault(name, value)
    secret: str | None = None
    try:
        params = _params(args.param)
        unknown = sorted(set(params) - allowed_params(args.name))
        if unknown:
            raise StepUsageError(
                f"unknown --param {', '.join(unknown)}; known: {', '.join(sorted(allowed_params(args.name)))}"
            )
        # Only the steps that talk to the tracking server need (and may read) its credentials.
        secret = load_tracking_credentials() if args.name in REGISTRY_STEPS else None
        args.output.mkdir(parents=True, exist_ok=True)
        code = RUNNERS[args.name](list(args.inputs), args.output, params)
    except (StepUsageError, ValueError, FileNotFoundError, CredentialsError) as exc:
        print(f"error: step {args.name}: {exc}", file=sys.stderr)
        return int(ExitCode.USAGE)
    except TrackingUnreachable as exc:
        print(f"error: step {args.name}: {exc}", file=sys.stderr)
        return int(ExitCode.ERROR)
    except Exception as exc:
        if not is_auth_refusal(exc):
            raise
        source = f"the credentials from secret {secret} ({SECRET_ENV})" if secret else "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD"
        print(f"error: step {args.name}: the tracking server refused {source}: a configuration error, no model was judged\n  {str(exc)[:300]}", file=sys.stderr)
        return int(ExitCode.USAGE)
    return code
