"""Trainers a project can name instead of XGBoost (``training.entry_point: module:function``).

They follow ``training.entry_point``'s contract and double as examples of it: a function
of ``(features, target, **hyperparameters)`` returning one fitted scikit-learn ``Pipeline``
that takes the raw feature frame (numbers, category strings, NaN for missing), so the
server and the gate score it exactly as they score the default trainer's model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.pipeline import Pipeline


def _columns(features: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Numeric and text columns of the frame, as the contract typed them."""
    from pandas.api.types import is_numeric_dtype

    numeric = [c for c in features.columns if is_numeric_dtype(features[c])]
    return numeric, [c for c in features.columns if c not in numeric]


def ridge_regression(features: pd.DataFrame, target: np.ndarray, *, alpha: float = 1.0) -> Pipeline:
    """A linear baseline: median-imputed, standardised numbers and one-hot categories into ``Ridge``.

    The yardstick a tree model should beat; a project that names it as challenger sees
    the gate compare a linear model with its champion."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric, text = _columns(features)
    preprocess = ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            ("categorical", make_pipeline(SimpleImputer(strategy="constant", fill_value="<missing>"),
                                          OneHotEncoder(handle_unknown="ignore")), text),
        ],
        remainder="drop",
    )
    model = Pipeline([("preprocess", preprocess), ("regressor", Ridge(alpha=float(alpha)))])
    return model.fit(features, target)


def hist_gradient_boosting(features: pd.DataFrame, target: np.ndarray, *, max_iter: int = 200,
                           learning_rate: float = 0.1, random_state: int = 0) -> Any:
    """scikit-learn's histogram gradient boosting, classifier or regressor by the target.

    Categories are ordinal-encoded (unknown and missing to NaN, which the trees route
    down a learned branch) and declared categorical to the booster."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    numeric, text = _columns(features)
    preprocess = ColumnTransformer(
        [
            ("numeric", "passthrough", numeric),
            ("categorical", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                           encoded_missing_value=np.nan), text),
        ],
        remainder="drop",
    )
    binary = set(np.unique(target).tolist()) <= {0, 1} and np.issubdtype(np.asarray(target).dtype, np.integer)
    booster_class = HistGradientBoostingClassifier if binary else HistGradientBoostingRegressor
    booster = booster_class(max_iter=int(max_iter), learning_rate=float(learning_rate), random_state=int(random_state),
                            categorical_features=[len(numeric) + i for i in range(len(text))] or None)
    model = Pipeline([("preprocess", preprocess), ("classifier" if binary else "regressor", booster)])
    return model.fit(features, target)
