"""The training image under SageMaker's contracts, run from the compiled definition.

Training: ``docker run IMAGE train`` with channels under ``/opt/ml/input/data/<name>``,
hyperparameters as strings in ``/opt/ml/input/config/hyperparameters.json``, nothing but
``TRAINING_JOB_NAME``/``TRAINING_JOB_ARN`` in the environment (no ``SM_*`` variables: the
image has no sagemaker-training toolkit) and ``/opt/ml/model``/``/opt/ml/output`` mounted
owned by root, as SageMaker mounts them. Processing: the Validate and Split jobs with the
entrypoint, arguments, environment and ``/opt/ml/processing/...`` mounts the compiled
definition gives them, outputs mounted owned by root. No job has a network.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from pipeline.schema import DEFAULT_DATASET
from tests.images.podman import root_owned_dir, run_to_completion
from tests.images.sagemaker_definition import compiled_definition, literal_env, steps

JOB_UID = 10001

IMAGES_USED = ("training",)


def run_processing(step: dict[str, Any], inputs: dict[str, Path], outputs: dict[str, Path]) -> Any:
    """Run one Processing step of the definition; ``inputs``/``outputs`` map names to host folders."""
    args = step["Arguments"]
    app = args["AppSpecification"]
    mounts: list[str] = []
    for item in args.get("ProcessingInputs", []):
        mounts += ["-v", f"{inputs[item['InputName']]}:{item['S3Input']['LocalPath']}:ro"]
    for item in args["ProcessingOutputConfig"]["Outputs"]:
        mounts += ["-v", f"{root_owned_dir(outputs[item['OutputName']])}:{item['S3Output']['LocalPath']}"]
    return run_to_completion(
        "training", app.get("ContainerArguments", []),
        options=["--network", "none", "--entrypoint", json.dumps(app["ContainerEntrypoint"]), *mounts],
        env=literal_env(args.get("Environment", {})), timeout=600,
    )


@pytest.fixture(scope="module")
def definition_steps() -> dict[str, dict[str, Any]]:
    return steps(compiled_definition("dev"))


@pytest.fixture(scope="module")
def processed(definition_steps: dict[str, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Validate then Split, chained through their outputs as SageMaker's S3 would chain them."""
    root = tmp_path_factory.mktemp("processing")
    root.chmod(0o755)
    data = root / "data"
    data.mkdir(mode=0o755)
    shutil.copy(DEFAULT_DATASET, data / DEFAULT_DATASET.name)
    (data / DEFAULT_DATASET.name).chmod(0o644)
    validated = root / "validated"
    result = run_processing(definition_steps["Validate"], {"data": data}, {"validated": validated})
    assert result.returncode == 0, result.stdout + result.stderr
    split_step = definition_steps["Split"]
    (input_name,) = [i["InputName"] for i in split_step["Arguments"]["ProcessingInputs"]]
    outputs = {o["OutputName"]: root / "split" / o["OutputName"] for o in split_step["Arguments"]["ProcessingOutputConfig"]["Outputs"]}
    result = run_processing(split_step, {input_name: validated}, outputs)
    assert result.returncode == 0, result.stdout + result.stderr
    return {"validated": validated, **outputs}


def test_validate_writes_its_report_and_data_into_root_owned_mounts(processed: dict[str, Path]) -> None:
    validated = processed["validated"]
    report = json.loads((validated / "validation.json").read_text())
    assert report["passed"] is True, report["failures"]
    assert (validated / "data.parquet").stat().st_uid == JOB_UID, "the job must run as UID 10001, not root"


def test_validate_refuses_bad_data_with_exit_4(definition_steps: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "bad.csv").write_text("age,sex\n-4,Martian\n")
    (data / "bad.csv").chmod(0o644)
    result = run_processing(definition_steps["Validate"], {"data": data}, {"validated": tmp_path / "out"})
    assert result.returncode == 4, result.stdout + result.stderr
    assert (tmp_path / "out" / "validation.md").is_file()


def test_split_writes_the_channels_training_reads(processed: dict[str, Path]) -> None:
    for name in ("train", "validation", "holdout"):
        assert any(processed[name].rglob("*.parquet")), f"split wrote no {name} parquet"


def test_train_runs_as_sagemaker_runs_a_custom_training_image(
    definition_steps: dict[str, dict[str, Any]], processed: dict[str, Path], tmp_path: Path
) -> None:
    train_step = definition_steps["Train"]["Arguments"]
    tmp_path.chmod(0o755)
    input_dir = tmp_path / "input"
    (input_dir / "config").mkdir(parents=True)
    # SageMaker writes the definition's hyperparameters to this file, every value a string.
    hyperparameters = train_step["HyperParameters"]
    assert all(isinstance(v, str) for v in hyperparameters.values())
    (input_dir / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    mounts = ["-v", f"{input_dir}:/opt/ml/input"]
    for channel in train_step["InputDataConfig"]:
        name = channel["ChannelName"]
        reference = channel["DataSource"]["S3DataSource"]["S3Uri"]["Get"]
        output_name = reference.split("Outputs['")[1].split("']")[0]
        mounts += ["-v", f"{processed[output_name]}:/opt/ml/input/data/{name}:ro"]
    model = root_owned_dir(tmp_path / "model")
    output = root_owned_dir(tmp_path / "output")
    mounts += ["-v", f"{model}:/opt/ml/model", "-v", f"{output}:/opt/ml/output"]
    result = run_to_completion(
        "training", ["train"], options=["--network", "none", *mounts],
        env={"TRAINING_JOB_NAME": "pipelines-abc-Train", "TRAINING_JOB_ARN":
             "arn:aws:sagemaker:us-east-1:123456789012:training-job/pipelines-abc-train"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((model / "training.json").read_text())
    assert summary["device"] == "cpu" and summary["validation_rows"] > 0
    assert summary["hyperparameters"]["n_estimators"] == int(hyperparameters["n_estimators"])
    assert (model / "model.joblib").stat().st_uid == JOB_UID, "the job must run as UID 10001, not root"


def test_train_without_a_channel_fails_with_a_message(tmp_path: Path) -> None:
    result = run_to_completion("training", ["train"], options=["--network", "none", "-v",
                               f"{root_owned_dir(tmp_path / 'model')}:/opt/ml/model"])
    assert result.returncode == 2
    assert "/opt/ml/input/data/train" in result.stderr


def test_the_image_follows_the_project_configuration_of_its_commit() -> None:
    """The jobs read the contract, gate and trainer from the project file the image was
    built with (``/opt/program/project.yaml``), the same file the laptop runs."""
    from pipeline import schema

    probe = ("import json; from pipeline import schema; print(json.dumps([str(schema.PROJECT_PATH), "
             "schema.MODEL_NAME, list(schema.FEATURES), schema.GATE_METRIC]))")
    result = run_to_completion("training", ["python", "-c", probe], options=["--network", "none", "--entrypoint", ""])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["/opt/program/project.yaml", schema.MODEL_NAME, list(schema.FEATURES),
                                         schema.GATE_METRIC]
