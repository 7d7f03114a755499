"""A team's own trainer, named ``module:function`` by ``training.entry_point`` in the project file.

The contract (docs/contracts.md, "The project configuration"): the function is called as
``function(features, target, **hyperparameters)`` with

- ``features``: a pandas DataFrame of the contract's feature columns, in contract order,
  with the data's own types (numbers; categories as strings; missing values as NaN);
- ``target``: a numpy array, 0/1 for a binary task (1 is ``data.positive_class``), floats
  for regression;
- ``hyperparameters``: ``training.hyperparameters`` of the project file, as keyword arguments,

and returns a fitted scikit-learn-compatible estimator that accepts such a frame: one with
``predict_proba`` (binary; column 1 is the positive class's probability) or ``predict``
(regression). The estimator is what MLflow logs and the server loads, so it must be built
from scikit-learn and XGBoost types (the skops format loads nothing else).

A trainer that cannot be imported, or returns something the platform cannot score, is
refused with ``TrainerError`` (exit 2) before anything is registered.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


class TrainerError(ValueError):
    """The configured trainer cannot be used; the message names ``training.entry_point``."""


def resolve(spec: str) -> Callable[..., Any]:
    """The callable ``module:function`` names; ``TrainerError`` says which part failed."""
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise TrainerError(f"training.entry_point: {spec!r} is not module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TrainerError(f"training.entry_point: cannot import module {module_name!r} ({spec}): {exc}") from exc
    function = getattr(module, function_name, None)
    if function is None:
        raise TrainerError(f"training.entry_point: module {module_name!r} has no attribute {function_name!r}")
    if not callable(function):
        raise TrainerError(f"training.entry_point: {spec} is a {type(function).__name__}, not a function")
    return function


def check_estimator(model: Any, spec: str, *, classifier: bool) -> None:
    """Refuse a trained object the platform cannot score: no ``predict_proba`` (binary) or
    ``predict`` (regression)."""
    needed = "predict_proba" if classifier else "predict"
    if not callable(getattr(model, needed, None)):
        task = "binary" if classifier else "regression"
        raise TrainerError(
            f"training.entry_point: {spec} returned a {type(model).__name__}, which has no {needed}(); "
            f"a {task} trainer must return a fitted scikit-learn-compatible estimator with {needed}"
        )


LOADABLE_PACKAGES = ("sklearn", "xgboost", "numpy", "scipy")
"""Packages whose types a served model may contain: what the serving image installs."""
LOADABLE_WRAPPERS = ("functools.partial",)
"""Standard types scikit-learn models hold around their own functions (histogram gradient
boosting keeps ``partial(check_array, ...)``); skops lists the wrapped function as a type
of its own, so it is judged by its package like any other."""


def loadable_types(model: Any, spec: str) -> list[str]:
    """The types skops must be told to trust to load ``model``; ``TrainerError`` naming any
    type from another package (the server could not load it: the skops format runs no
    pickled code, and the serving image has only scikit-learn, XGBoost, NumPy and SciPy)."""
    import skops.io

    untrusted = sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    foreign = [name for name in untrusted
               if name.split(".", 1)[0] not in LOADABLE_PACKAGES and name not in LOADABLE_WRAPPERS]
    if foreign:
        raise TrainerError(
            f"training.entry_point: {spec} returned a model holding {', '.join(foreign)}; a served model may "
            f"hold only types of {', '.join(LOADABLE_PACKAGES)} (build it from their estimators)"
        )
    return untrusted


def fit_with(spec: str, features: pd.DataFrame, target: Any, hyperparameters: Mapping[str, Any],
             *, classifier: bool) -> Any:
    """Resolve ``spec``, call it, and check what it returned; the fitted estimator."""
    function = resolve(spec)
    model = function(features, target, **dict(hyperparameters))
    check_estimator(model, spec, classifier=classifier)
    loadable_types(model, spec)
    return model
