"""Read an MLflow model directory (its ``MLmodel`` file and sklearn flavor) without MLflow.

``import mlflow`` costs two to three seconds of CPU before ``/ping`` can say 200, and the
server needs only three things from a model directory: the sklearn flavor's configuration,
the column signature and the serialized model. The ``MLmodel`` file is documented YAML
(https://mlflow.org/docs/latest/ml/model/#storage-format) whose ``signature.inputs`` is the
JSON column list MLflow writes; a model saved in skops format is loaded with
``skops.io.load`` and the flavor's ``skops_trusted_types``, exactly what
``mlflow.sklearn.load_model`` does, and honouring its ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION``
switch. Pickle and cloudpickle models, a rare path here, are still loaded by
``mlflow.sklearn`` itself. tests/serving/test_mlmodel.py checks both agree.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from serving.payload import SUPPORTED_KINDS, ColumnKind, ColumnSpec

MLMODEL_FILE = "MLmodel"
SKOPS = "skops"


class ModelFileError(RuntimeError):
    """The model directory, its MLmodel file or its serialized model is unusable."""


@dataclass(frozen=True)
class ModelFiles:
    """What the server reads from a model directory."""

    directory: Path
    flavors: dict[str, Any]
    run_id: str | None
    signature_inputs: str | None
    """``signature.inputs`` as MLflow wrote it: a JSON list of column specs, or None."""

    @property
    def sklearn(self) -> dict[str, Any]:
        return dict(self.flavors.get("sklearn") or {})


def read_model_files(directory: str | Path) -> ModelFiles:
    """Parse ``directory/MLmodel``; raises :class:`ModelFileError` naming what is wrong."""
    import yaml

    folder = Path(directory)
    path = folder / MLMODEL_FILE
    if not path.is_file():
        raise ModelFileError(f"{str(folder)!r} is not an MLflow model directory (no MLmodel file)")
    try:
        meta = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ModelFileError(f"cannot read {str(path)!r}: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("flavors"), dict):
        raise ModelFileError(f"{str(path)!r} has no 'flavors' mapping; it is not an MLmodel file")
    signature = meta.get("signature") or {}
    inputs = signature.get("inputs") if isinstance(signature, dict) else None
    return ModelFiles(folder, meta["flavors"], meta.get("run_id"), inputs)


def signature_columns(inputs: str | None) -> tuple[ColumnSpec, ...]:
    """The signature's input columns, refusing a missing, tensor or type-less signature."""
    if not inputs:
        raise ModelFileError("the model has no signature; log it with signature=... so requests can be validated")
    try:
        specs = json.loads(inputs)
    except ValueError as exc:
        raise ModelFileError(f"the model's signature inputs are not JSON: {exc}") from None
    if not isinstance(specs, list):
        raise ModelFileError(f"the model's signature inputs are not a column list: {inputs[:200]!r}")
    columns = []
    for spec in specs:
        name = spec.get("name") if isinstance(spec, dict) else None
        kind = spec.get("type") if isinstance(spec, dict) else None
        if not name or kind not in SUPPORTED_KINDS:
            raise ModelFileError(
                f"signature input {spec!r} is not a named column of type {sorted(SUPPORTED_KINDS)}; "
                "only column (DataFrame) signatures are served"
            )
        columns.append(ColumnSpec(str(name), cast(ColumnKind, kind), bool(spec.get("required", True))))
    return tuple(columns)


def _deserialization_allowed() -> bool:
    """MLflow's own switch (default on): with it off, MLflow refuses to load any model."""
    return os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true").strip().lower() in ("true", "1")


def load_sklearn(files: ModelFiles) -> Any:
    """The flavor's sklearn model: skops files here, any other format through mlflow.sklearn."""
    flavor = files.sklearn
    if flavor.get("serialization_format") != SKOPS:
        import mlflow.sklearn

        return mlflow.sklearn.load_model(str(files.directory))
    if not _deserialization_allowed():
        raise ModelFileError("MLFLOW_ALLOW_PICKLE_DESERIALIZATION is not 'true': loading this model is disallowed, "
                             "as mlflow.sklearn.load_model would refuse it")
    import skops.io

    path = files.directory / str(flavor.get("pickled_model", "model.skops"))
    if not path.is_file():
        raise ModelFileError(f"the sklearn flavor names {path.name!r}, which is not in {str(files.directory)!r}")
    return skops.io.load(path, trusted=flavor.get("skops_trusted_types"))


def import_flavor_libraries() -> None:
    """Import what loading a skops model needs (scikit-learn, XGBoost, skops): seconds of
    work that can overlap the registry look-up running in another process."""
    for module in ("skops.io", "xgboost", "sklearn.pipeline", "sklearn.compose", "sklearn.preprocessing"):
        try:
            __import__(module)
        except ImportError:  # the load itself reports what is missing, for the model it needs
            pass
