"""Request parsing and signature validation, including every refusing path."""

from __future__ import annotations

import json

import pytest

from serving.payload import (
    ColumnSpec,
    PayloadError,
    csv_to_columns,
    json_to_columns,
    max_request_columns,
    parse_json,
    parse_request,
    validate,
)

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


# --- width, hostile sizes and client-caused exceptions (issue 13) ---------------------------


def wide_header(count: int) -> list[str]:
    return [f"c{i}" for i in range(count)]


@pytest.mark.parametrize(
    "body",
    [
        (",".join(wide_header(20_000)) + "\n").encode(),
        json.dumps({"dataframe_split": {"columns": wide_header(20_000), "data": [[0] * 20_000]}}).encode(),
        json.dumps({"dataframe_records": [dict.fromkeys(wide_header(20_000), 0)]}).encode(),
        json.dumps({"inputs": dict.fromkeys(wide_header(20_000), [0])}).encode(),
    ],
    ids=["csv", "dataframe_split", "dataframe_records", "inputs"],
)
def test_a_request_wider_than_the_cap_is_refused_by_its_width(body: bytes) -> None:
    """20,000 column names (the header that froze the server for 13 s) are refused by
    count before any per-column work, in every format."""
    media = "text/csv" if not body.startswith(b"{") else "application/json"
    error = refused(parse_request, media, body, SCHEMA)
    assert (error.status, error.code) == (422, "too_many_columns")
    assert "20000 columns" in error.message and error.columns == []
    assert max_request_columns(SCHEMA) == len(SCHEMA) + 16


def test_duplicates_within_the_width_cap_are_all_named() -> None:
    names = ["age", "hours", *[f"x{i % 3}" for i in range(12)]]
    error = refused(validate, names, [[1]] * len(names), SCHEMA)
    assert (error.code, error.columns) == ("duplicate_columns", ["x0", "x1", "x2"])


def test_extra_columns_named_in_records_are_capped() -> None:
    rows = [{"age": 1, "hours": 2.0}, {"age": 1, "hours": 2.0, **dict.fromkeys(wide_header(100), 0)}]
    error = refused(json_to_columns, {"dataframe_records": rows})
    assert error.code == "inconsistent_columns" and len(error.columns) == 16


@pytest.mark.parametrize(
    ("media", "body", "status", "code", "words"),
    [
        ("text/csv", b"\xef\xbb\xbf", 400, "empty_body", "byte-order mark"),
        ("text/csv", b"\xef\xbb\xbf\r\n\r\n", 400, "empty_body", "byte-order mark"),
        ("application/json", b'{"inputs": {"age": [' + b"7" * 4301 + b'], "hours": [1]}}', 400, "malformed_json", "4300 digits"),
        ("application/json", b"\xef\xbb\xbf", 400, "empty_body", "byte-order mark"),
        ("text/csv", b"age,hours\n" + b"7" * 5000 + b",1\n", 422, "non_finite", "age"),
        ("text/csv", b"age,hours\n1,1\x00\n", 422, "mistyped", "hours"),
    ],
)
def test_hostile_bodies_are_client_errors_that_name_the_problem(media, body, status, code, words) -> None:
    error = refused(parse_request, media, body, SCHEMA)
    assert (error.status, error.code) == (status, code), error.message
    assert words in error.message


def test_no_body_raises_anything_but_a_payload_error() -> None:
    """A sweep over hostile shapes: anything a client can send ends in PayloadError
    (a 4xx), never another exception (a 500 that counts toward the canary's 5xx share)."""
    import random

    fragments = [b"{", b"}", b"[", b"]", b'"age"', b":", b",", b"1e999", b"-", b"7" * 5000, b"null", b"true",
                 b'"dataframe_split"', b'"columns"', b'"data"', b'"inputs"', b'"instances"', b"\xef\xbb\xbf",
                 b"\xff", b"\x00", b"\n", b"\r", b'"', b"age,hours", b"NaN", b"Infinity", b"1.5", b"{}", b"[]"]
    chooser = random.Random(13)
    for _ in range(3000):
        body = b"".join(chooser.choice(fragments) for _ in range(chooser.randint(0, 12)))
        for media in ("application/json", "text/csv"):
            try:
                parse_request(media, body, SCHEMA)
            except PayloadError as exc:
                assert 400 <= exc.status < 500
