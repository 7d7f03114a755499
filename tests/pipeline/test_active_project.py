"""Every step follows the active project configuration, and a wrong one is refused by key.

``pipeline.schema`` serves the names of whichever project file is active (``--project``,
``MLOPS_PROJECT``, ``./project.yaml``, the shipped example); these tests switch between
the shipped Adult project and small projects written here, and run the real CLI.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import schema
from pipeline.exit_codes import ExitCode
from pipeline.project import profile, render
from pipeline.schema import REPO_ROOT, SHIPPED_PROJECT

pytestmark = pytest.mark.usefixtures("fresh_console")


def _binary_frame(rows: int = 1200, seed: int = 0) -> pd.DataFrame:
    """A small binary dataset whose label is text ("yes"/"no"), learnable from two columns."""
    rng = np.random.default_rng(seed)
    hours = rng.integers(1, 80, rows)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    score = 0.05 * hours + np.where(plan == "pro", 1.5, 0.0) + rng.normal(0, 1, rows)
    return pd.DataFrame({
        "hours": hours,
        "plan": plan,
        "spend": np.round(rng.gamma(2.0, 30.0, rows), 2),
        "churned": np.where(score > 2.5, "yes", "no"),
    })


def _project_file(tmp_path: Path, frame: pd.DataFrame, label: str, task: str = "binary", **edits: object) -> Path:
    """The configuration ``init`` would write for ``frame``, with top-level ``edits`` applied."""
    document = yaml.safe_load(render(profile(frame, label, task, model_name="churn")))
    document.update(edits)
    path = tmp_path / "project.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("MLOPS_PROJECT", "MLFLOW_TRACKING_URI")}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=timeout)


def test_the_first_match_wins_flag_then_environment_then_working_directory(tmp_path: Path, use_project) -> None:
    frame = _binary_frame()
    path = _project_file(tmp_path, frame, "churned", slices=["plan"])
    code = ("from pipeline import schema; import json; "
            "print(json.dumps([str(schema.PROJECT_PATH), schema.LABEL, list(schema.SLICE_COLUMNS)]))")
    clean = {k: v for k, v in os.environ.items() if k != "MLOPS_PROJECT"}

    def active(cwd: Path, **env: str) -> list[object]:
        out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env={**clean, **env},
                             capture_output=True, text=True, timeout=60, check=True)
        return json.loads(out.stdout)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert active(elsewhere) == [str(SHIPPED_PROJECT), "label", ["sex", "race"]]
    assert active(tmp_path) == [str(path), "churned", ["plan"]], "./project.yaml is read where init writes it"
    assert active(elsewhere, MLOPS_PROJECT=str(path))[1] == "churned"
    # In-process: activation switches what every module reads at call time.
    use_project(path)
    assert (schema.LABEL, schema.FEATURES, schema.TASK) == ("churned", ("hours", "plan", "spend"), "binary")


def test_a_text_binary_label_becomes_the_positive_class_target(tmp_path: Path, use_project) -> None:
    use_project(_project_file(tmp_path, _binary_frame(), "churned"))
    assert schema.POSITIVE_CLASS == "yes"
    assert schema.target(pd.DataFrame({"churned": ["yes", "no", "yes"]})).tolist() == [1, 0, 1]


def test_a_broken_project_file_exits_2_naming_every_key(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    document = yaml.safe_load(SHIPPED_PROJECT.read_text())
    document["task"] = "ranking"
    document["slices"] = ["sex", "zodiac"]
    bad.write_text(yaml.safe_dump(document))
    result = _cli("--project", str(bad), "run", cwd=tmp_path)
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "task" in result.stderr and "slices[1]" in result.stderr and "'zodiac'" in result.stderr
    assert not (tmp_path / ".mlops").exists(), "nothing may be created for a refused configuration"


def test_a_project_other_than_the_example_needs_its_data_named(tmp_path: Path) -> None:
    path = _project_file(tmp_path, _binary_frame(), "churned")
    result = _cli("--project", str(path), "run", "--store", str(tmp_path / "store"), "--create-registry", cwd=tmp_path)
    assert result.returncode == ExitCode.USAGE
    assert "--data is required" in result.stderr


@pytest.mark.parametrize(
    ("entry_point", "named"),
    [
        ("no_such_module_anywhere:fit", "cannot import module 'no_such_module_anywhere'"),
        ("training.sklearn_trainers:no_such_function", "has no attribute 'no_such_function'"),
    ],
)
def test_a_trainer_that_cannot_be_imported_exits_2_before_any_step(tmp_path: Path, entry_point: str, named: str) -> None:
    frame = _binary_frame()
    frame.to_csv(tmp_path / "churn.csv", index=False)
    path = _project_file(tmp_path, frame, "churned", training={"entry_point": entry_point, "hyperparameters": {}})
    result = _cli("--project", str(path), "run", "--data", str(tmp_path / "churn.csv"),
                  "--store", str(tmp_path / "store"), "--create-registry", cwd=tmp_path)
    assert result.returncode == ExitCode.USAGE, result.stdout + result.stderr
    assert named in result.stderr and "training.entry_point" in result.stderr
    assert "ingest" not in result.stdout + result.stderr, "refused before the first step"


def not_an_estimator(features: pd.DataFrame, target: np.ndarray) -> object:
    """A trainer (named by the test below) that returns something with no predict_proba."""
    return {"weights": [1, 2, 3]}


def test_a_trainer_returning_no_estimator_exits_2_with_nothing_registered(tmp_path: Path) -> None:
    frame = _binary_frame()
    frame.to_csv(tmp_path / "churn.csv", index=False)
    path = _project_file(tmp_path, frame, "churned",
                         training={"entry_point": "tests.pipeline.test_active_project:not_an_estimator",
                                   "hyperparameters": {}})
    store = tmp_path / "store"
    result = _cli("--project", str(path), "run", "--json", "--data", str(tmp_path / "churn.csv"), "--store", str(store),
                  "--create-registry", "--no-deploy", cwd=REPO_ROOT)
    assert result.returncode == ExitCode.USAGE, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert document["status"] == "bad_configuration"
    assert "returned a dict, which has no predict_proba()" in document["message"]
    assert document["model_version"] is None and document["champion_version"] is None


def test_a_team_trainer_trains_gates_and_registers_a_text_labelled_binary_model(tmp_path: Path) -> None:
    """The whole run on a dataset the platform has never seen: a text label, a team's
    scikit-learn trainer with its hyperparameters, a float column, the model name from the file."""
    frame = _binary_frame(rows=3000)
    frame.to_csv(tmp_path / "churn.csv", index=False)
    path = _project_file(
        tmp_path, frame, "churned", slices=["plan"],
        training={"entry_point": "training.sklearn_trainers:hist_gradient_boosting",
                  "hyperparameters": {"max_iter": 50}},
    )
    document = yaml.safe_load(path.read_text())
    document["gate"].update(min_roc_auc=0.7, min_slice_rows=100, min_slice_positives=10)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    store = tmp_path / "store"
    result = _cli("--project", str(path), "run", "--json", "--data", str(tmp_path / "churn.csv"), "--store", str(store),
                  "--create-registry", "--no-deploy", cwd=tmp_path)
    assert result.returncode == ExitCode.OK, result.stdout + result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["status"] == "promoted" and outcome["model_version"] == "1"

    from mlflow import MlflowClient

    registry = f"sqlite:///{store / 'mlflow.db'}"
    client = MlflowClient(registry)
    version = client.get_model_version_by_alias("churn", "champion")
    run = client.get_run(version.run_id)
    assert run.data.params["train.trainer"] == "training.sklearn_trainers:hist_gradient_boosting"
    assert run.data.params["train.max_iter"] == "50"
    import mlflow.models

    mlflow.set_tracking_uri(registry)  # reset after the test (tests/conftest.py)
    mlflow.set_registry_uri(registry)
    signature = mlflow.models.get_model_info(f"models:/churn/{version.version}").signature
    assert [(c.name, str(c.type)) for c in signature.inputs.inputs] == [
        ("hours", "DataType.long"), ("plan", "DataType.string"), ("spend", "DataType.double")]

    # Editing the project file is a new recipe: the step cache does not serve the old model.
    document["training"]["hyperparameters"]["max_iter"] = 60
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    again = _cli("--project", str(path), "run", "--data", str(tmp_path / "churn.csv"), "--store", str(store),
                 "--no-deploy", cwd=tmp_path)
    assert "train: done" in again.stderr + again.stdout, again.stdout + again.stderr


def test_data_the_configuration_does_not_describe_exits_2_naming_key_and_column(tmp_path: Path) -> None:
    frame = _binary_frame()
    path = _project_file(tmp_path, frame, "churned")
    frame.assign(churned=np.where(frame["churned"] == "yes", "y", "n")).to_csv(tmp_path / "recoded.csv", index=False)
    result = _cli("--project", str(path), "run", "--data", str(tmp_path / "recoded.csv"), "--store",
                  str(tmp_path / "store"), "--create-registry", "--no-deploy", cwd=tmp_path)
    assert result.returncode == ExitCode.USAGE, result.stdout + result.stderr
    assert "data.positive_class: 'yes' is not a value of column 'churned'" in result.stdout + result.stderr


def test_no_module_imports_a_contract_name_at_import_time() -> None:
    """``from pipeline.schema import LABEL`` would keep the contract active at import: every
    contract name is read as ``schema.NAME`` at call time instead."""
    contract_names = set(schema.Contract.__dataclass_fields__) | {"DEFAULT_MODEL_NAME", "IS_CLASSIFIER"}
    offenders = []
    for folder in ("pipeline", "training", "serving", "infra", "benchmarks", "tests"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module == "pipeline.schema":
                    offenders += [f"{path.relative_to(REPO_ROOT)}: {a.name}" for a in node.names if a.name in contract_names]
    assert not offenders, offenders


def test_a_regression_project_on_a_text_label_exits_2_but_a_single_class_is_bad_data(tmp_path: Path) -> None:
    """The file's choice (task, class) contradicted by the data is exit 2; data that merely
    broke the contract (one class only) stays invalid data, exit 4, with its report."""
    frame = _binary_frame()
    frame.to_csv(tmp_path / "churn.csv", index=False)
    document = yaml.safe_load(render(profile(frame.assign(churned=frame["hours"] * 1.5), "churned", "regression",
                                             model_name="churn")))
    path = tmp_path / "regression.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    args = ["--store", str(tmp_path / "store"), "--create-registry", "--no-deploy"]
    wrong_task = _cli("--project", str(path), "run", "--data", str(tmp_path / "churn.csv"), *args, cwd=tmp_path)
    assert wrong_task.returncode == ExitCode.USAGE, wrong_task.stdout + wrong_task.stderr
    assert "data.label: a regression label must be numeric; column 'churned'" in wrong_task.stdout + wrong_task.stderr
    binary = _project_file(tmp_path, frame, "churned")
    frame.assign(churned="no").to_csv(tmp_path / "one-class.csv", index=False)
    one_class = _cli("--project", str(binary), "run", "--data", str(tmp_path / "one-class.csv"), *args, cwd=tmp_path)
    assert one_class.returncode == ExitCode.INVALID_DATA, one_class.stdout + one_class.stderr
