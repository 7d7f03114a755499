"""The project configuration (issue 14): loading refuses every mistake by its key path,
``check_data`` refuses a configuration that contradicts its data, ``profile``/``render``
round-trip, and each shipped example describes its shipped data."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import schema
from pipeline.schema import REPO_ROOT
from pipeline.project import (
    TASKS,
    ProjectConfigError,
    RegressionThresholds,
    check_data,
    choose_positive_class,
    load,
    loads,
    profile,
    render,
    to_document,
    validate,
)
from pipeline.steps.gate import GateThresholds

SHIPPED = REPO_ROOT / "project.yaml"


def _binary() -> dict[str, Any]:
    return {
        "model_name": "churn",
        "task": "binary",
        "data": {
            "label": "churned",
            "positive_class": "yes",
            "columns": [
                {"name": "tenure", "type": "integer", "min": 0, "max": 120},
                {"name": "spend", "type": "number", "nullable": True, "min": 0.0},
                {"name": "plan", "type": "category", "values": ["basic", "pro"]},
                {"name": "churned", "type": "category", "values": ["no", "yes"]},
            ],
        },
        "slices": ["plan"],
        "sensitive_attribute": "plan",
        "gate": {"metric": "roc_auc", "min_roc_auc": 0.7},
        "training": {"entry_point": "xgboost", "hyperparameters": {"max_depth": 4}},
    }


def _regression() -> dict[str, Any]:
    return {
        "model_name": "house-prices",
        "task": "regression",
        "data": {"label": "price", "columns": [
            {"name": "rooms", "type": "integer", "min": 1},
            {"name": "price", "type": "number", "min": 0},
        ]},
        "gate": {"metric": "mae", "error_tolerance": 0.05, "max_group_error_ratio": None},
        "training": {"entry_point": "my_team.models:train", "hyperparameters": {"alpha": 0.1}},
    }


def _problems(document: Any) -> list[str]:
    with pytest.raises(ProjectConfigError) as error:
        validate(document)
    assert isinstance(error.value, ValueError)
    return error.value.problems


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------


def test_a_valid_binary_configuration_loads_into_frozen_dataclasses() -> None:
    project = loads(yaml.safe_dump(_binary()))
    assert project.model_name == "churn" and project.task == "binary"
    assert project.data.label == "churned" and project.data.positive_class == "yes"
    assert project.data.features == ("tenure", "spend", "plan")
    assert project.data.column("spend").nullable and project.data.column("spend").minimum == 0.0
    assert project.data.column("plan").values == ("basic", "pro")
    assert project.slices == ("plan",) and project.sensitive_attribute == "plan"
    assert project.gate.metric == "roc_auc"
    assert project.gate.thresholds == GateThresholds(min_roc_auc=0.7)
    assert project.training.hyperparameters == {"max_depth": 4}
    with pytest.raises(AttributeError):
        project.model_name = "other"  # type: ignore[misc]


def test_a_valid_regression_configuration_loads_with_its_own_thresholds() -> None:
    project = validate(_regression())
    assert project.data.positive_class is None
    assert project.gate.metric == "mae"
    assert project.gate.thresholds == RegressionThresholds(error_tolerance=0.05)
    assert project.training.entry_point == "my_team.models:train"
    assert project.data.column("price").minimum == 0.0 and isinstance(project.data.column("price").minimum, float)


def test_defaults_fill_what_is_left_out() -> None:
    document = _binary()
    del document["slices"], document["sensitive_attribute"], document["training"]
    document["gate"] = {"metric": "roc_auc"}
    project = validate(document)
    assert project.slices == () and project.sensitive_attribute is None
    assert project.training.entry_point == "xgboost" and project.training.hyperparameters == {}
    assert project.gate.thresholds == GateThresholds()


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        target: Any = document
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value
    return change


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        target: Any = document
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        del target[last]
    return change


REFUSALS: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("unknown top-level key", _set("sensitive_atribute", "plan"), "sensitive_atribute", "unknown key"),
    ("unknown column key", _set("data/columns/0/nulable", True), "data.columns[0].nulable", "unknown key"),
    ("unknown data key", _set("data/positive", "yes"), "data.positive", "unknown key"),
    ("missing required key", _drop("model_name"), "model_name", "missing"),
    ("wrong column type", _set("data/columns/3/type", "strng"), "data.columns[3].type", "'strng'"),
    ("nullable not a boolean", _set("data/columns/0/nullable", "no way"), "data.columns[0].nullable", "'no way'"),
    ("integer bound not an integer", _set("data/columns/0/max", 2.5), "data.columns[0].max", "2.5"),
    ("number bound not a number", _set("data/columns/1/min", "zero"), "data.columns[1].min", "'zero'"),
    ("min above max", _set("data/columns/0/min", 200), "data.columns[0].min", "200"),
    ("category without values", _drop("data/columns/2/values"), "data.columns[2].values", "non-empty list"),
    ("category with empty values", _set("data/columns/2/values", []), "data.columns[2].values", "[]"),
    ("values on a number", _set("data/columns/1/values", [1, 2]), "data.columns[1].values", "category"),
    ("range on a category", _set("data/columns/2/min", 1), "data.columns[2].min", "category"),
    ("a column twice", _set("data/columns/1/name", "tenure"), "data.columns[1].name", "'tenure'"),
    ("columns not a list", _set("data/columns", {"a": 1}), "data.columns", "non-empty list"),
    ("label not declared", _set("data/label", "target"), "data.label", "'target'"),
    ("nullable label", _set("data/columns/3/nullable", True), "data.columns[3].nullable", "label"),
    ("slice not declared", _set("slices", ["plan", "region"]), "slices[1]", "'region'"),
    ("slices not a list", _set("slices", "plan"), "slices", "'plan'"),
    ("sensitive attribute not declared", _set("sensitive_attribute", "gender"), "sensitive_attribute", "'gender'"),
    ("unknown task", _set("task", "multiclass"), "task", "'multiclass'"),
    ("metric of another task", _set("gate/metric", "rmse"), "gate.metric", "'rmse'"),
    ("missing positive class", _drop("data/positive_class"), "data.positive_class", "binary"),
    ("positive class not a label value", _set("data/positive_class", "maybe"), "data.positive_class", "'maybe'"),
    ("unknown gate threshold", _set("gate/min_auc", 0.9), "gate.min_auc", "unknown key"),
    ("gate threshold of the wrong type", _set("gate/bootstrap_samples", "many"), "gate.bootstrap_samples", "'many'"),
    ("gate threshold out of range (GateThresholds' own check)", _set("gate/confidence", 1.5),
     "gate.confidence", "1.5"),
    ("gate threshold below zero", _set("gate/min_fairness_group_rows", -1), "gate.min_fairness_group_rows", "-1"),
    ("bad model name", _set("model_name", "churn model!"), "model_name", "'churn model!'"),
    ("bad entry point", _set("training/entry_point", "train.py"), "training.entry_point", "'train.py'"),
    ("hyperparameters not a mapping", _set("training/hyperparameters", [1]), "training.hyperparameters", "[1]"),
    ("unknown xgboost hyperparameter", _set("training/hyperparameters", {"max_dept": 4}),
     "training.hyperparameters", "max_dept"),
]


@pytest.mark.parametrize(("change", "key", "shown"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_each_mistake_is_refused_naming_its_key_and_value(change: Callable[[dict[str, Any]], None], key: str,
                                                          shown: str) -> None:
    document = _binary()
    change(document)
    problems = _problems(document)
    assert any(p.startswith(f"{key}:") and shown in p for p in problems), problems


def test_regression_refuses_a_positive_class_and_classification_metrics() -> None:
    document = _regression()
    document["data"]["positive_class"] = 1
    document["gate"]["metric"] = "roc_auc"
    document["gate"]["max_group_error_ratio"] = 0.5
    problems = _problems(document)
    assert any(p.startswith("data.positive_class:") and "regression" in p for p in problems), problems
    assert any(p.startswith("gate.metric:") and "'roc_auc'" in p and "rmse, mae" in p for p in problems), problems
    assert any(p.startswith("gate.max_group_error_ratio:") and "0.5" in p for p in problems), problems


def test_every_problem_is_reported_at_once() -> None:
    document = _binary()
    document["data"]["columns"][0]["type"] = "int"
    document["slices"] = ["nowhere"]
    document["gate"]["metric"] = "accuracy"
    document["extra"] = 1
    problems = _problems(document)
    assert len(problems) == 4, problems
    assert str(ProjectConfigError(problems)).count("\n  - ") == 4


def test_a_key_given_twice_and_broken_yaml_are_refused() -> None:
    with pytest.raises(ProjectConfigError, match="'label' is given twice"):
        loads("data:\n  label: a\n  label: b\n")
    with pytest.raises(ProjectConfigError, match="not valid YAML"):
        loads("data: [unclosed\n")
    with pytest.raises(ProjectConfigError, match=r"\(top level\): expected a mapping"):
        loads("- just a list\n")


def test_load_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "project.yaml"
    document = _binary()
    document["task"] = "binray"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ProjectConfigError, match=rf"{path}: 1 problem.*\n  - task: 'binray' is not one of binary, regression"):
        load(path)
    with pytest.raises(ProjectConfigError, match="cannot be read"):
        load(tmp_path / "missing.yaml")


def test_gate_fields_are_exactly_the_thresholds_of_the_task() -> None:
    assert TASKS["binary"].thresholds is GateThresholds
    for task in TASKS.values():
        document = _binary() if task.classes else _regression()
        document["gate"] = {"metric": task.metrics[0], **{f.name: getattr(task.thresholds(), f.name)
                                                           for f in fields(task.thresholds)}}
        assert validate(document).gate.thresholds == task.thresholds()


# ---------------------------------------------------------------------------------------
# The configuration against its data
# ---------------------------------------------------------------------------------------


def _churn_frame() -> pd.DataFrame:
    return pd.DataFrame({"tenure": [1, 5, 9, 30], "spend": [1.0, None, 3.5, 9.0],
                         "plan": ["basic", "pro", "pro", "basic"], "churned": ["no", "yes", "no", "no"]})


def test_check_data_accepts_data_that_matches() -> None:
    assert check_data(validate(_binary()), _churn_frame()) == []


def test_check_data_names_a_missing_column_slice_and_sensitive_attribute() -> None:
    problems = check_data(validate(_binary()), _churn_frame().drop(columns=["plan"]))
    assert any(p.startswith("data.columns[2]:") and "'plan'" in p for p in problems), problems
    assert any(p.startswith("slices[0]:") and "'plan'" in p for p in problems), problems
    assert any(p.startswith("sensitive_attribute:") and "'plan'" in p for p in problems), problems


def test_check_data_refuses_a_binary_label_without_exactly_two_values_or_the_positive_class() -> None:
    project = validate(_binary())
    three = _churn_frame().assign(churned=["no", "yes", "maybe", "no"])
    assert any(p.startswith("data.label:") and "'churned' has 3" in p for p in check_data(project, three))
    other = _churn_frame().assign(churned=["no", "stayed", "no", "no"])
    problems = check_data(project, other)
    assert any(p.startswith("data.positive_class:") and "'yes'" in p and "'churned'" in p for p in problems), problems
    missing = check_data(project, _churn_frame().drop(columns=["churned"]))
    assert any(p.startswith("data.label:") and "'churned'" in p for p in missing), missing


def test_check_data_refuses_a_regression_label_that_is_not_numeric() -> None:
    project = validate(_regression())
    frame = pd.DataFrame({"rooms": [1, 2], "price": ["cheap", "dear"]})
    problems = check_data(project, frame)
    assert any(p.startswith("data.label:") and "'price'" in p and "numeric" in p for p in problems), problems
    assert check_data(project, frame.assign(price=[1.0, 2.0])) == []


def test_positive_class_written_as_text_matches_integer_data() -> None:
    document = _binary()
    document["data"]["columns"][3] = {"name": "churned", "type": "integer", "min": 0, "max": 1}
    document["data"]["positive_class"] = 1
    frame = _churn_frame().assign(churned=np.array([0, 1, 0, 0], dtype="int64"))
    assert check_data(validate(document), frame) == []


# ---------------------------------------------------------------------------------------
# Profile and render
# ---------------------------------------------------------------------------------------


def test_profile_of_adult_round_trips_through_render(adult_frame: pd.DataFrame) -> None:
    project = profile(adult_frame, schema.LABEL, "binary", model_name="adult")
    assert project.data.positive_class == 1
    text = render(project, source="data/adult.csv.gz")
    assert text.startswith("# Project configuration written by `python -m pipeline init` from data/adult.csv.gz")
    assert "# The data contract" in text and "# When a challenger replaces the champion" in text
    assert loads(text) == project
    assert check_data(project, adult_frame) == []


def test_profile_of_a_regression_frame_round_trips() -> None:
    frame = pd.DataFrame({
        "rooms": [1, 3, 2, None],              # an integer column with a blank reads as float
        "area": [30.5, 80.25, 55.0, 41.0],
        "city": ["Oslo", "Bergen", None, "Oslo"],
        "garden": [True, False, True, True],
        "answer": ["no", "yes", "on", "off"],  # YAML 1.1 would read these as booleans unquoted
        "price": [100.0, 250.5, 180.0, 120.0],
    })
    project = profile(frame, "price", "regression", model_name="houses")
    columns = {c.name: c for c in project.data.columns}
    assert (columns["rooms"].type, columns["rooms"].nullable, columns["rooms"].minimum, columns["rooms"].maximum) == (
        "integer", True, 1, 3)
    assert (columns["area"].type, columns["area"].minimum, columns["area"].maximum) == ("number", 30.5, 80.25)
    assert (columns["city"].type, columns["city"].nullable, columns["city"].values) == ("category", True, ("Bergen", "Oslo"))
    assert columns["garden"].values == (False, True)
    assert columns["answer"].values == ("no", "off", "on", "yes")
    assert project.data.positive_class is None and project.gate.metric == "rmse"
    assert loads(render(project)) == project


@pytest.mark.parametrize(("counts", "positive"), [
    ({0: 900, 1: 100}, 1),
    ({0: 100, 1: 900}, 1),                     # named 1 even when it is the majority
    ({"<=50K": 700, ">50K": 300}, ">50K"),
    ({False: 10, True: 90}, True),
    ({"No": 5, "Yes": 50}, "Yes"),
    ({"cat": 30, "dog": 70}, "cat"),           # neither named: the minority
    ({"a": 5, "b": 5}, "b"),                   # a tie: the value that sorts last
])
def test_positive_class_rule(counts: dict[Any, int], positive: Any) -> None:
    assert choose_positive_class(counts) == positive


@pytest.mark.parametrize(("frame", "label", "task", "message"), [
    (pd.DataFrame({"x": [1, 2], "y": [0, 1]}), "z", "binary", "'z' is not in the data; its columns: x, y"),
    (pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}), "y", "regression", "must be numeric"),
    (pd.DataFrame({"x": [1, 2, 3], "y": [0, 1, 2]}), "y", "binary", "exactly 2 values; column 'y' has 3"),
    (pd.DataFrame({"x": [1, 2], "y": [0, None]}), "y", "binary", "null"),
    (pd.DataFrame({"x": [None, None], "y": [0, 1]}), "y", "binary", "column 'x' holds no values"),
])
def test_profile_refuses_a_label_it_cannot_use(frame: pd.DataFrame, label: str, task: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        profile(frame, label, task)


# ---------------------------------------------------------------------------------------
# The shipped examples describe their shipped data
# ---------------------------------------------------------------------------------------

SHIPPED_EXAMPLES = [
    (SHIPPED, REPO_ROOT / "data" / "adult.csv.gz"),
    (REPO_ROOT / "examples" / "california-housing.yaml", REPO_ROOT / "data" / "california_housing.csv.gz"),
]


@pytest.mark.parametrize(("project_file", "data_file"), SHIPPED_EXAMPLES, ids=["adult", "california-housing"])
def test_each_shipped_project_describes_its_shipped_data(project_file: Path, data_file: Path, use_project) -> None:
    """The configuration fits the data and the data passes the validation it builds."""
    from pipeline.data import load_dataset
    from pipeline.steps.validate import ValidationThresholds, validate_frame

    frame = load_dataset(data_file)
    project = load(project_file)
    assert check_data(project, frame) == []
    use_project(project_file)
    report = validate_frame(frame, ValidationThresholds(), source=str(data_file))
    assert report.passed, report.summary()


def test_the_adult_example_keeps_the_contract_its_models_were_trained_on() -> None:
    """Champions registered before the file existed were trained on exactly these columns."""
    project = load(SHIPPED)
    assert (project.model_name, project.task, project.data.label, project.data.positive_class) == (
        "adult-income", "binary", "label", 1)
    assert project.data.features == (
        "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
        "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country")
    assert [c.name for c in project.data.columns if c.nullable] == ["workclass", "occupation", "native_country"]
    assert (project.slices, project.sensitive_attribute, project.training.entry_point) == (
        ("sex", "race"), "sex", "xgboost")


def test_shipped_gate_section_lists_every_gate_threshold_at_its_default() -> None:
    gate = yaml.safe_load(SHIPPED.read_text())["gate"]
    assert gate.pop("metric") == "roc_auc"
    assert gate == asdict(GateThresholds())


def test_profile_of_adult_declares_what_the_shipped_file_declares(adult_frame: pd.DataFrame) -> None:
    shipped = load(SHIPPED)
    profiled = profile(adult_frame, schema.LABEL, "binary")

    def shape(project: Any) -> list[tuple[str, str, bool]]:
        return [(c.name, c.type, c.nullable) for c in project.data.columns]

    assert shape(profiled) == shape(shipped)
    assert profiled.data.positive_class == shipped.data.positive_class
    # The shipped categories are exactly the values of the shipped data.
    assert [c.values for c in profiled.data.columns] == [c.values for c in shipped.data.columns]


def test_render_of_the_shipped_project_reads_back_equal() -> None:
    project = load(SHIPPED)
    assert loads(render(project)) == project
    assert to_document(loads(render(project))) == to_document(project)
    edited = replace(project, slices=("race",))
    assert loads(render(edited)).slices == ("race",)
    assert copy.deepcopy(project) == project
