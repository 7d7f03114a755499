"""Register step: log the candidate to MLflow with its lineage and move the aliases.

One MLflow run per candidate holds everything a reviewer needs: parameters, holdout
metrics (overall, per slice, fairness), the data versions through MLflow's dataset API,
the plots, the validation and gate reports, the monitoring baseline and the model
(``mlflow.sklearn`` flavor, signature and input example). The model version is created
with its lineage tags and its model card (``pipeline.model_card``, the version's
description) in the same call, then gets the ``challenger`` alias;
only when the gate passed does the release alias move, last and in one call, so a
crash at any earlier point leaves the previous champion serving (docs/contracts.md).
The release alias is ``champion`` on the laptop loop, whose deploy and smoke test follow
in the same process, and ``candidate`` on the delivery path (the SageMaker register
step), where ``champion`` moves only after approval, canary and smoke test
(``pipeline.delivery.deploy_cluster``).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.mlflow_ui import classic_experiment
from pipeline.model_card import model_card
from pipeline.registry import CANDIDATE, CHALLENGER, CHAMPION, GATE_CHAMPION_TAG, PENDING, REPLACED_TAG, SMOKE_TAG
from pipeline.schema import REPO_ROOT
from pipeline import schema

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models.model import ModelInfo
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema

BASELINE_ARTIFACT = "monitoring/baseline.parquet"
BASELINE_MAX_ROWS = 100_000
LINEAGE_TAGS = (
    "git_commit",
    "data_digest",
    "data_source",
    "holdout_digest",
    "gate_passed",
    "gate_report",
    "baseline_uri",
)
"""Tags every model version must carry. Parameters and metrics are not copied into tags:
they live on the version's run (``run_id``) as params and metrics, and in the model card."""
SKOPS_TRUSTED_TYPES = ("xgboost.core.Booster", "xgboost.sklearn.XGBClassifier", "xgboost.sklearn.XGBRegressor")
"""Types skops may load besides sklearn's own; saved in the MLmodel file, so a plain
``mlflow.sklearn.load_model`` trusts exactly these and nothing else."""


@dataclass(frozen=True)
class Candidate:
    """Everything the register step records about one trained candidate."""

    model: Any
    model_name: str
    train: pd.DataFrame
    validation: pd.DataFrame
    holdout: pd.DataFrame
    data_digest: str
    data_source: str
    data_path: str
    holdout_digest: str
    params: dict[str, Any]
    metrics: dict[str, float]
    gate: dict[str, Any]
    training: dict[str, Any]
    candidate_key: str
    artifacts: dict[str, Path] = field(default_factory=dict)
    """Files to attach to the run, by artifact directory (``plots``, ``reports``, ...)."""
    champion_version: str | None = None
    """The champion the gate judged against (None: there was none); recorded on the version."""
    deploy_follows: bool = False
    """A deploy and smoke test will follow a promotion: the version is created with
    ``deploy_smoke_test=pending`` so that a run killed before the verdict is noticed."""
    release_alias: str = CHAMPION
    """The alias a version that passed the gate gets: ``champion`` (laptop loop) or
    ``candidate`` (delivery path: champion moves at the end of the release)."""
    extra_tags: dict[str, str] = field(default_factory=dict)
    """More tags for the create call (the delivery path's ``image_digest``)."""

    def __post_init__(self) -> None:
        if self.release_alias not in (CHAMPION, CANDIDATE):
            raise ValueError(f"release_alias must be {CHAMPION!r} or {CANDIDATE!r}, got {self.release_alias!r}")


@dataclass(frozen=True)
class Registered:
    """What register did: the version, its run, whether it got the release alias."""

    version: str
    run_id: str
    promoted: bool
    gate_report_uri: str
    baseline_uri: str
    alias: str | None = None
    """The release alias the version got (``champion``/``candidate``), None when refused."""


def git_commit(repo: Path = REPO_ROOT) -> str:
    """The commit being built: CodeBuild's resolved source version, else ``git rev-parse HEAD``.

    A working tree with uncommitted changes gets a ``-dirty`` suffix so lineage never
    claims a commit the model was not built from.
    """
    for var in ("GIT_COMMIT", "MLOPS_GIT_COMMIT", "CODEBUILD_RESOLVED_SOURCE_VERSION"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def _column_type(name: str) -> str:
    """MLflow's type of a contract column: ``long`` (integer), ``double`` (number), ``string`` (category)."""
    if name in schema.INTEGER_FEATURES:
        return "long"
    return "double" if name in schema.NUMERIC_FEATURES else "string"


def model_signature() -> ModelSignature:
    """The contract's feature columns in (nullable ones optional) and the prediction out:
    the ``long`` class label (binary) or a ``double`` (regression)."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    inputs = Schema(
        [ColSpec(_column_type(name), name, required=name not in schema.NULLABLE_FEATURES) for name in schema.FEATURES]
    )
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("long" if schema.IS_CLASSIFIER else "double")]))


def dataset_schema() -> Schema:
    """A split's columns as MLflow's dataset records them: the signature's features, then the label."""
    from mlflow.types.schema import ColSpec, Schema

    label = schema.PROJECT.data.column(schema.LABEL)
    kind = {"integer": "long", "number": "double"}.get(label.type, "string")
    return Schema([*model_signature().inputs.inputs, ColSpec(kind, schema.LABEL)])


def contract_dataset(frame: pd.DataFrame, *, source: str, name: str) -> Any:
    """``frame`` as an MLflow pandas dataset whose schema is :func:`dataset_schema`.

    MLflow infers a pandas dataset's schema by visiting every value of every object
    column: about a second and a half of CPU for the three splits, spent learning what
    ``pipeline.schema`` states and the validate step has already checked. Source, digest
    and profile are MLflow's own, as ``mlflow.data.from_pandas`` makes them."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.pandas_dataset import PandasDataset

    class ContractDataset(PandasDataset):
        @property
        def schema(self) -> Schema:
            return dataset_schema()

    return ContractDataset(df=frame, source=resolve_dataset_source(source), targets=schema.LABEL, name=name)


def _trusted_types(candidate: Candidate) -> list[str]:
    """Types beyond sklearn's own a team's trainer's model needs skops to trust (none for XGBoost's)."""
    if candidate.training.get("trainer", "xgboost") == "xgboost":
        return []
    from training.entry_point import loadable_types

    return loadable_types(candidate.model, candidate.training["trainer"])


def _pip_requirements() -> list[str]:
    # Given explicitly: MLflow's inference of requirements loads the model in a
    # subprocess and costs several seconds per run.
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("mlflow", "scikit-learn", "xgboost", "pandas", "numpy", "skops")]


def register(candidate: Candidate, *, tracking_uri: str, artifact_location: str | None) -> Registered:
    """Log, register and alias the candidate; promote it to champion only if the gate passed.

    ``artifact_location`` is the experiment's artifact root when the experiment is
    created (the local store's ``artifacts/`` folder), None to let the server decide.
    """
    from pipeline import fresh_registry
    from pipeline.mlflow_scope import mlflow_uris
    from pipeline.registry import sqlite_path

    # A new local store's schema may be in the making (the runner started it): never
    # create it twice at once.
    fresh_registry.wait_for(sqlite_path(tracking_uri))
    with mlflow_uris(tracking_uri):
        return _register(candidate, tracking_uri=tracking_uri, artifact_location=artifact_location)


def _register(candidate: Candidate, *, tracking_uri: str, artifact_location: str | None) -> Registered:
    import mlflow
    from mlflow import MlflowClient

    from pipeline.steps.evaluate import predict_proba

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment_id = classic_experiment(client, candidate.model_name, artifact_location)
    passed = bool(candidate.gate["passed"])
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"candidate-{candidate.candidate_key[:12]}") as run:
        mlflow.log_params({k: str(v)[:500] for k, v in candidate.params.items()})
        mlflow.log_metrics({k: v for k, v in candidate.metrics.items() if v == v})
        mlflow.set_tags(
            {
                "data_digest": candidate.data_digest,
                "holdout_digest": candidate.holdout_digest,
                "gate_passed": str(passed).lower(),
                "training_device": str(candidate.training.get("device")),
                "candidate_key": candidate.candidate_key,
            }
        )
        for context, frame in (("training", candidate.train), ("validation", candidate.validation),
                               ("holdout", candidate.holdout)):
            with warnings.catch_warnings():
                # A local path resolves to two equivalent source classes (MLflow warns and
                # picks one).
                warnings.simplefilter("ignore", UserWarning)
                dataset = contract_dataset(frame, source=candidate.data_path, name=f"adult-{context}")
                mlflow.log_input(dataset, context=context, tags={"data_digest": candidate.data_digest})
        for directory, path in candidate.artifacts.items():
            for file in [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file()):
                mlflow.log_artifact(str(file), artifact_path=directory)
        baseline = candidate.train.loc[:, [*schema.FEATURES, schema.LABEL]].head(BASELINE_MAX_ROWS).copy()
        baseline["prediction"] = predict_proba(candidate.model, baseline)
        with tempfile.TemporaryDirectory() as tmp:
            baseline_path = Path(tmp) / Path(BASELINE_ARTIFACT).name
            baseline.to_parquet(baseline_path, index=False)
            mlflow.log_artifact(str(baseline_path), artifact_path=str(Path(BASELINE_ARTIFACT).parent))
        example = candidate.holdout.loc[:, list(schema.FEATURES)].dropna().head(5)
        with warnings.catch_warnings():
            # MLflow hints that integer columns cannot hold NaN: our numeric features are
            # non-nullable by contract (pipeline/schema.py), so the hint does not apply.
            warnings.simplefilter("ignore", UserWarning)
            info = mlflow.sklearn.log_model(
                candidate.model,
                name="model",
                signature=model_signature(),
                input_example=example,
                pip_requirements=_pip_requirements(),
                serialization_format="skops",
                skops_trusted_types=sorted({*SKOPS_TRUSTED_TYPES, *_trusted_types(candidate)}),
            )
        artifact_uri = run.info.artifact_uri.rstrip("/")
        gate_report_uri = f"{artifact_uri}/gate/gate_report.json"
        baseline_uri = f"{artifact_uri}/{BASELINE_ARTIFACT}"
        commit = git_commit()
        tags = {
            "git_commit": commit,
            "data_digest": candidate.data_digest,
            "data_source": candidate.data_source,
            "holdout_digest": candidate.holdout_digest,
            "gate_passed": str(passed).lower(),
            "gate_report": gate_report_uri,
            "baseline_uri": baseline_uri,
            "candidate_key": candidate.candidate_key,
            "training_device": str(candidate.training.get("device")),
        }
        tags[GATE_CHAMPION_TAG] = candidate.champion_version or "none"
        if passed and candidate.deploy_follows:
            tags[SMOKE_TAG] = PENDING
            tags[REPLACED_TAG] = candidate.champion_version or "none"
        if not passed:
            tags["gate_reasons"] = " | ".join(candidate.gate.get("reasons", []))[:4900]
        tags.update(candidate.extra_tags)
        # Tags and card in the create call: a version never exists without its lineage.
        version = _create_version(
            client, candidate.model_name, info, run.info.run_id, tags,
            model_card(candidate, run_id=run.info.run_id, git_commit=commit),
        )
    client.set_registered_model_alias(candidate.model_name, CHALLENGER, version.version)
    if passed:
        # Last write of the run, one call: until here the previous champion still serves.
        client.set_registered_model_alias(candidate.model_name, candidate.release_alias, version.version)
    return Registered(
        version=str(version.version),
        run_id=run.info.run_id,
        promoted=passed,
        gate_report_uri=gate_report_uri,
        baseline_uri=baseline_uri,
        alias=candidate.release_alias if passed else None,
    )


def _create_version(
    client: MlflowClient, name: str, info: ModelInfo, run_id: str, tags: dict[str, str], description: str
) -> ModelVersion:
    """Create the version with its tags and description in one call.

    ``mlflow.register_model`` takes tags but no description, so this does what it does
    with the public client: create the registered model when it is new, create the
    version from the logged model, and link the logged model to the version (the
    ``mlflow.modelVersions`` tag the UI's model page reads).
    """
    import json

    from mlflow.exceptions import MlflowException
    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    version = client.create_model_version(
        name, source=info.model_uri, run_id=run_id, tags=tags, description=description, model_id=info.model_id
    )
    logged = client.get_logged_model(info.model_id)
    links = json.loads(logged.tags.get(MLFLOW_MODEL_VERSIONS, "[]"))
    links.append({"name": name, "version": version.version})
    client.set_logged_model_tags(info.model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(links)})
    return version


def load_champion_model(tracking_uri: str, model_name: str, version: str) -> Any:
    """The champion's sklearn model, loaded by version number (never by a moving alias)."""
    import mlflow

    from pipeline.mlflow_scope import mlflow_uris

    with mlflow_uris(tracking_uri):
        return mlflow.sklearn.load_model(f"models:/{model_name}/{version}")
