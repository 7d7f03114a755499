"""The project configuration: one YAML file that declares a team's model and its data.

Issue 14 moves everything Adult-specific out of the code into this file: the data
contract (columns, types, ranges, allowed values, nullability, the label and the positive
class), the task, the slices and sensitive attribute the gate judges, the gate's metric
and thresholds, the training entry point and its hyperparameters, and the model name the
registry, server, monitor and stack config use. ``project.yaml`` at the repository root
is the Adult example; docs/contracts.md ("The project configuration") documents every key.

``python -m pipeline init`` writes the file from a dataset's profile; ``pipeline.schema``
serves the active file's contract to every step, and the validate step refuses data the
file does not describe (``check_data``) with exit 2.

Loading is strict because a configuration is edited by hand: an unknown key (a typo), a
value of the wrong type, a label or slice that is not a declared column, a metric the task
does not have, each is refused, and one ``ProjectConfigError`` lists every problem with
the key path that holds it (``data.columns[3].type``), so a person fixes the file in one
pass instead of one error per run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml

from pipeline.steps.gate import GateThresholds

if TYPE_CHECKING:
    import pandas as pd

Scalar = str | int | bool
"""A category value or a positive class as YAML reads it (a string, an integer, a boolean)."""

COLUMN_TYPES: Final = ("number", "integer", "category")
DEFAULT_ENTRY_POINT: Final = "xgboost"
MODEL_NAME_PATTERN: Final = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
"""SageMaker's model package group name pattern (letters, digits, inner hyphens, at most
63 characters): the strictest of the places the name goes (MLflow's registry, the stack
config, SageMaker), so a name that loads is accepted by all of them."""
MAX_CATEGORY_VALUES: Final = 200
"""``profile`` refuses a text column with more distinct values than this: an identifier,
free text or a timestamp is not a category a model learns from, and listing every value
would bury the file (Adult's widest category, native_country, has 41)."""
_ENTRY_POINT_PATTERN: Final = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


class ProjectConfigError(ValueError):
    """The configuration is invalid; ``problems`` lists every problem, each naming its key path."""

    def __init__(self, problems: Sequence[str], *, source: str = "project configuration") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(f"{source}: {len(self.problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in self.problems))


@dataclass(frozen=True)
class RegressionThresholds:
    """Every number the regression gate judges by (``pipeline.steps.gate``, the regression rules).

    ``min_r2`` is the floor every challenger, the first one too, must clear: its R² on the
    holdout above this (0: better than predicting the holdout's mean; no skill is refused).
    Errors are in the label's own units, which differ per dataset, so the tolerances are
    relative to the champion's error: ``error_tolerance=0.02`` lets the upper confidence
    bound of the paired bootstrap's error difference (challenger - champion) reach 2 % of
    the champion's error; ``slice_tolerance`` is the same for each slice with at least
    ``min_slice_rows`` rows; ``max_group_error_ratio`` (only with a sensitive attribute)
    bounds the worst group's error over the best group's.
    """

    min_r2: float = 0.0
    error_tolerance: float = 0.02
    bootstrap_samples: int = 1000
    confidence: float = 0.95
    slice_tolerance: float = 0.05
    min_slice_rows: int = 200
    max_group_error_ratio: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.5 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0.5, 1), got {self.confidence}")
        if self.bootstrap_samples < 100:
            raise ValueError(f"bootstrap_samples must be >= 100, got {self.bootstrap_samples}")
        for name in ("error_tolerance", "slice_tolerance", "min_slice_rows"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not -1.0 <= self.min_r2 < 1.0:
            raise ValueError(f"min_r2 must be in [-1, 1) (R² of 1 is a perfect fit), got {self.min_r2}")
        if self.max_group_error_ratio is not None and self.max_group_error_ratio < 1.0:
            raise ValueError(f"max_group_error_ratio must be >= 1 (worst group's error over the best's), "
                             f"got {self.max_group_error_ratio}")


@dataclass(frozen=True)
class Task:
    """One kind of model the platform can gate: its metrics and threshold dataclass.

    ``classes`` is the number of label values a classification task needs (None for a
    numeric target); a task with classes needs ``data.positive_class``."""

    name: str
    metrics: tuple[str, ...]
    thresholds: type[GateThresholds] | type[RegressionThresholds]
    classes: int | None


TASKS: Final[dict[str, Task]] = {
    "binary": Task("binary", ("roc_auc",), GateThresholds, classes=2),
    "regression": Task("regression", ("rmse", "mae"), RegressionThresholds, classes=None),
}
"""The tasks a configuration may name; a new task adds an entry (and its gate)."""


@dataclass(frozen=True)
class Column:
    """One declared column: its type, whether it may hold nulls, and its allowed values.

    ``minimum``/``maximum`` (YAML ``min``/``max``, inclusive, optional) bound a number or
    integer column; ``values`` lists a category column's allowed values."""

    name: str
    type: str
    nullable: bool = False
    minimum: float | int | None = None
    maximum: float | int | None = None
    values: tuple[Scalar, ...] | None = None


@dataclass(frozen=True)
class DataContract:
    """The columns of one row, which of them is the label, and (classification) its positive class."""

    columns: tuple[Column, ...]
    label: str
    positive_class: Scalar | None = None

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.name != self.label)


@dataclass(frozen=True)
class Gate:
    """The metric the gate compares champion and challenger by, and its thresholds."""

    metric: str
    thresholds: GateThresholds | RegressionThresholds


@dataclass(frozen=True)
class Training:
    """What trains the model: ``xgboost`` (``training.model``) or a ``module:function``
    returning a fitted scikit-learn-compatible estimator, and the hyperparameters it gets."""

    entry_point: str = DEFAULT_ENTRY_POINT
    hyperparameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Project:
    """The whole configuration, loaded and checked (``load``)."""

    model_name: str
    task: str
    data: DataContract
    gate: Gate
    slices: tuple[str, ...] = ()
    sensitive_attribute: str | None = None
    training: Training = field(default_factory=Training)


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last,
    silently: a second ``label:`` would override the first without a word)."""


def _no_duplicate_keys(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice in one mapping", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Checker:
    """Collects problems while walking the document, each prefixed with its key path."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def mapping(self, value: Any, path: str, *, required: Sequence[str], optional: Sequence[str]) -> dict[str, Any]:
        """``value`` as a mapping with only the known keys (unknown and missing ones recorded)."""
        if not isinstance(value, dict):
            self.fail(path or "(top level)", f"expected a mapping, got {_kind(value)} {value!r}")
            return {}
        known = (*required, *optional)
        for key in value:
            if key not in known:
                self.fail(_join(path, str(key)), f"unknown key {key!r}; known keys: {', '.join(known)}")
        for key in required:
            if key not in value:
                self.fail(_join(path, key), "missing (required)")
        return {k: v for k, v in value.items() if k in known}

    def string(self, value: Any, path: str) -> str | None:
        if isinstance(value, str) and value.strip():
            return value
        self.fail(path, f"expected a non-empty string, got {_kind(value)} {value!r}")
        return None

    def choice(self, value: Any, path: str, options: Sequence[str]) -> str | None:
        if isinstance(value, str) and value in options:
            return value
        self.fail(path, f"{value!r} is not one of {', '.join(options)}")
        return None

    def boolean(self, value: Any, path: str) -> bool:
        if isinstance(value, bool):
            return value
        self.fail(path, f"expected true or false, got {_kind(value)} {value!r}")
        return False

    def scalar(self, value: Any, path: str) -> Scalar | None:
        if isinstance(value, (str, int)):  # bool is an int
            return value
        self.fail(path, f"expected a string, integer or boolean, got {_kind(value)} {value!r}")
        return None

    def names(self, value: Any, path: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            self.fail(path, f"expected a list of column names, got {_kind(value)} {value!r}")
            return ()
        found = [self.string(item, f"{path}[{i}]") for i, item in enumerate(value)]
        return tuple(name for name in found if name is not None)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _column(check: _Checker, raw: Any, path: str) -> Column | None:
    entry = check.mapping(raw, path, required=("name", "type"), optional=("nullable", "min", "max", "values"))
    if not entry:
        return None
    name = check.string(entry.get("name"), f"{path}.name")
    kind = check.choice(entry.get("type"), f"{path}.type", COLUMN_TYPES) if "type" in entry else None
    nullable = check.boolean(entry["nullable"], f"{path}.nullable") if "nullable" in entry else False
    bounds: dict[str, float | int | None] = {"min": None, "max": None}
    values: tuple[Scalar, ...] | None = None
    if kind in ("number", "integer"):
        for key in ("min", "max"):
            if key not in entry or entry[key] is None:
                continue
            value = entry[key]
            if kind == "integer" and not _is_int(value):
                check.fail(f"{path}.{key}", f"expected an integer (the column is integer), got {_kind(value)} {value!r}")
            elif not _is_number(value):
                check.fail(f"{path}.{key}", f"expected a finite number, got {_kind(value)} {value!r}")
            else:
                bounds[key] = value if kind == "integer" else float(value)
        low, high = bounds["min"], bounds["max"]
        if low is not None and high is not None and low > high:
            check.fail(f"{path}.min", f"min {low} is greater than max {high}")
        if "values" in entry:
            check.fail(f"{path}.values", f"allowed values are for category columns; this one is {kind} (use min/max)")
    elif kind == "category":
        for key in ("min", "max"):
            if key in entry:
                check.fail(f"{path}.{key}", "min/max are for number and integer columns; this one is category (use values)")
        raw_values = entry.get("values")
        if not isinstance(raw_values, list) or not raw_values:
            check.fail(f"{path}.values", f"a category column needs a non-empty list of allowed values, got {raw_values!r}")
        else:
            items = [check.scalar(v, f"{path}.values[{i}]") for i, v in enumerate(raw_values)]
            repeated = sorted({str(v) for v in raw_values if raw_values.count(v) > 1})
            if repeated:
                check.fail(f"{path}.values", f"value(s) listed more than once: {', '.join(repeated)}")
            values = tuple(v for v in items if v is not None)
    if name is None or kind is None:
        return None
    return Column(name=name, type=kind, nullable=nullable, minimum=bounds["min"], maximum=bounds["max"], values=values)


def _data(check: _Checker, raw: Any, task: Task | None) -> DataContract | None:
    entry = check.mapping(raw, "data", required=("columns", "label"), optional=("positive_class",))
    raw_columns = entry.get("columns")
    columns: list[Column] = []
    if "columns" in entry:
        if not isinstance(raw_columns, list) or not raw_columns:
            check.fail("data.columns", f"expected a non-empty list of columns, got {_kind(raw_columns)} {raw_columns!r}")
        else:
            found = [_column(check, item, f"data.columns[{i}]") for i, item in enumerate(raw_columns)]
            columns = [c for c in found if c is not None]
    # Names as written, also of entries with other problems, so one typo is reported once.
    by_name: dict[str, int] = {}
    for index, item in enumerate(raw_columns if isinstance(raw_columns, list) else []):
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str) and name in by_name:
            check.fail(f"data.columns[{index}].name", f"column {name!r} is declared twice")
        elif isinstance(name, str):
            by_name[name] = index
    label = check.string(entry.get("label"), "data.label") if "label" in entry else None
    label_column = None
    if label is not None and by_name:
        if label not in by_name:
            check.fail("data.label", f"{label!r} is not a declared column (declared: {', '.join(by_name)})")
        else:
            label_column = next((c for c in columns if c.name == label), None)
            if label_column is not None and label_column.nullable:
                check.fail(f"data.columns[{by_name[label]}].nullable", f"the label {label!r} cannot be nullable")
            if len(by_name) < 2:
                check.fail("data.columns", "declare at least one feature column besides the label")
    positive: Scalar | None = None
    if task is not None and task.classes is not None:
        if "positive_class" not in entry:
            check.fail("data.positive_class", f"missing: a {task.name} task needs the label value that counts as positive")
        else:
            positive = check.scalar(entry["positive_class"], "data.positive_class")
            if positive is not None and label_column is not None:
                _check_positive_class(check, positive, label_column)
    elif task is not None and "positive_class" in entry:
        check.fail("data.positive_class", f"{entry['positive_class']!r} given, but a {task.name} task has no classes; remove it")
    if label is None or len(columns) != len(raw_columns or []) or not columns:
        return None
    return DataContract(columns=tuple(columns), label=label, positive_class=positive)


def _check_positive_class(check: _Checker, positive: Scalar, label: Column) -> None:
    """The positive class must be a value the label column allows."""
    if label.type == "category" and label.values is not None and positive not in label.values:
        check.fail("data.positive_class", f"{positive!r} is not among the label {label.name!r}'s values "
                   f"({', '.join(map(repr, label.values))})")
    elif label.type in ("integer", "number"):
        if isinstance(positive, str) or not _is_number(positive):
            check.fail("data.positive_class", f"{positive!r} is not a number, but the label {label.name!r} is {label.type}")
        elif (label.minimum is not None and positive < label.minimum) or (
                label.maximum is not None and positive > label.maximum):
            check.fail("data.positive_class", f"{positive!r} is outside the label {label.name!r}'s range "
                       f"[{label.minimum}, {label.maximum}]")


def _gate(check: _Checker, raw: Any, task: Task) -> Gate | None:
    names = [f.name for f in fields(task.thresholds)]
    entry = check.mapping(raw, "gate", required=("metric",), optional=names)
    metric = entry.get("metric")
    if "metric" in entry and metric not in task.metrics:
        check.fail("gate.metric", f"{metric!r} is not a metric of a {task.name} task; "
                   f"one of: {', '.join(task.metrics)}")
        metric = None
    values = {k: v for k, v in entry.items() if k != "metric"}
    converted: dict[str, Any] = {}
    defaults = task.thresholds()
    for key, value in values.items():
        default = getattr(defaults, key)
        optional_float = default is None  # max_group_error_ratio: a number, or null for no bound
        if value is None and optional_float:
            converted[key] = None
        elif _is_int(default) and not _is_int(value):
            check.fail(f"gate.{key}", f"expected an integer, got {_kind(value)} {value!r}")
        elif (isinstance(default, float) or optional_float) and not _is_number(value):
            check.fail(f"gate.{key}", f"expected a number, got {_kind(value)} {value!r}")
        else:
            converted[key] = float(value) if isinstance(default, float) or optional_float else value
    if len(converted) != len(values):
        return None
    try:
        thresholds = task.thresholds(**converted)
    except ValueError as exc:
        # The dataclass's own range checks; their message starts with the field's name.
        field_name = next((k for k in names if str(exc).startswith(f"{k} ")), None)
        check.fail(f"gate.{field_name}" if field_name else "gate", str(exc))
        return None
    return None if metric is None else Gate(metric=metric, thresholds=thresholds)


def _training(check: _Checker, raw: Any) -> Training | None:
    entry = check.mapping(raw, "training", required=(), optional=("entry_point", "hyperparameters"))
    entry_point = entry.get("entry_point", DEFAULT_ENTRY_POINT)
    if entry_point != DEFAULT_ENTRY_POINT and not (isinstance(entry_point, str) and _ENTRY_POINT_PATTERN.match(entry_point)):
        check.fail("training.entry_point", f"{entry_point!r} is neither {DEFAULT_ENTRY_POINT!r} nor 'module:function'")
        return None
    hyperparameters = entry.get("hyperparameters", {})
    if hyperparameters is None:
        hyperparameters = {}
    if not isinstance(hyperparameters, dict):
        check.fail("training.hyperparameters", f"expected a mapping of name: value, got {_kind(hyperparameters)} {hyperparameters!r}")
        return None
    for key, value in hyperparameters.items():
        if not isinstance(key, str):
            check.fail("training.hyperparameters", f"key {key!r} is not a string")
        elif not isinstance(value, (str, int, float, bool)) and value is not None:
            check.fail(f"training.hyperparameters.{key}", f"expected a string, number or boolean, got {_kind(value)} {value!r}")
    if entry_point == DEFAULT_ENTRY_POINT and hyperparameters:
        # The default trainer's own names and types, so a typo is refused here, not at training.
        from training.model import Hyperparameters

        try:
            Hyperparameters.from_mapping(hyperparameters)
        except ValueError as exc:
            check.fail("training.hyperparameters", str(exc))
    return Training(entry_point=entry_point, hyperparameters=dict(hyperparameters))


def _declared(data: Any) -> tuple[set[str], str | None]:
    """The column names and the label as written under ``data`` (whatever else is wrong there)."""
    if not isinstance(data, dict):
        return set(), None
    columns = data.get("columns")
    names = {c["name"] for c in columns if isinstance(c, dict) and isinstance(c.get("name"), str)} \
        if isinstance(columns, list) else set()
    label = data.get("label")
    return names, label if isinstance(label, str) else None


def validate(document: Any, *, source: str = "project configuration") -> Project:
    """Build a ``Project`` from a parsed document; raises ``ProjectConfigError`` listing every problem."""
    check = _Checker()
    top = check.mapping(document, "", required=("model_name", "task", "data", "gate"),
                        optional=("slices", "sensitive_attribute", "training"))
    model_name = check.string(top.get("model_name"), "model_name") if "model_name" in top else None
    if model_name is not None and not MODEL_NAME_PATTERN.match(model_name):
        check.fail("model_name", f"{model_name!r} must be letters, digits and inner hyphens, at most 63 characters "
                   "(the registry, the stack config and SageMaker all take it)")
        model_name = None
    task_name = check.choice(top.get("task"), "task", tuple(TASKS)) if "task" in top else None
    task = TASKS.get(task_name) if task_name else None
    data = _data(check, top["data"], task) if "data" in top else None
    # Judged against the names as written, so one bad column entry does not hide a bad slice.
    declared, label = _declared(top.get("data"))
    slices = check.names(top["slices"], "slices") if top.get("slices") is not None else ()
    if declared:
        for index, name in enumerate(slices):
            if name not in declared:
                check.fail(f"slices[{index}]", f"{name!r} is not a declared column")
            elif name == label:
                check.fail(f"slices[{index}]", f"{name!r} is the label; slices are feature columns")
    sensitive = top.get("sensitive_attribute")
    if sensitive is not None:
        sensitive = check.string(sensitive, "sensitive_attribute")
        if sensitive is not None and declared and sensitive not in declared:
            check.fail("sensitive_attribute", f"{sensitive!r} is not a declared column")
        elif sensitive is not None and sensitive == label:
            check.fail("sensitive_attribute", f"{sensitive!r} is the label; it must be a feature column")
    gate = _gate(check, top["gate"], task) if "gate" in top and task is not None else None
    training = _training(check, top.get("training", {}) or {})
    if check.problems:
        raise ProjectConfigError(check.problems, source=source)
    assert model_name and task_name and data and gate and training  # every None above recorded a problem
    return Project(model_name=model_name, task=task_name, data=data, gate=gate, slices=slices,
                   sensitive_attribute=sensitive, training=training)


def loads(text: str, *, source: str = "project configuration") -> Project:
    """Parse YAML ``text`` (``yaml.safe_load`` rules, duplicate keys refused) and validate it."""
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ProjectConfigError([f"not valid YAML: {exc}"], source=source) from exc
    return validate(document, source=source)


def load(path: Path) -> Project:
    """Read and validate the configuration at ``path``; ``ProjectConfigError`` names the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProjectConfigError([f"cannot be read: {exc.strerror or exc}"], source=str(path)) from exc
    return loads(text, source=str(path))


def active_thresholds(overrides: Mapping[str, Any] | None = None) -> GateThresholds | RegressionThresholds:
    """The active project's gate thresholds, with ``overrides`` (``--gate k=v``, a
    Processing job's ``--param``) replacing single values; every other value stays the
    project file's, not the class default."""
    from dataclasses import asdict

    from pipeline import schema
    from pipeline.typed_params import from_mapping

    base = schema.THRESHOLDS
    if not overrides:
        return base
    return from_mapping(type(base), {**asdict(base), **overrides}, what="gate threshold")


# ---------------------------------------------------------------------------------------
# The configuration against its data
# ---------------------------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    """A YAML value equals a data value: ``1`` and ``1`` (int64), or ``'1'`` and ``1``."""
    return bool(a == b) or str(a) == str(b)


def check_data(project: Project, frame: pd.DataFrame) -> list[str]:
    """What in ``frame`` contradicts ``project``, one message per problem naming the key and column.

    Run before training, so a configuration that does not describe its data stops the run
    (exit 2) instead of failing inside a step: a declared column missing, a regression
    label that is not numeric, a binary label whose values are not exactly two including
    the positive class, a slice or sensitive column absent. Values in range and allowed
    categories are validation's job (the data, not the configuration, is wrong then)."""
    problems: list[str] = []
    present = set(frame.columns)
    available = ", ".join(map(str, frame.columns))
    for index, column in enumerate(project.data.columns):
        if column.name not in present:
            problems.append(f"data.columns[{index}]: column {column.name!r} is not in the data (its columns: {available})")
    label = project.data.label
    if label not in present:
        problems.append(f"data.label: the label column {label!r} is not in the data (its columns: {available})")
    else:
        problems += label_problems(project, frame)
    for index, name in enumerate(project.slices):
        if name not in present:
            problems.append(f"slices[{index}]: slice column {name!r} is not in the data")
    if project.sensitive_attribute is not None and project.sensitive_attribute not in present:
        problems.append(f"sensitive_attribute: column {project.sensitive_attribute!r} is not in the data")
    return problems


def label_problems(project: Project, frame: pd.DataFrame) -> list[str]:
    """What the label column of ``frame`` (which must have it) says against the file's task:
    a regression label that is not numeric, a binary label without exactly two values
    or without ``positive_class`` among them."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    label = project.data.label
    task = TASKS[project.task]
    if task.classes is None:
        series = frame[label]
        if not is_numeric_dtype(series) or is_bool_dtype(series):
            return [f"data.label: a {project.task} label must be numeric; column {label!r} "
                    f"holds {series.dtype} values such as {series.dropna().head(3).tolist()!r}"]
        return []
    values = frame[label].dropna().unique().tolist()
    if len(values) != task.classes:
        shown = sorted(map(str, values))[:10]
        return [f"data.label: a {project.task} label needs exactly {task.classes} values; column "
                f"{label!r} has {len(values)}: {', '.join(shown)}{' ...' if len(values) > 10 else ''}"]
    if not any(_same(project.data.positive_class, v) for v in values):
        return [f"data.positive_class: {project.data.positive_class!r} is not a value of column "
                f"{label!r} (its values: {', '.join(sorted(map(str, values)))})"]
    return []


# ---------------------------------------------------------------------------------------
# Profiling a dataset, and writing the configuration back
# ---------------------------------------------------------------------------------------

POSITIVE_NAMES: Final = frozenset({"1", "true", "yes", "y", "pos", "positive"})
"""Label values read as "the positive class" by name (case-insensitive)."""


def default_model_name(stem: str) -> str:
    """A registry-safe model name from a file name: ``adult.csv.gz`` -> ``adult``."""
    base = stem.split(".", 1)[0].lower()
    name = re.sub(r"[^a-z0-9]+", "-", base).strip("-")[:63].strip("-")
    return name or "model"


def choose_positive_class(counts: Mapping[Scalar, int]) -> Scalar:
    """The positive class of a two-valued label: the value that names itself positive, else the minority.

    A value is positive by name when it is ``1``, ``True``, ``"yes"``/``"true"``/``"y"``/
    ``"pos"``/``"positive"`` (any case) or a string starting with ``>`` (``">50K"``, the
    "above the threshold" convention of census-style labels). When neither or both values
    qualify, the less frequent one is positive (the class a classifier is usually built
    to find); a tie goes to the value that sorts last."""
    def by_name(value: Scalar) -> bool:
        text = str(value).strip().lower()
        return text in POSITIVE_NAMES or text.startswith(">")

    named = [v for v in counts if by_name(v)]
    if len(named) == 1:
        return named[0]
    return min(sorted(counts, key=str, reverse=True), key=lambda v: counts[v])


def _python(value: Any) -> Any:
    """A numpy scalar as the Python value YAML writes (``int64(3)`` -> ``3``)."""
    return value.item() if hasattr(value, "item") else value


def _profile_column(frame: pd.DataFrame, name: str) -> Column:
    from pandas.api.types import is_bool_dtype, is_float_dtype, is_integer_dtype

    series = frame[name]
    present = series.dropna()
    nullable = bool(series.isna().any())
    if present.empty:
        raise ValueError(f"column {name!r} holds no values (every row is null); its type cannot be profiled; drop it")
    if is_bool_dtype(series):
        return Column(name, "category", nullable, values=tuple(sorted(bool(v) for v in present.unique())))
    whole = is_float_dtype(series) and nullable and bool((present == present.round()).all())
    if is_integer_dtype(series) or whole:
        # A CSV integer column with blanks reads as float64; its values are still whole numbers.
        return Column(name, "integer", nullable, minimum=int(present.min()), maximum=int(present.max()))
    if is_float_dtype(series):
        return Column(name, "number", nullable, minimum=float(present.min()), maximum=float(present.max()))
    values = sorted({_python(v) if isinstance(_python(v), (int, str)) else str(v) for v in present.unique()}, key=str)
    return Column(name, "category", nullable, values=tuple(values))


def profile(frame: pd.DataFrame, label: str, task: str = "binary", *, model_name: str = "model") -> Project:
    """A configuration describing ``frame``, with ``label`` as the target of ``task``.

    Types come from the pandas dtypes: integer columns (and float columns with nulls
    whose values are all whole: a CSV integer column with blanks) are ``integer``; other
    floats ``number``; anything else (text, booleans) ``category`` with its observed
    values, sorted. Ranges are the observed min and max; a column with any null is
    nullable. The positive class is chosen by ``choose_positive_class``. Slices and
    the sensitive attribute are left empty (a person chooses them), the gate and training
    take their defaults. Raises ``ValueError`` when ``label`` is not a column, holds nulls,
    is not numeric for regression or does not have exactly two values for binary, when
    a column is entirely null, or when a text column has more than
    ``MAX_CATEGORY_VALUES`` distinct values.
    """
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    spec = TASKS[task]
    if label not in frame.columns:
        raise ValueError(f"label column {label!r} is not in the data; its columns: {', '.join(map(str, frame.columns))}")
    target = frame[label]
    if target.isna().any():
        raise ValueError(f"label column {label!r} has {int(target.isna().sum())} null value(s); "
                         "rows without a label cannot be learned from: drop them first")
    positive: Scalar | None = None
    if spec.classes is None:
        if not is_numeric_dtype(target) or is_bool_dtype(target):
            raise ValueError(f"a {task} label must be numeric; column {label!r} holds {target.dtype} values "
                             f"such as {target.head(3).tolist()!r} (use --task binary for a class label)")
    else:
        counts = target.value_counts()
        if len(counts) != spec.classes:
            shown = ", ".join(sorted(map(str, counts.index))[:10])
            raise ValueError(f"a {task} label needs exactly {spec.classes} values; column {label!r} has "
                             f"{len(counts)}: {shown}{' ...' if len(counts) > 10 else ''}")
        positive = choose_positive_class({_python(k): int(v) for k, v in counts.items()})
    columns = tuple(_profile_column(frame, str(name)) for name in frame.columns)
    wide = [f"{c.name!r} ({len(c.values)} distinct values)" for c in columns
            if c.values is not None and len(c.values) > MAX_CATEGORY_VALUES and c.name != label]
    if wide:
        raise ValueError(f"text column(s) {', '.join(wide)} have more than {MAX_CATEGORY_VALUES} distinct values: "
                         "an identifier, free text or a timestamp is not a category a model learns from; "
                         "leave them out (init --exclude COLUMN) or convert them to numbers first")
    if len(columns) < 2:
        raise ValueError(f"the data has only the label column {label!r}; there is nothing to learn from")
    return Project(
        model_name=model_name,
        task=task,
        data=DataContract(columns=columns, label=label, positive_class=positive),
        gate=Gate(metric=spec.metrics[0], thresholds=spec.thresholds()),
    )


_SECTION_COMMENTS: Final[dict[str, str]] = {
    "model_name": "The registered model's name: the registry, the server, the monitor and the stack\n"
                  "config all use it (letters, digits and inner hyphens, at most 63 characters).",
    "task": f"What the model predicts: {' or '.join(TASKS)}.",
    "data": "The data contract: every column of a row, its type (number, integer or category),\n"
            "whether it may be null, its inclusive range (min/max) or allowed values; the label\n"
            "column and, for a binary task, the label value that counts as positive.",
    "slices": "Feature columns the gate also judges value by value: no slice (sex=Female) may get\n"
              "worse by more than the slice tolerance, so an overall gain cannot hide a group's loss.",
    "sensitive_attribute": "The column fairness is measured across (null: none).",
    "gate": "When a challenger replaces the champion: the metric and every threshold.",
    "training": "The trainer: xgboost (the platform's default) or module:function returning a fitted\n"
                "scikit-learn-compatible estimator, and the hyperparameters it is given.",
}


class _Dumper(yaml.SafeDumper):
    """Block mappings, and lists of plain values on one (wrapped) line: ``slices: [sex, race]``."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.SequenceNode:
    flow = all(not isinstance(item, (list, dict)) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def _column_document(column: Column) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": column.name, "type": column.type, "nullable": column.nullable}
    if column.type == "category":
        entry["values"] = list(column.values or ())
    else:
        for key, value in (("min", column.minimum), ("max", column.maximum)):
            if value is not None:
                entry[key] = value
    return entry


def to_document(project: Project) -> dict[str, Any]:
    """The configuration as the plain mapping its YAML holds (keys in the documented order)."""
    data: dict[str, Any] = {"label": project.data.label}
    if project.data.positive_class is not None:
        data["positive_class"] = project.data.positive_class
    data["columns"] = [_column_document(c) for c in project.data.columns]
    thresholds = {f.name: getattr(project.gate.thresholds, f.name) for f in fields(project.gate.thresholds)}
    return {
        "model_name": project.model_name,
        "task": project.task,
        "data": data,
        "slices": list(project.slices),
        "sensitive_attribute": project.sensitive_attribute,
        "gate": {"metric": project.gate.metric, **thresholds},
        "training": {"entry_point": project.training.entry_point,
                     "hyperparameters": dict(project.training.hyperparameters)},
    }


def render(project: Project, *, source: str | None = None) -> str:
    """Readable, commented YAML of ``project`` that ``loads`` reads back to an equal ``Project``.

    ``source`` names the data file ``pipeline init`` profiled, for the header."""
    origin = f"from {source}" if source else ""
    header = [
        f"# Project configuration{' written by `python -m pipeline init` ' + origin if source else ''}.",
        "# Edit it freely: loading refuses unknown keys and wrong types, naming the key.",
        "# Every key is documented in docs/contracts.md, \"The project configuration\".",
    ]
    parts = ["\n".join(header)]
    for key, value in to_document(project).items():
        comment = "\n".join(f"# {line}" for line in _SECTION_COMMENTS[key].splitlines())
        body = yaml.dump({key: value}, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100,
                         allow_unicode=True)
        parts.append(f"{comment}\n{body.rstrip()}")
    return "\n\n".join(parts) + "\n"

