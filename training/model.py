"""The model: scikit-learn preprocessing + XGBoost, fitted as one ``Pipeline``; or a team's own trainer.

The project configuration's ``training.entry_point`` chooses: ``xgboost`` (this module's
``fit_model``: an ``XGBClassifier`` for a binary task, an ``XGBRegressor`` for regression)
or ``module:function``, a team's trainer that gets the feature frame, the target and its
hyperparameters and returns a fitted scikit-learn-compatible estimator
(``training.entry_point``). Either way one sklearn-compatible object is what MLflow logs (the ``mlflow.sklearn`` flavor of
docs/contracts.md), so the serving container needs nothing but sklearn and xgboost to
load it. Categoricals are ordinal-encoded with unknown and missing values both mapped
to NaN, which XGBoost routes down its learned default branch: a new category at serving
time degrades gracefully instead of failing.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pipeline import schema

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Hyperparameters:
    """XGBoost settings; small enough that a cold run trains in seconds on 2 CPU cores.

    ``n_estimators`` is an upper bound: early stopping on the validation channel picks
    the round count. ``device="auto"`` means CUDA when a GPU is usable, else CPU.
    """

    n_estimators: int = 300
    max_depth: int = 6
    learning_rate: float = 0.1
    subsample: float = 0.9
    colsample_bytree: float = 0.9
    min_child_weight: float = 1.0
    reg_lambda: float = 1.0
    early_stopping_rounds: int = 30
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.n_estimators < 1 or self.max_depth < 1:
            raise ValueError("n_estimators and max_depth must be >= 1")
        if not 0.0 < self.learning_rate <= 1.0:
            raise ValueError(f"learning_rate must be in (0, 1], got {self.learning_rate}")
        for name in ("subsample", "colsample_bytree"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if self.early_stopping_rounds < 0:
            raise ValueError("early_stopping_rounds must be >= 0 (0 disables it)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> Hyperparameters:
        """Build from strings or numbers (CLI args, SageMaker's hyperparameters.json, ``k=v``)."""
        from pipeline.typed_params import from_mapping

        return from_mapping(cls, values, what="hyperparameter")


@lru_cache(maxsize=1)
def cuda_usable() -> bool:
    """True when XGBoost was built with CUDA and can actually train on a visible GPU.

    Probed by fitting a two-row booster, because a CUDA build on a machine without a
    GPU (or without a driver) only fails when it first touches the device.
    """
    import json
    import warnings

    import numpy as np
    import xgboost

    if not xgboost.build_info().get("USE_CUDA", False):
        return False
    # XGBoost reports a missing GPU as a warning raised inside a ctypes callback (which
    # cannot propagate), then silently trains on the CPU: record warnings and read back
    # the device the booster really used.
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            booster = xgboost.train(
                {"device": "cuda", "tree_method": "hist", "verbosity": 1},
                xgboost.DMatrix(np.array([[0.0], [1.0]]), label=np.array([0.0, 1.0])),
                num_boost_round=1,
            )
        used = json.loads(booster.save_config())["learner"]["generic_param"].get("device", "")
    except Exception:  # noqa: BLE001 - any failure to use the GPU means "use the CPU"
        return False
    if any("GPU" in str(w.message) for w in caught):
        return False
    return used.startswith("cuda")
    return True


def resolve_device(requested: str) -> str:
    """The device XGBoost will use: ``cuda`` when asked for (or ``auto``) and usable, else ``cpu``."""
    if requested == "cpu":
        return "cpu"
    usable = cuda_usable()
    if requested == "cuda" and not usable:
        raise RuntimeError("device='cuda' was requested but no usable CUDA GPU was found")
    return "cuda" if usable else "cpu"


def build_preprocessor() -> Any:
    """Column transformer: numeric features as floats, categoricals ordinal with unknown/missing -> NaN."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OrdinalEncoder

    return ColumnTransformer(
        [
            ("numeric", "passthrough", list(schema.NUMERIC_FEATURES)),
            (
                "categorical",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=np.nan,
                    encoded_missing_value=np.nan,
                    dtype=np.float64,
                ),
                list(schema.CATEGORICAL_FEATURES),
            ),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )


@dataclass(frozen=True)
class FitResult:
    """A fitted model and the facts about its fit that lineage records."""

    model: Pipeline
    device: str
    best_iteration: int
    validation_logloss: float | None
    """The best validation loss of early stopping: log loss (binary) or RMSE (regression)."""
    trainer: str = "xgboost"


def fit_model(
    train: pd.DataFrame, validation: pd.DataFrame | None, params: Hyperparameters
) -> FitResult:
    """Fit preprocessing + XGBoost on ``train``; early-stop on ``validation`` when given.

    The preprocessor is fitted first so the validation set can be transformed for
    XGBoost's ``eval_set``; both fitted parts are then assembled into one sklearn
    ``Pipeline`` whose ``predict_proba`` uses the best iteration.
    """
    import numpy as np
    from sklearn.pipeline import Pipeline
    from xgboost import XGBClassifier, XGBRegressor

    if len(train) == 0:
        raise ValueError("the training set is empty")
    y_train = schema.target(train)
    classify = schema.IS_CLASSIFIER
    if classify and len(np.unique(y_train)) != 2:
        raise ValueError("the training set needs both label classes")
    device = resolve_device(params.device)
    log.info("training XGBoost on device=%s", device)
    preprocessor = build_preprocessor()
    x_train = preprocessor.fit_transform(train.loc[:, list(schema.FEATURES)])
    use_early_stopping = validation is not None and len(validation) > 0 and params.early_stopping_rounds > 0
    loss = "logloss" if classify else "rmse"
    estimator_class = XGBClassifier if classify else XGBRegressor
    classifier = estimator_class(
        n_estimators=params.n_estimators,
        max_depth=params.max_depth,
        learning_rate=params.learning_rate,
        subsample=params.subsample,
        colsample_bytree=params.colsample_bytree,
        min_child_weight=params.min_child_weight,
        reg_lambda=params.reg_lambda,
        tree_method="hist",
        device=device,
        random_state=params.seed,
        eval_metric=loss,
        early_stopping_rounds=params.early_stopping_rounds if use_early_stopping else None,
        n_jobs=None,
    )
    fit_kwargs: dict[str, Any] = {"verbose": False}
    if use_early_stopping and validation is not None:
        x_valid = preprocessor.transform(validation.loc[:, list(schema.FEATURES)])
        fit_kwargs["eval_set"] = [(x_valid, schema.target(validation))]
    classifier.fit(x_train, y_train, **fit_kwargs)
    # Predictions on a CPU-resident frame would otherwise warn about a device mismatch
    # every call; serving runs on whatever device the container has.
    classifier.set_params(device="cpu")
    logloss: float | None = None
    if use_early_stopping:
        history = classifier.evals_result()["validation_0"][loss]
        logloss = float(np.min(history))
    best = int(getattr(classifier, "best_iteration", params.n_estimators - 1) or 0)
    model = Pipeline([("preprocess", preprocessor), ("classifier" if classify else "regressor", classifier)])
    return FitResult(model=model, device=device, best_iteration=best, validation_logloss=logloss)


def fit(train: pd.DataFrame, validation: pd.DataFrame | None, params: Hyperparameters) -> FitResult:
    """Fit the project's trainer: ``fit_model`` for ``xgboost``, else the team's
    ``module:function`` (``training.entry_point``) with the project's hyperparameters.

    ``TrainerError`` (exit 2) when the trainer cannot be imported or returns something
    the platform cannot score; raised before anything is registered."""
    from training.entry_point import fit_with

    spec = schema.ENTRY_POINT
    if spec == "xgboost":
        return fit_model(train, validation, params)
    if len(train) == 0:
        raise ValueError("the training set is empty")
    log.info("training with %s", spec)
    model = fit_with(spec, train.loc[:, list(schema.FEATURES)], schema.target(train), schema.HYPERPARAMETERS,
                     classifier=schema.IS_CLASSIFIER)
    return FitResult(model=model, device="cpu", best_iteration=-1, validation_logloss=None, trainer=spec)


def project_hyperparameters(overrides: dict[str, Any] | None = None) -> Hyperparameters:
    """The default trainer's settings: its defaults, then the project file's
    ``training.hyperparameters`` (when the trainer is ``xgboost``), then ``overrides``
    (``--param``, SageMaker's hyperparameters)."""
    values: dict[str, Any] = dict(schema.HYPERPARAMETERS) if schema.ENTRY_POINT == "xgboost" else {}
    values.update(overrides or {})
    return Hyperparameters.from_mapping(values)
