"""Request bodies to validated columns: every format the contract accepts, one checker.

docs/contracts.md ("Serving") fixes the formats: JSON ``dataframe_split``,
``dataframe_records``, ``instances`` and ``inputs``, and ``text/csv`` with a header row.
Each is turned into the same :class:`Batch` (one list of values per signature column)
and checked against the model signature here, so a bad request is refused with a
:class:`PayloadError` that names the problem and the columns before the model sees it.
Pure Python on purpose: for the one-row requests that dominate serving, a loop over 14
values is cheaper than building a DataFrame.

Every check here is linear in the body: a request's width is capped
(:func:`max_request_columns`) before any per-column work, duplicates are counted in one
pass, and the server runs large bodies in worker processes (serving.workers) so even
linear work never holds the event loop.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

ColumnKind = Literal["long", "integer", "double", "float", "string", "boolean"]
SUPPORTED_KINDS: Final[frozenset[str]] = frozenset({"long", "integer", "double", "float", "string", "boolean"})
JSON_FORMATS: Final = ("dataframe_split", "dataframe_records", "instances", "inputs")
_INT_BOUNDS: Final = {"long": (-(2**63), 2**63 - 1), "integer": (-(2**31), 2**31 - 1)}
EXTRA_COLUMNS_NAMED: Final = 16
"""A request may carry this many columns beyond the signature and still get a
``column_mismatch`` that names each one; a wider one is refused by its count alone."""


@dataclass(frozen=True)
class ColumnSpec:
    """One input column of the model signature: name, MLflow type name, required."""

    name: str
    kind: ColumnKind
    required: bool


@dataclass
class PayloadError(Exception):
    """A refused request: HTTP status, a stable error code, a message, the columns."""

    status: int
    code: str
    message: str
    columns: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Batch:
    """Validated input: ``values[i]`` holds column ``columns[i]`` for every row; a missing
    value is ``None``; numbers are ``int`` for integer kinds, ``float`` for float kinds."""

    columns: tuple[ColumnSpec, ...]
    values: list[list[Any]]
    n_rows: int

    def rows(self) -> list[list[Any]]:
        """Row-major copy, for the capture file."""
        return [list(row) for row in zip(*self.values, strict=True)] if self.values else []


def max_request_columns(schema: Sequence[ColumnSpec]) -> int:
    """The widest request worth reading for ``schema``; wider ones are ``too_many_columns``."""
    return len(schema) + EXTRA_COLUMNS_NAMED


def _check_width(count: int, max_columns: int | None, where: str) -> None:
    if max_columns is not None and count > max_columns:
        raise PayloadError(
            422, "too_many_columns",
            f"{where} has {count} columns; the model takes {max_columns - EXTRA_COLUMNS_NAMED} "
            f"and requests wider than {max_columns} are refused unread",
        )


def _reject_constant(token: str) -> float:
    # Python's json accepts NaN/Infinity, which are not JSON; keep them as floats so the
    # column check can name the column that carried one.
    return float(token)


def parse_json(body: bytes) -> Any:
    """Decode a JSON body, refusing empty or malformed input with a 400."""
    if not body.removeprefix(b"\xef\xbb\xbf").strip():
        raise PayloadError(400, "empty_body", "the request body is empty (blank or only a byte-order mark)")
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise PayloadError(400, "malformed_json", f"the body is not UTF-8 text: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise PayloadError(
            400, "malformed_json", f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise PayloadError(400, "malformed_json", "the JSON document is nested too deeply") from None
    except ValueError as exc:
        # int() refuses more than sys.get_int_max_str_digits() (4300) digits: CVE-2020-10735.
        if "digits" in str(exc):
            raise PayloadError(
                400, "malformed_json",
                f"a JSON integer has more than {sys.get_int_max_str_digits()} digits; no column takes such a number",
            ) from None
        raise PayloadError(400, "malformed_json", f"malformed JSON: {exc}") from None


def _records_to_columns(
    records: Sequence[Any], where: str, max_columns: int | None
) -> tuple[list[str], list[list[Any]]]:
    if not isinstance(records, list):
        raise PayloadError(400, "bad_format", f"'{where}' must be a list of row objects")
    names: list[str] = []
    first: Any = None
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise PayloadError(400, "bad_format", f"'{where}' row {index} is not an object")
        if index == 0:
            _check_width(len(record), max_columns, f"'{where}' row 0")
            names, first = list(record), record.keys()
        elif record.keys() != first:
            missing = sorted(first - record.keys())
            extra = sorted(record.keys() - first)[:EXTRA_COLUMNS_NAMED]
            raise PayloadError(
                422,
                "inconsistent_columns",
                f"'{where}' row {index} has different columns from row 0"
                + (f"; missing {missing}" if missing else "")
                + (f"; extra {extra}" if extra else ""),
                missing + extra,
            )
    return names, [[record[name] for record in records] for name in names]


def _columnar(mapping: Mapping[str, Any], where: str, max_columns: int | None) -> tuple[list[str], list[list[Any]]]:
    _check_width(len(mapping), max_columns, f"'{where}'")
    names = list(mapping)
    columns: list[list[Any]] = []
    length = None
    for name in names:
        column = mapping[name]
        if not isinstance(column, list):
            column = [column]
        if length is not None and len(column) != length:
            raise PayloadError(400, "ragged_input", f"'{where}' columns have different lengths", [name])
        length = len(column)
        columns.append(column)
    return names, columns


def json_to_columns(document: Any, max_columns: int | None = None) -> tuple[list[str], list[list[Any]]]:
    """Pick the one format key of a JSON request and return its column names and values;
    a request wider than ``max_columns`` is refused before its columns are built."""
    if not isinstance(document, dict):
        raise PayloadError(
            400, "unknown_format", f"the JSON body must be an object with one of the keys {list(JSON_FORMATS)}"
        )
    keys = [key for key in document if key in JSON_FORMATS]
    unknown = sorted(str(key) for key in document if key not in JSON_FORMATS)
    if len(keys) != 1 or unknown:
        raise PayloadError(
            400,
            "unknown_format",
            f"the JSON body must have exactly one of the keys {list(JSON_FORMATS)}"
            + (f"; found unknown keys {unknown}" if unknown else f"; found {keys}"),
        )
    key = keys[0]
    payload = document[key]
    if key == "dataframe_split":
        if not isinstance(payload, dict) or not isinstance(payload.get("columns"), list) or not isinstance(
            payload.get("data"), list
        ):
            raise PayloadError(400, "bad_format", "'dataframe_split' must be an object with 'columns' and 'data' lists")
        extra_keys = set(payload) - {"columns", "data", "index"}
        if extra_keys:
            raise PayloadError(400, "bad_format", f"'dataframe_split' has unknown keys {sorted(extra_keys)}")
        names = payload["columns"]
        _check_width(len(names), max_columns, "'dataframe_split.columns'")
        if not all(isinstance(name, str) for name in names):
            raise PayloadError(400, "bad_format", "'dataframe_split.columns' must be a list of strings")
        data = payload["data"]
        for index, row in enumerate(data):
            if not isinstance(row, list) or len(row) != len(names):
                raise PayloadError(
                    400, "ragged_input", f"'dataframe_split.data' row {index} does not have {len(names)} values"
                )
        return names, [list(column) for column in zip(*data, strict=True)] if data else [[] for _ in names]
    if key == "dataframe_records":
        return _records_to_columns(payload, key, max_columns)
    if isinstance(payload, dict):
        return _columnar(payload, key, max_columns)
    return _records_to_columns(payload, key, max_columns)


def csv_to_columns(body: bytes, max_columns: int | None = None) -> tuple[list[str], list[list[Any]]]:
    """Read a CSV body with a header row; empty cells are missing values. A header wider
    than ``max_columns`` is refused before any data row is read."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PayloadError(400, "malformed_csv", f"the body is not UTF-8 text: {exc.reason}") from None
    if not text.strip():
        # A body of only a byte-order mark or whitespace has no header row to read.
        raise PayloadError(400, "empty_body", "the request body has no CSV header row (it is empty, blank or only a byte-order mark)")
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        names = next((row for row in reader if row), None)
        if names is None:
            raise PayloadError(400, "empty_body", "the request body has no CSV header row")
        _check_width(len(names), max_columns, "the CSV header")
        data = [row for row in reader if row]
    except csv.Error as exc:
        raise PayloadError(400, "malformed_csv", f"malformed CSV: {exc}") from None
    for index, row in enumerate(data):
        if len(row) != len(names):
            raise PayloadError(400, "ragged_input", f"CSV row {index + 1} does not have {len(names)} fields")
    columns = [[None if cell == "" else cell for cell in column] for column in zip(*data, strict=True)]
    return names, columns if data else [[] for _ in names]


def _check_value(value: Any, spec: ColumnSpec, from_text: bool) -> tuple[Any, str | None]:
    """One value of one column: the coerced value, or the reason it is refused."""
    if value is None:
        return None, None if not spec.required else "missing"
    kind = spec.kind
    if kind == "string":
        if isinstance(value, str):
            return value, None
        if isinstance(value, float) and math.isnan(value):
            return None, None if not spec.required else "missing"
        return None, "mistyped"
    if kind == "boolean":
        if isinstance(value, bool):
            return value, None
        if from_text and value.lower() in ("true", "false"):
            return value.lower() == "true", None
        return None, "mistyped"
    if from_text:
        try:
            value = int(value) if kind in _INT_BOUNDS else float(value)
        except ValueError:
            try:
                value = float(value)
            except ValueError:
                return None, "mistyped"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, "mistyped"
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value) and not spec.required:
            return None, None
        return None, "non_finite"
    if kind in _INT_BOUNDS:
        if isinstance(value, float):
            if not value.is_integer():
                return None, "mistyped"
            value = int(value)
        low, high = _INT_BOUNDS[kind]
        if not low <= value <= high:
            return None, "out_of_range"
        return value, None
    try:
        value = float(value)
    except OverflowError:  # an int too large for a double
        return None, "non_finite"
    return value, None


_REASONS: Final = {
    "missing": "null or missing values in required columns",
    "mistyped": "values of the wrong type in columns",
    "non_finite": "non-finite numbers (NaN/Infinity) in columns",
    "out_of_range": "integers outside the column type's range in columns",
}


def validate(
    names: Sequence[str], columns: Sequence[Sequence[Any]], schema: Sequence[ColumnSpec], *, from_text: bool = False
) -> Batch:
    """Check column names and every value against the signature; return a :class:`Batch`
    in signature order, or raise one 422 :class:`PayloadError` listing every problem."""
    given = list(names)
    _check_width(len(given), max_request_columns(schema), "the request")
    duplicates = sorted(name for name, seen in Counter(given).items() if seen > 1)
    if duplicates:
        raise PayloadError(422, "duplicate_columns", f"columns given more than once: {duplicates}", duplicates)
    by_name = dict(zip(given, columns, strict=True))
    expected = {spec.name for spec in schema}
    missing = [spec.name for spec in schema if spec.required and spec.name not in by_name]
    extra = [name for name in given if name not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing required columns {missing}")
        if extra:
            parts.append(f"unexpected columns {extra}")
        raise PayloadError(422, "column_mismatch", "; ".join(parts), missing + extra)
    n_rows = len(columns[0]) if columns else 0
    if n_rows == 0:
        raise PayloadError(400, "no_rows", "the request has no rows to score")
    problems: dict[str, list[str]] = {}
    values: list[list[Any]] = []
    for spec in schema:
        raw = by_name.get(spec.name)
        if raw is None:
            values.append([None] * n_rows)
            continue
        clean: list[Any] = []
        failed = None
        for item in raw:
            value, reason = _check_value(item, spec, from_text)
            if reason is not None:
                failed = reason
                break
            clean.append(value)
        if failed is not None:
            problems.setdefault(failed, []).append(spec.name)
        values.append(clean)
    if problems:
        message = "; ".join(f"{_REASONS[reason]} {cols}" for reason, cols in problems.items())
        code = next(iter(problems)) if len(problems) == 1 else "invalid_values"
        raise PayloadError(422, code, message, [name for cols in problems.values() for name in cols])
    return Batch(tuple(schema), values, n_rows)


def parse_request(media: str, body: bytes, schema: Sequence[ColumnSpec]) -> Batch:
    """Decode one request body by its media type (``text/csv`` or JSON) and validate it
    against ``schema``: the single entry point of the server and its worker processes.
    Raises :class:`PayloadError` for anything the client got wrong."""
    width = max_request_columns(schema)
    if media == "text/csv":
        names, columns = csv_to_columns(body, width)
        return validate(names, columns, schema, from_text=True)
    names, columns = json_to_columns(parse_json(body), width)
    return validate(names, columns, schema)
