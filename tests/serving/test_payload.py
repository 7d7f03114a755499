"""Request parsing and signature validation, including every refusing path."""

from __future__ import annotations

import json

import pytest

from serving.payload import ColumnSpec, PayloadError, csv_to_columns, json_to_columns, parse_json, validate

SCHEMA = (
    ColumnSpec("age", "long", True),
    ColumnSpec("workclass", "string", False),
    ColumnSpec("hours", "double", True),
    ColumnSpec("flag", "boolean", False),
)


def refused(call, *args, **kwargs) -> PayloadError:
    with pytest.raises(PayloadError) as info:
        call(*args, **kwargs)
    return info.value


@pytest.mark.parametrize(
    "document",
    [
        {"dataframe_split": {"columns": ["age", "workclass", "hours"], "data": [[39, "Private", 40.0], [50, None, 13]]}},
        {"dataframe_records": [{"age": 39, "workclass": "Private", "hours": 40.0}, {"age": 50, "workclass": None, "hours": 13}]},
        {"instances": [{"age": 39, "workclass": "Private", "hours": 40.0}, {"age": 50, "workclass": None, "hours": 13}]},
        {"inputs": {"age": [39, 50], "workclass": ["Private", None], "hours": [40.0, 13]}},
    ],
)
def test_every_json_format_gives_the_same_batch(document: dict) -> None:
    batch = validate(*json_to_columns(document), SCHEMA)
    assert batch.n_rows == 2
    assert batch.values == [[39, 50], ["Private", None], [40.0, 13.0], [None, None]]
    assert batch.rows()[1] == [50, None, 13.0, None]


def test_csv_with_header_parses_types_and_empty_cells() -> None:
    names, columns = csv_to_columns(b"age,workclass,hours,flag\n39,,40.5,true\n50,Private,13,\n")
    batch = validate(names, columns, SCHEMA, from_text=True)
    assert batch.values == [[39, 50], [None, "Private"], [40.5, 13.0], [True, None]]


def test_integral_floats_are_accepted_for_integer_columns() -> None:
    batch = validate(["age", "hours"], [[39.0], [1]], SCHEMA)
    assert batch.values[0] == [39] and isinstance(batch.values[0][0], int)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "empty_body"),
        (b"   \n", "empty_body"),
        (b"{not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b"[1, 2]", "unknown_format"),
        (b'{"data": []}', "unknown_format"),
        (b'{"inputs": [], "instances": []}', "unknown_format"),
        (b'{"dataframe_split": {"columns": ["age"]}}', "bad_format"),
        (b'{"dataframe_split": {"columns": ["age"], "data": [[1, 2]]}}', "ragged_input"),
        (b'{"dataframe_split": {"columns": [1], "data": [[1]]}}', "bad_format"),
        (b'{"dataframe_split": {"columns": ["age"], "data": [], "extra": 1}}', "bad_format"),
        (b'{"dataframe_records": {"age": 1}}', "bad_format"),
        (b'{"dataframe_records": [1]}', "bad_format"),
        (b'{"inputs": {"age": [1, 2], "hours": [1]}}', "ragged_input"),
    ],
)
def test_structural_problems_are_400(body: bytes, code: str) -> None:
    error = refused(lambda: json_to_columns(parse_json(body)))
    assert (error.status, error.code) == (400, code)
    assert error.message


def test_nesting_bomb_is_400_not_a_crash() -> None:
    error = refused(lambda: json_to_columns(parse_json(b"[" * 100_000 + b"]" * 100_000)))
    assert error.status == 400


def test_records_with_different_keys_name_the_columns() -> None:
    error = refused(json_to_columns, {"dataframe_records": [{"age": 1, "hours": 2}, {"age": 1, "x": 3}]})
    assert error.status == 422
    assert error.columns == ["hours", "x"]


@pytest.mark.parametrize(
    ("names", "columns", "code", "named"),
    [
        (["age"], [[1]], "column_mismatch", ["hours"]),
        (["age", "hours", "bogus"], [[1], [1.0], [1]], "column_mismatch", ["bogus"]),
        (["age", "hours", "age"], [[1], [1.0], [1]], "duplicate_columns", ["age"]),
        (["age", "hours"], [["39"], [1.0]], "mistyped", ["age"]),
        (["age", "hours"], [[True], [1.0]], "mistyped", ["age"]),
        (["age", "hours"], [[39.5], [1.0]], "mistyped", ["age"]),
        (["age", "hours", "workclass"], [[1], [1.0], [7]], "mistyped", ["workclass"]),
        (["age", "hours", "flag"], [[1], [1.0], ["yes"]], "mistyped", ["flag"]),
        (["age", "hours"], [[None], [1.0]], "missing", ["age"]),
        (["age", "hours"], [[1], [float("nan")]], "non_finite", ["hours"]),
        (["age", "hours"], [[1], [float("inf")]], "non_finite", ["hours"]),
        (["age", "hours"], [[2**64], [1.0]], "out_of_range", ["age"]),
        (["age", "hours"], [[1], [10**400]], "non_finite", ["hours"]),
    ],
)
def test_column_problems_are_422_and_name_the_columns(names, columns, code, named) -> None:
    error = refused(validate, names, columns, SCHEMA)
    assert (error.status, error.code, error.columns) == (422, code, named)
    for column in named:
        assert column in error.message


def test_several_problems_are_reported_together() -> None:
    error = refused(validate, ["age", "hours", "workclass"], [["x"], [float("inf")], [1]], SCHEMA)
    assert error.code == "invalid_values"
    assert sorted(error.columns) == ["age", "hours", "workclass"]


def test_nan_token_in_json_names_the_column() -> None:
    names, columns = json_to_columns(parse_json(b'{"inputs": {"age": [1], "hours": [NaN]}}'))
    error = refused(validate, names, columns, SCHEMA)
    assert error.code == "non_finite" and error.columns == ["hours"]


def test_nan_in_an_optional_column_is_a_missing_value() -> None:
    batch = validate(["age", "hours", "workclass"], [[1], [1.0], [float("nan")]], SCHEMA)
    assert batch.values[1] == [None]


def test_no_rows_is_400() -> None:
    error = refused(validate, *json_to_columns({"dataframe_split": {"columns": ["age", "hours"], "data": []}}), SCHEMA)
    assert (error.status, error.code) == (400, "no_rows")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "empty_body"),
        (b"age,hours\n1,2,3\n", "ragged_input"),
        (b'age,hours\n"1,2\n', "malformed_csv"),
        (b"\xff\xfeage", "malformed_csv"),
    ],
)
def test_csv_problems_are_400(body: bytes, code: str) -> None:
    error = refused(csv_to_columns, body)
    assert (error.status, error.code) == (400, code)


def test_csv_text_that_is_not_a_number_is_mistyped() -> None:
    names, columns = csv_to_columns(b"age,hours\nold,2\n")
    error = refused(validate, names, columns, SCHEMA, from_text=True)
    assert error.code == "mistyped" and error.columns == ["age"]


def test_csv_nan_and_inf_text_are_refused_in_required_columns() -> None:
    names, columns = csv_to_columns(b"age,hours\n1,inf\n")
    assert refused(validate, names, columns, SCHEMA, from_text=True).code == "non_finite"
    names, columns = csv_to_columns(b"age,hours\n1,nan\n")
    assert refused(validate, names, columns, SCHEMA, from_text=True).code == "non_finite"


def test_error_message_is_plain_text() -> None:
    error = refused(validate, ["age"], [[1]], SCHEMA)
    assert json.loads(json.dumps({"m": str(error)}))["m"] == error.message
