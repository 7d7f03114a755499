"""Load the model to serve and turn a validated :class:`~serving.payload.Batch` into
predictions.

A model is found by registry alias (``models:/NAME@champion``), registry version
(``models:/NAME/3``) or local directory (SageMaker mounts it at ``/opt/ml/model``); an
alias is resolved to its version once, at load, so the server keeps answering for the
version it reports even if the alias moves. Any mlflow.sklearn model with a column
signature is served through its own ``predict_proba``; the contract's common shape (a
``ColumnTransformer`` of ``OrdinalEncoder`` and passthrough columns feeding an
``XGBClassifier``) also gets a fast path that encodes rows with dict lookups and calls
``Booster.inplace_predict`` directly, skipping pandas. tests/serving/test_model.py proves
the fast path equal to the pipeline's own ``predict_proba``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from serving.payload import SUPPORTED_KINDS, Batch, ColumnSpec

log = logging.getLogger("serving.model")

BASELINE_ARTIFACT = "monitoring/baseline.parquet"


class ModelLoadError(RuntimeError):
    """The model could not be found, loaded, or has no usable signature."""


class ModelNotYetAvailable(ModelLoadError):
    """A ``models:/NAME@ALIAS`` that may resolve later: the model or the alias does not
    exist yet (the first deploy, before any champion), or the registry is unreachable.
    The server waits for it (``/livez`` 200, ``/ping`` 503) instead of exiting."""


def model_uri_problem(model_uri: str) -> str | None:
    """Why ``model_uri`` cannot name a model (checked before anything loads), or None."""
    if model_uri.startswith("models:/"):
        rest = model_uri[len("models:/"):]
        if "@" in rest:
            name, _, alias = rest.partition("@")
            if name and alias and "/" not in name and "/" not in alias:
                return None
        else:
            name, _, version = rest.partition("/")
            if name and version.isdigit():
                return None
        return f"model URI {model_uri!r} is malformed: use models:/NAME@ALIAS, models:/NAME/VERSION or a model directory"
    if "://" in model_uri and not model_uri.startswith("file://"):
        return f"model URI {model_uri!r}: only models:/..., file:// and local model directories are served"
    local = Path(model_uri[len("file://"):] if model_uri.startswith("file://") else model_uri)
    if not local.is_dir():
        return f"model directory {str(local)!r} does not exist"
    return None


@dataclass(frozen=True)
class Prediction:
    """Labels and, when the model has ``predict_proba``, the probability of class 1."""

    labels: list[Any]
    probabilities: list[float] | None


Predictor = Callable[[Batch], Prediction]


@dataclass(frozen=True)
class LoadedModel:
    """Everything the server needs about the model it serves."""

    name: str
    version: str
    uri: str
    run_id: str | None
    lineage: dict[str, str]
    columns: tuple[ColumnSpec, ...]
    predict: Predictor
    fast_path: bool
    baseline_predictions: np.ndarray | None = field(default=None, repr=False)
    sklearn_model: Any = field(default=None, repr=False)


def columns_from_signature(signature: Any) -> tuple[ColumnSpec, ...]:
    """The signature's input columns, refusing tensor or type-less signatures."""
    if signature is None or signature.inputs is None:
        raise ModelLoadError("the model has no signature; log it with signature=... so requests can be validated")
    specs = []
    for col in signature.inputs.inputs:
        name = getattr(col, "name", None)
        kind = getattr(getattr(col, "type", None), "name", None)
        if not name or kind not in SUPPORTED_KINDS:
            raise ModelLoadError(
                f"signature input {col!r} is not a named column of type {sorted(SUPPORTED_KINDS)}; "
                "only column (DataFrame) signatures are served"
            )
        specs.append(ColumnSpec(name, kind, bool(getattr(col, "required", True))))
    return tuple(specs)


def _frame(batch: Batch) -> Any:
    """A DataFrame with the dtypes pandas gives the training CSV (NaN for missing)."""
    import pandas as pd

    data: dict[str, Any] = {}
    for spec, values in zip(batch.columns, batch.values, strict=True):
        has_missing = any(v is None for v in values)
        if spec.kind in ("long", "integer") and not has_missing:
            data[spec.name] = np.asarray(values, dtype=np.int64 if spec.kind == "long" else np.int32)
        elif spec.kind in ("long", "integer", "double"):
            data[spec.name] = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
        elif spec.kind == "float":
            data[spec.name] = np.asarray([np.nan if v is None else v for v in values], dtype=np.float32)
        elif spec.kind == "boolean" and not has_missing:
            data[spec.name] = np.asarray(values, dtype=bool)
        else:
            data[spec.name] = np.asarray([np.nan if v is None else v for v in values], dtype=object)
    return pd.DataFrame(data)


def generic_predictor(model: Any) -> Predictor:
    """Score through the model's own ``predict_proba`` (or ``predict``) on a DataFrame."""
    has_proba = callable(getattr(model, "predict_proba", None))
    classes = getattr(model, "classes_", None)

    def predict(batch: Batch) -> Prediction:
        frame = _frame(batch)
        if not has_proba:
            return Prediction(np.asarray(model.predict(frame)).tolist(), None)
        proba = np.asarray(model.predict_proba(frame))
        labels = classes[proba.argmax(axis=1)] if classes is not None else proba.argmax(axis=1)
        positive = proba[:, 1] if proba.shape[1] > 1 else proba[:, 0]
        return Prediction(np.asarray(labels).tolist(), positive.astype(float).tolist())

    return predict


def fast_predictor(model: Any, columns: Sequence[ColumnSpec]) -> Predictor | None:
    """A pandas-free scorer for ``Pipeline([ColumnTransformer(OrdinalEncoder | passthrough),
    XGBClassifier(binary:logistic)])``, or ``None`` when the model has any other shape.

    Every condition under which the sklearn pipeline would compute something different
    (infrequent categories, a remainder, sparse output, a non-binary objective) returns
    ``None`` so the generic path is used instead of a wrong answer."""
    try:
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder
        from xgboost import XGBClassifier
    except ImportError:
        return None
    if not isinstance(model, Pipeline) or len(model.steps) != 2:
        return None
    transformer, classifier = model.steps[0][1], model.steps[1][1]
    if not isinstance(transformer, ColumnTransformer) or not isinstance(classifier, XGBClassifier):
        return None
    if getattr(transformer, "sparse_output_", False) or getattr(classifier, "n_classes_", 2) != 2:
        return None
    if classifier.get_xgb_params().get("objective") != "binary:logistic":
        return None
    feature_names = list(getattr(transformer, "feature_names_in_", []))
    position = {spec.name: index for index, spec in enumerate(columns)}
    kinds = {spec.name: spec.kind for spec in columns}
    # Each output column of the transformer: (input position, None) for passthrough, or
    # (input position, (mapping, unknown_code, missing_code)) for an ordinal-encoded one.
    plan: list[tuple[int, tuple[dict[Any, float], float, float] | None]] = []
    for name, step, selected in transformer.transformers_:
        if step == "drop":
            continue
        names = [feature_names[i] if isinstance(i, (int, np.integer)) else i for i in selected]
        if not all(isinstance(n, str) and n in position for n in names):
            return None
        # A fitted ColumnTransformer stores "passthrough" as an identity FunctionTransformer.
        identity = isinstance(step, FunctionTransformer) and step.func is None
        if step == "passthrough" or identity:
            if name == "remainder" and names:
                return None
            if any(kinds[n] not in ("long", "integer", "double", "float") for n in names):
                return None
            plan.extend((position[n], None) for n in names)
        elif isinstance(step, OrdinalEncoder):
            if step.handle_unknown != "use_encoded_value" or getattr(step, "_infrequent_enabled", False):
                return None
            missing_code = float(step.encoded_missing_value)
            for n, categories in zip(names, step.categories_, strict=True):
                mapping = {c: float(i) for i, c in enumerate(categories) if not (isinstance(c, float) and math.isnan(c))}
                plan.append((position[n], (mapping, float(step.unknown_value), missing_code)))
        else:
            return None
    booster = classifier.get_booster()
    best = getattr(classifier, "best_iteration", None)
    iteration_range = (0, best + 1) if best is not None else (0, 0)
    missing = classifier.missing
    classes = np.asarray(classifier.classes_)
    width = len(plan)

    def predict(batch: Batch) -> Prediction:
        matrix = np.empty((batch.n_rows, width), dtype=np.float32)
        for out, (source, encoding) in enumerate(plan):
            values = batch.values[source]
            if encoding is None:
                matrix[:, out] = [np.nan if v is None else v for v in values]
            else:
                mapping, unknown, missing_code = encoding
                matrix[:, out] = [missing_code if v is None else mapping.get(v, unknown) for v in values]
        proba = booster.inplace_predict(matrix, iteration_range=iteration_range, missing=missing)
        labels = classes[(proba > 0.5).astype(np.int64)]
        return Prediction(labels.tolist(), proba.astype(float).tolist())

    return predict


def _registry_version(model_uri: str, tracking_uri: str | None) -> tuple[str, str, Any, str]:
    """Resolve ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` to (name, version,
    ModelVersion, artifact URI). The artifact URI is asked of this registry explicitly:
    MLflow resolves a ``models:/`` download against the *global* registry URI, which in a
    library caller (the deploy step) may be another store or a fresh ./mlflow.db."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    rest = model_uri[len("models:/") :]
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    by_alias = "@" in rest
    try:
        if by_alias:
            name, alias = rest.split("@", 1)
            found = client.get_model_version_by_alias(name, alias)
        else:
            name, _, version = rest.partition("/")
            if not version.isdigit():
                raise ModelLoadError(
                    f"model URI {model_uri!r}: use models:/NAME@ALIAS or models:/NAME/VERSION or a local directory"
                )
            found = client.get_model_version(name, version)
        source = client.get_model_version_download_uri(name, str(found.version))
    except MlflowException as exc:
        missing = exc.error_code == "RESOURCE_DOES_NOT_EXIST" or (
            exc.error_code == "INVALID_PARAMETER_VALUE" and "alias" in exc.message)
        unreachable = "API request to" in exc.message
        if by_alias and (missing or unreachable):
            raise ModelNotYetAvailable(f"cannot resolve {model_uri!r} yet: {exc.message}") from None
        raise ModelLoadError(f"cannot resolve {model_uri!r} in the registry: {exc.message}") from None
    except OSError as exc:  # a registry that does not answer at all
        if by_alias:
            raise ModelNotYetAvailable(f"cannot reach the registry for {model_uri!r}: {exc}") from None
        raise ModelLoadError(f"cannot reach the registry for {model_uri!r}: {exc}") from None
    return name, str(found.version), found, source


def _load_baseline(uri: str | None, run_id: str | None, tracking_uri: str | None) -> np.ndarray | None:
    """The baseline's ``prediction`` column, or ``None`` when the version has none."""
    import mlflow.artifacts
    import pandas as pd

    try:
        if uri:
            path = mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=tracking_uri)
        elif run_id:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=BASELINE_ARTIFACT, tracking_uri=tracking_uri
            )
        else:
            return None
        values = pd.read_parquet(path, columns=["prediction"])["prediction"].to_numpy(dtype=float)
    except Exception as exc:  # a missing baseline only switches the drift gauge off
        log.info("no monitoring baseline (%s): mlserve_prediction_drift_psi disabled", type(exc).__name__)
        return None
    values = values[np.isfinite(values)]
    return values if values.size else None


def load_model(
    model_uri: str,
    *,
    tracking_uri: str | None = None,
    name: str | None = None,
    version: str | None = None,
    baseline_path: str | None = None,
    use_fast_path: bool = True,
) -> LoadedModel:
    """Load ``model_uri`` (registry URI or local directory) with its signature, lineage
    tags and monitoring baseline; ``name``/``version`` label a local directory, whose
    registry identity the files do not record. Raises :class:`ModelLoadError`."""
    import mlflow.artifacts
    import mlflow.sklearn
    from mlflow.models import Model

    lineage: dict[str, str] = {}
    run_id = None
    baseline_uri = None
    if model_uri.startswith("models:/"):
        name, version, found, source = _registry_version(model_uri, tracking_uri)
        lineage = dict(found.tags)
        run_id = found.run_id
        baseline_uri = lineage.get("baseline_uri")
        load_uri = f"models:/{name}/{version}"
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=source, tracking_uri=tracking_uri)
        except Exception as exc:
            raise ModelLoadError(f"cannot download {load_uri}: {exc}") from None
    else:
        local = model_uri[len("file://") :] if model_uri.startswith("file://") else model_uri
        if not (Path(local) / "MLmodel").is_file():
            raise ModelLoadError(f"{local!r} is not an MLflow model directory (no MLmodel file)")
        name = name or Path(local).resolve().name
        version = version or "local"
    try:
        meta = Model.load(local)
    except Exception as exc:
        raise ModelLoadError(f"cannot read the MLmodel file of {model_uri!r}: {exc}") from None
    if "sklearn" not in meta.flavors:
        raise ModelLoadError(f"{model_uri!r} has no sklearn flavor (flavors: {sorted(meta.flavors)})")
    columns = columns_from_signature(meta.signature)
    run_id = run_id or meta.run_id
    try:
        sk_model = mlflow.sklearn.load_model(local)
    except Exception as exc:
        raise ModelLoadError(f"cannot load the sklearn model of {model_uri!r}: {type(exc).__name__}: {exc}") from None
    fast = fast_predictor(sk_model, columns) if use_fast_path else None
    if baseline_path:
        baseline = _load_baseline(Path(baseline_path).resolve().as_uri(), None, tracking_uri)
    else:
        baseline = _load_baseline(baseline_uri, run_id, tracking_uri) if model_uri.startswith("models:/") else None
    return LoadedModel(
        name=str(name),
        version=str(version),
        uri=f"models:/{name}/{version}" if model_uri.startswith("models:/") else model_uri,
        run_id=run_id,
        lineage=lineage,
        columns=columns,
        predict=fast or generic_predictor(sk_model),
        fast_path=fast is not None,
        baseline_predictions=baseline,
        sklearn_model=sk_model,
    )
