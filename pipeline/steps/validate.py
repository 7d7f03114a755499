"""Validate step: the data contract of the project configuration (``pipeline.schema``), declared with pandera.

Every check runs (pandera's lazy mode), so one report lists every problem in a file
rather than the first: missing columns, wrong types, values out of range or not among
the declared categories, too many nulls, too many duplicate rows, a label outside its
declared values, a single class or a minority class too small to learn from. A failed validation stops the run before anything is
trained or registered.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import schema

if TYPE_CHECKING:
    import pandas as pd
    import pandera.pandas as pa


@dataclass(frozen=True)
class ValidationThresholds:
    """Tolerances of the data contract; the defaults accept the real Adult data with headroom.

    The census marks about 6 % of workclass/occupation as unknown and has 52 duplicate
    rows in 48,842 (0.1 %), so the bounds sit well above those and well below what a
    broken extract would produce.
    """

    max_null_fraction: float = 0.10
    max_duplicate_fraction: float = 0.01
    min_minority_share: float = 0.05
    min_rows: int = 200

    def __post_init__(self) -> None:
        for name in ("max_null_fraction", "max_duplicate_fraction", "min_minority_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"ValidationThresholds.{name} must be in [0, 1], got {value}")
        if self.min_rows < 1:
            raise ValueError(f"ValidationThresholds.min_rows must be >= 1, got {self.min_rows}")


@dataclass(frozen=True)
class Failure:
    """One failed check: where (column or the whole frame), which check, and examples."""

    column: str
    check: str
    detail: str
    examples: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ValidationReport:
    """What validation found: row count, the thresholds it used, and every failure."""

    source: str
    rows: int
    thresholds: dict[str, Any]
    failures: list[Failure]

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rows": self.rows,
            "passed": self.passed,
            "thresholds": self.thresholds,
            "failures": [asdict(f) for f in self.failures],
        }

    def to_markdown(self) -> str:
        lines = [
            "# Data validation report",
            "",
            f"- Source: `{self.source}`",
            f"- Rows: {self.rows}",
            f"- Result: **{'passed' if self.passed else 'FAILED'}**",
            "- Thresholds: " + ", ".join(f"{k}={v}" for k, v in self.thresholds.items()),
            "",
        ]
        if self.failures:
            lines += ["| column | check | detail | examples |", "|---|---|---|---|"]
            for f in self.failures:
                examples = ", ".join(f"`{e}`" for e in f.examples) or "-"
                lines.append(f"| {f.column} | {f.check} | {f.detail} | {examples} |")
        return "\n".join(lines) + "\n"

    def summary(self) -> str:
        """One line per failure, for the terminal and the exception message."""
        return "\n".join(f"  - {f.column}: {f.check}: {f.detail}" for f in self.failures)


class DataValidationError(ValueError):
    """The data broke its contract; carries the full report."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__(f"data validation failed ({len(report.failures)} checks):\n{report.summary()}")


def _numeric_column(pa: Any, name: str, *, nullable: bool, null_check: Any) -> pa.Column:
    """A ``number`` or ``integer`` column: its declared range, and integral values for an integer.

    An integer column with a missing value reads as float64 (pandas has no NaN in int64),
    so integers are checked by value, not by dtype."""
    dtype = "int64" if name in schema.INTEGER_FEATURES and not nullable else None
    checks = [] if dtype else [pa.Check(lambda s: bool(_is_number_dtype(s)), name="numeric_dtype", element_wise=False)]
    bounds = schema.NUMERIC_RANGES.get(name)
    if bounds is not None:
        checks.append(pa.Check.in_range(*bounds))
    if name in schema.INTEGER_FEATURES:
        checks.append(pa.Check(lambda s: s.isna() | (s == s.round()), name="integer_values", element_wise=False))
    if nullable:
        checks.append(null_check)
    return pa.Column(dtype, checks, nullable=nullable, name=name)


def _is_number_dtype(series: pd.Series) -> bool:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return is_numeric_dtype(series) and not is_bool_dtype(series)


def _label_column(pa: Any, minority: float) -> pa.Column:
    """The label: its declared values (binary: both classes, the minority large enough to
    learn from) or a number in its declared range (regression); never null."""
    label = schema.PROJECT.data.column(schema.LABEL)
    checks = []
    if label.values:
        checks.append(pa.Check.isin([str(v) for v in label.values] if label.type == "category" else list(label.values)))
    if label.type == "number":
        checks.append(pa.Check(lambda s: bool(_is_number_dtype(s)), name="numeric_dtype", element_wise=False))
    if label.type != "category":
        if label.minimum is not None and label.maximum is not None:
            checks.append(pa.Check.in_range(label.minimum, label.maximum))
    if schema.IS_CLASSIFIER:
        checks += [
            pa.Check(lambda s: bool(s.nunique() == 2), name="both_classes"),
            pa.Check(
                lambda s: bool(len(s) > 0 and s.value_counts(normalize=True).min() >= minority and s.nunique() == 2),
                name="min_minority_share",
            ),
        ]
    dtype = "int64" if label.type == "integer" else (str if label.type == "category" else None)
    return pa.Column(dtype, checks, nullable=False, name=schema.LABEL)


def build_schema(thresholds: ValidationThresholds) -> pa.DataFrameSchema:
    """The pandera schema of one row of the active contract plus the frame-level checks (duplicates, size)."""
    import pandera.pandas as pa

    def null_fraction_check() -> pa.Check:
        limit = thresholds.max_null_fraction
        return pa.Check(
            lambda s: bool(len(s) == 0 or s.isna().mean() <= limit),
            ignore_na=False,
            name="max_null_fraction",
        )

    columns: dict[str, pa.Column] = {}
    for name in schema.NUMERIC_FEATURES:
        columns[name] = _numeric_column(pa, name, nullable=name in schema.NULLABLE_FEATURES,
                                        null_check=null_fraction_check())
    for name in schema.CATEGORICAL_FEATURES:
        nullable = name in schema.NULLABLE_FEATURES
        checks = [pa.Check.str_length(min_value=1)]
        allowed = schema.CATEGORY_VALUES.get(name)
        if allowed:
            checks.append(pa.Check.isin([str(v) for v in allowed], name="declared_values"))
        if nullable:
            checks.append(null_fraction_check())
        columns[name] = pa.Column(str, checks, nullable=nullable, name=name)
    columns[schema.LABEL] = _label_column(pa, thresholds.min_minority_share)
    max_dup = thresholds.max_duplicate_fraction
    min_rows = thresholds.min_rows
    return pa.DataFrameSchema(
        columns,
        checks=[
            pa.Check(
lambda df: bool(len(df) >= min_rows), name="min_rows"),
            pa.Check(
                lambda df: bool(len(df) == 0 or df.duplicated().mean() <= max_dup),
                name="max_duplicate_fraction",
            ),
        ],
        strict=False,
        coerce=False,
    )


def _measure(frame: pd.DataFrame, column: str, check: str, thresholds: ValidationThresholds) -> str:
    """The number behind a failed check and its bound, so the report says by how much it failed."""
    if check == "max_null_fraction" and column in frame:
        return f"null fraction {frame[column].isna().mean():.4f} > {thresholds.max_null_fraction}"
    if check == "max_duplicate_fraction":
        dup = frame.duplicated()
        return f"{int(dup.sum())} duplicate rows ({dup.mean():.4f} > {thresholds.max_duplicate_fraction})"
    if check == "min_rows":
        return f"{len(frame)} rows < {thresholds.min_rows}"
    if check in ("both_classes", "min_minority_share") and column in frame:
        shares = frame[column].value_counts(normalize=True).round(4).to_dict()
        if check == "both_classes":
            return f"label needs both classes; class shares {shares}"
        return f"minority class share below {thresholds.min_minority_share}; class shares {shares}"
    if _is_type_check(check) and column in frame:
        return f"found dtype {frame[column].dtype}"
    return ""


def _is_type_check(check: str) -> bool:
    """A column-type check: pandera's dtype check, or a number column's ``numeric_dtype``."""
    return check.startswith("dtype") or check == "numeric_dtype"


def _one_failure_per_mistyped_column(frame: pd.DataFrame, failures: list[Failure]) -> list[Failure]:
    """One failure for a column whose type is wrong, naming the values that are not numbers.

    A single bad value ("maybe" among the labels) makes pandas read the whole column as
    text; pandera then also fails every value check on that text (``isin([0, 1])`` for
    all 2,999 rows, the class shares), reporting one mistake four ways. The value checks
    of such a column say nothing about the data, so only the type failure stays."""
    import pandas as pd

    mistyped = {f.column for f in failures if _is_type_check(f.check) and f.column in frame}
    if not mistyped:
        return failures
    kept = []
    for failure in failures:
        if failure.column not in mistyped:
            kept.append(failure)
        elif _is_type_check(failure.check):
            values = frame[failure.column]
            bad = values[values.notna() & pd.to_numeric(values, errors="coerce").isna()]
            if bad.empty:
                kept.append(failure)
                continue
            distinct = list(dict.fromkeys(str(v) for v in bad))
            kept.append(Failure(
                failure.column, failure.check,
                f"{len(bad)} value(s) are not numbers, so the column reads as {values.dtype} "
                f"({len(distinct)} distinct: {', '.join(repr(v) for v in distinct[:5])}); its other checks are "
                "not run until they are fixed",
                distinct[:5],
            ))
    return kept


def validate_frame(
    frame: pd.DataFrame, thresholds: ValidationThresholds, *, source: str
) -> ValidationReport:
    """Check ``frame`` against the data contract and return a report of every failure.

    Pure: never raises for bad data (the caller decides; see ``require_valid``). Extra
    columns are allowed and ignored downstream; the contract's columns are required.
    """
    import pandera.pandas as pa

    contract_schema = build_schema(thresholds)
    failures: list[Failure] = []
    try:
        contract_schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        cases = cases.assign(column=cases["column"].fillna("<frame>").astype(str), check=cases["check"].astype(str))
        for (column, check), group in cases.groupby(["column", "check"], sort=False):
            if check == "column_in_dataframe":
                # One failure case per missing column, all under one group: name every one
                # (a file of NUL bytes lacks all 15, not only the first).
                failures.extend(
                    Failure(str(missing), "column_in_dataframe", "required column is missing")
                    for missing in dict.fromkeys(group["failure_case"].astype(str))
                )
                continue
            # Frame- and series-level checks report a bare False: no value to show.
            examples = [str(v) for v in group["failure_case"].head(5).tolist() if str(v) != "False"]
            n = len(group)
            measured = _measure(frame, column, check, thresholds)
            detail = "; ".join(p for p in (measured, f"{n} failing value(s)" if n > 1 else "") if p) or "check failed"
            failures.append(Failure(column, check, detail, examples))
    failures = _one_failure_per_mistyped_column(frame, failures)
    return ValidationReport(
        source=source, rows=int(len(frame)), thresholds=asdict(thresholds), failures=failures
    )


class ConfigurationContradictsData(ValueError):
    """The project configuration does not describe this data (exit 2: fix the file, not the data)."""


def require_configuration_fits(frame: pd.DataFrame) -> None:
    """Refuse data whose label the active configuration cannot describe, naming the key and column.

    What the configuration chose about the label: numeric for regression; for binary,
    at most two values, one of them ``positive_class``. Data with a label of the wrong
    kind means the file names the wrong task or class (exit 2: fix the file). What is
    the data's fault stays validation's (exit 4, in its report): an empty file, a missing
    column (the label, a slice or a feature: on a later commit, a broken extract), a
    single class."""
    from pipeline.project import label_problems

    label = schema.LABEL
    if len(frame) == 0 or label not in frame.columns:
        return
    if schema.IS_CLASSIFIER and frame[label].dropna().nunique() < 2:
        return
    problems = label_problems(schema.PROJECT, frame)
    if problems:
        raise ConfigurationContradictsData(
            f"{schema.PROJECT_PATH} does not describe this data ({len(problems)} problem(s)):\n"
            + "\n".join(f"  - {p}" for p in problems)
        )


def require_valid(frame: pd.DataFrame, thresholds: ValidationThresholds, *, source: str) -> ValidationReport:
    """``validate_frame``, raising ``DataValidationError`` (with the report) when any check fails."""
    report = validate_frame(frame, thresholds, source=source)
    if not report.passed:
        raise DataValidationError(report)
    return report


def write_report(report: ValidationReport, directory: Path, *, stem: str = "validation") -> tuple[Path, Path]:
    """Write the report as ``<stem>.json`` and ``<stem>.md`` under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / f"{stem}.json"
    md_path = directory / f"{stem}.md"
    json_path.write_text(json.dumps(report.to_dict(), indent=2))
    md_path.write_text(report.to_markdown())
    return json_path, md_path


def contract_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The contract's columns in contract order (extra columns dropped) after validation."""
    return frame.loc[:, list(schema.COLUMNS)]
