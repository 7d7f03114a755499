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

Only the registry look-up uses MLflow (:mod:`serving.registry`, in a helper process
for the server); the model directory is read by :mod:`serving.mlmodel`, so the seconds
of MLflow's import are not spent in the process that must answer ``/ping``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from serving.payload import Batch, ColumnSpec

if TYPE_CHECKING:
    from serving.registry import RegistryResolver

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


def _read_baseline(path: str | Path | None, note: str | None = None) -> np.ndarray | None:
    """The baseline's ``prediction`` column, or ``None`` when the version has none."""
    if path is None:
        log.info("no monitoring baseline (%s): mlserve_prediction_drift_psi disabled", note or "none recorded")
        return None
    import pandas as pd

    try:
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
    resolver: RegistryResolver | None = None,
) -> LoadedModel:
    """Load ``model_uri`` (registry URI or local directory) with its signature, lineage
    tags and monitoring baseline; ``name``/``version`` label a local directory, whose
    registry identity the files do not record. Raises :class:`ModelLoadError`.

    A registry URI is resolved by :func:`serving.registry.resolve`: in ``resolver``'s
    helper process when given (the server's case: the model libraries import here
    meanwhile), else in this process. A model directory is read without MLflow
    (:mod:`serving.mlmodel`)."""
    from serving.mlmodel import ModelFileError, import_flavor_libraries, load_sklearn, read_model_files, signature_columns

    lineage: dict[str, str] = {}
    run_id = None
    baseline_file: str | None = None
    baseline_note: str | None = None
    registry = model_uri.startswith("models:/")
    if registry:
        from serving.registry import resolve

        if resolver is not None:
            pending = resolver.submit(model_uri, tracking_uri)
            import_flavor_libraries()
            resolved = pending.result()
        else:
            resolved = resolve(model_uri, tracking_uri)
        name, version, run_id = resolved.name, resolved.version, resolved.run_id
        lineage = dict(resolved.tags)
        local = resolved.model_dir
        baseline_file, baseline_note = resolved.baseline_path, resolved.baseline_note
    else:
        local = model_uri[len("file://") :] if model_uri.startswith("file://") else model_uri
        name = name or Path(local).resolve().name
        version = version or "local"
    try:
        files = read_model_files(local)
        if "sklearn" not in files.flavors:
            raise ModelLoadError(f"{model_uri!r} has no sklearn flavor (flavors: {sorted(files.flavors)})")
        columns = signature_columns(files.signature_inputs)
    except ModelFileError as exc:
        raise ModelLoadError(str(exc)) from None
    run_id = run_id or files.run_id
    try:
        sk_model = load_sklearn(files)
    except Exception as exc:
        raise ModelLoadError(f"cannot load the sklearn model of {model_uri!r}: {type(exc).__name__}: {exc}") from None
    fast = fast_predictor(sk_model, columns) if use_fast_path else None
    if baseline_path:
        baseline = _read_baseline(Path(baseline_path).resolve())
    else:
        baseline = _read_baseline(baseline_file, baseline_note) if registry else None
    return LoadedModel(
        name=str(name),
        version=str(version),
        uri=f"models:/{name}/{version}" if registry else model_uri,
        run_id=run_id,
        lineage=lineage,
        columns=columns,
        predict=fast or generic_predictor(sk_model),
        fast_path=fast is not None,
        baseline_predictions=baseline,
        sklearn_model=sk_model,
    )
