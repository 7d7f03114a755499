"""The SageMaker pipeline definition: every step's wiring, parsed from the compiled JSON.

The SDK import dominates the cost (~6-10 s), so the definition is compiled once per
session and each test reads a different part of it.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from pipeline.steps.gate import GateThresholds
from pipeline.sagemaker_compiler import (
    EVALUATION_FILE,
    GATE_REFUSED_PREFIX,
    PipelineSpec,
    compile_pipeline_definition,
)

# The SDK's own compatibility shims warn on import; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ACCOUNT = "123456789012"
PROCESSING_IMAGE = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/mlops-training@sha256:" + "a" * 64
TRAINING_IMAGE = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/mlops-training@sha256:" + "b" * 64
KMS = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mlops-dev-mlflow-credentials-AbCdEf"


def make_spec(**overrides: Any) -> PipelineSpec:
    values: dict[str, Any] = dict(
        pipeline_name="mlops-dev-training",
        role_arn=f"arn:aws:iam::{ACCOUNT}:role/mlops-dev-sagemaker",
        processing_image_uri=PROCESSING_IMAGE,
        training_image_uri=TRAINING_IMAGE,
        gpu_instance_type="ml.g5.xlarge",
        processing_instance_type="ml.m5.large",
        data_s3_uri="s3://mlops-dev-data/adult/",
        artifacts_s3_prefix="s3://mlops-dev-artifacts/pipeline/",
        kms_key_id=KMS,
        mlflow_tracking_uri="https://mlflow.mlops.svc.cluster.local",
        mlflow_credentials_secret_arn=SECRET,
        gate=GateThresholds(min_roc_auc=0.88, auc_tolerance=0.004, slice_tolerance=0.025, max_equal_opportunity_difference=0.12),
        hyperparameters={"n_estimators": 300, "max_depth": 6},
    )
    values.update(overrides)
    return PipelineSpec(**values)


@pytest.fixture(scope="session")
def definition() -> dict[str, Any]:
    return json.loads(compile_pipeline_definition(make_spec()))


def steps_by_name(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    def visit(steps: list[dict[str, Any]]) -> None:
        for step in steps:
            found[step["Name"]] = step
            args = step.get("Arguments", {})
            visit(args.get("IfSteps", []) if isinstance(args, dict) else [])
            visit(args.get("ElseSteps", []) if isinstance(args, dict) else [])

    visit(definition["Steps"])
    return found


def refs(obj: Any) -> set[str]:
    """Every ``{"Get": ...}`` property reference inside ``obj``."""
    out: set[str] = set()
    if isinstance(obj, dict):
        if set(obj) == {"Get"}:
            out.add(obj["Get"])
        for value in obj.values():
            out |= refs(value)
    elif isinstance(obj, list):
        for value in obj:
            out |= refs(value)
    return out


def test_step_types_and_branches(definition: dict[str, Any]) -> None:
    top = [(s["Name"], s["Type"]) for s in definition["Steps"]]
    assert top == [
        ("Validate", "Processing"),
        ("Split", "Processing"),
        ("Train", "Training"),
        ("EvaluateAndGate", "Processing"),
        ("GateCheck", "Condition"),
    ]
    condition = definition["Steps"][-1]["Arguments"]
    assert [(s["Name"], s["Type"]) for s in condition["IfSteps"]] == [("Register", "Processing")]
    assert [(s["Name"], s["Type"]) for s in condition["ElseSteps"]] == [("GateRefused", "Fail")]


def test_images_are_execution_parameters_defaulting_to_the_digests(definition: dict[str, Any]) -> None:
    steps = steps_by_name(definition)
    for name in ("Validate", "Split", "EvaluateAndGate", "Register"):
        assert steps[name]["Arguments"]["AppSpecification"]["ImageUri"] == {"Get": "Parameters.ProcessingImageUri"}, name
    assert steps["Train"]["Arguments"]["AlgorithmSpecification"]["TrainingImage"] == {"Get": "Parameters.TrainingImageUri"}
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    assert defaults["ProcessingImageUri"] == PROCESSING_IMAGE
    assert defaults["TrainingImageUri"] == TRAINING_IMAGE
    text = json.dumps(definition)
    assert ":latest" not in text


def test_deliver_train_passes_only_parameters_the_definition_declares(definition: dict[str, Any]) -> None:
    """``deliver train`` builds its parameters from images.json; each must exist here,
    or SageMaker would refuse the start (or, worse, run the defaults)."""
    from pipeline.delivery.sagemaker_runs import execution_parameters

    fresh = {"training": TRAINING_IMAGE.replace("b" * 64, "c" * 64), "serving": PROCESSING_IMAGE.replace("mlops-training", "mlops-serving")}
    parameters = execution_parameters(fresh, git_commit="abc123", input_data="s3://mlops-dev-data/other/")
    declared = {p["Name"]: p["Type"] for p in definition["Parameters"]}
    assert set(parameters) <= set(declared) and all(declared[name] == "String" for name in parameters)
    assert parameters["TrainingImageUri"] == parameters["ProcessingImageUri"] == fresh["training"]


def test_instance_types(definition: dict[str, Any]) -> None:
    steps = steps_by_name(definition)
    assert steps["Train"]["Arguments"]["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"
    for name in ("Validate", "Split", "EvaluateAndGate", "Register"):
        assert steps[name]["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "ml.m5.large", name


def test_processing_steps_run_our_cli(definition: dict[str, Any]) -> None:
    steps = steps_by_name(definition)
    expected = {"Validate": "validate", "Split": "split", "EvaluateAndGate": "gate", "Register": "register"}
    for name, command in expected.items():
        app = steps[name]["Arguments"]["AppSpecification"]
        assert app["ContainerEntrypoint"] == ["job-entry", "python", "-m", "pipeline", "step", command], name
        args = app["ContainerArguments"]
        assert "--output" in args and args[args.index("--output") + 1].startswith("/opt/ml/processing/output"), name
        # Every --input names a folder SageMaker downloads an input channel into.
        local_inputs = {i["S3Input"]["LocalPath"] for i in steps[name]["Arguments"]["ProcessingInputs"]}
        given = {args[i + 1] for i, a in enumerate(args) if a == "--input"}
        assert given == local_inputs, name
    validate_args = steps["Validate"]["Arguments"]
    assert refs(validate_args["ProcessingInputs"]) == {"Parameters.InputDataUri"}


def test_gate_thresholds_and_tracking_uri_reach_the_gate(definition: dict[str, Any]) -> None:
    gate = steps_by_name(definition)["EvaluateAndGate"]["Arguments"]
    args = gate["AppSpecification"]["ContainerArguments"]
    params = {args[i + 1] for i, a in enumerate(args) if a == "--param"}
    assert {
        "min_roc_auc=0.88",
        "auc_tolerance=0.004",
        "slice_tolerance=0.025",
        "max_equal_opportunity_difference=0.12",
        "max_demographic_parity_difference=0.3",
    } <= params
    # Every key is one the local gate accepts, so both paths judge alike.
    parsed = dict(p.split("=", 1) for p in params)
    assert GateThresholds.from_mapping(parsed) == make_spec().gate
    for name in ("EvaluateAndGate", "Register"):
        env = steps_by_name(definition)[name]["Arguments"]["Environment"]
        assert env["MLFLOW_TRACKING_URI"] == "https://mlflow.mlops.svc.cluster.local", name
        assert env["MLOPS_MODEL_NAME"] == "adult-income", name


def test_property_file_and_condition(definition: dict[str, Any]) -> None:
    steps = steps_by_name(definition)
    evaluate = steps["EvaluateAndGate"]
    (prop,) = evaluate["PropertyFiles"]
    assert prop["FilePath"] == EVALUATION_FILE
    outputs = {o["OutputName"]: o for o in evaluate["Arguments"]["ProcessingOutputConfig"]["Outputs"]}
    assert prop["OutputName"] in outputs
    assert outputs[prop["OutputName"]]["S3Output"]["LocalPath"] == "/opt/ml/processing/output/evaluation"
    (condition,) = steps["GateCheck"]["Arguments"]["Conditions"]
    assert condition["Type"] == "Equals"
    assert condition["RightValue"] is True
    json_get = condition["LeftValue"]["Std:JsonGet"]
    assert json_get["Path"] == "gate.passed"
    assert json_get["PropertyFile"] == {"Get": f"Steps.EvaluateAndGate.PropertyFiles.{prop['PropertyFileName']}"}


def test_fail_step_message_carries_the_gate_reasons(definition: dict[str, Any]) -> None:
    message = steps_by_name(definition)["GateRefused"]["Arguments"]["ErrorMessage"]["Std:Join"]
    assert message["Values"][0] == GATE_REFUSED_PREFIX
    reasons = message["Values"][1]["Std:JsonGet"]
    assert reasons["Path"] == "gate.reasons"
    assert reasons["PropertyFile"]["Get"].startswith("Steps.EvaluateAndGate.PropertyFiles.")


def test_dependencies_follow_the_local_wiring(definition: dict[str, Any]) -> None:
    steps = steps_by_name(definition)
    upstream = {name: {r.split(".")[1] for r in refs(step["Arguments"]) if r.startswith("Steps.")} for name, step in steps.items()}
    assert upstream["Validate"] == set()
    assert upstream["Split"] == {"Validate"}
    assert upstream["Train"] == {"Split"}
    assert upstream["EvaluateAndGate"] == {"Train", "Split"}
    assert upstream["Register"] == {"Train", "EvaluateAndGate", "Validate"}
    train_channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in steps["Train"]["Arguments"]["InputDataConfig"]}
    assert train_channels == {
        "train": {"Get": "Steps.Split.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"},
        "validation": {"Get": "Steps.Split.ProcessingOutputConfig.Outputs['validation'].S3Output.S3Uri"},
    }
    gate_inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in steps["EvaluateAndGate"]["Arguments"]["ProcessingInputs"]}
    assert gate_inputs["model"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    assert gate_inputs["holdout"] == {"Get": "Steps.Split.ProcessingOutputConfig.Outputs['holdout'].S3Output.S3Uri"}


def test_everything_written_is_encrypted_with_the_stack_key(definition: dict[str, Any]) -> None:
    steps = steps_by_name(definition)
    for name in ("Validate", "Split", "EvaluateAndGate", "Register"):
        args = steps[name]["Arguments"]
        assert args["ProcessingOutputConfig"]["KmsKeyId"] == KMS, name
        assert args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == KMS, name
    train = steps["Train"]["Arguments"]
    assert train["OutputDataConfig"]["KmsKeyId"] == KMS
    assert train["HyperParameters"] == {"n_estimators": "300", "max_depth": "6"}


# ml.g5 has local NVMe storage: CreateTrainingJob rejects a volume KMS key for it
# (VolumeSizeInGB is a required field of ResourceConfig and stays).
@pytest.mark.parametrize(("instance_type", "attached_volume"), [
    ("ml.g5.xlarge", False), ("ml.g4dn.xlarge", False), ("ml.gr6.4xlarge", True),
])
def test_volume_key_only_where_the_instance_type_has_an_ebs_volume(instance_type: str, attached_volume: bool) -> None:
    resources = steps_by_name(json.loads(compile_pipeline_definition(make_spec(gpu_instance_type=instance_type))))["Train"]["Arguments"]["ResourceConfig"]
    assert ("VolumeKmsKeyId" in resources) is attached_volume, resources
    if attached_volume:
        assert resources["VolumeKmsKeyId"] == KMS


def test_jobs_get_the_credentials_secret_by_arn_never_the_password(definition: dict[str, Any]) -> None:
    for name, step in steps_by_name(definition).items():
        env = step.get("Arguments", {}).get("Environment", {}) if step["Type"] == "Processing" else {}
        if step["Type"] == "Processing":
            assert env["MLOPS_MLFLOW_CREDENTIALS_SECRET"] == SECRET, name
        assert not any("PASSWORD" in key for key in env), name


def test_an_http_tracking_server_without_a_credentials_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="mlflow_credentials_secret_arn is required"):
        make_spec(mlflow_credentials_secret_arn="")


def test_training_runs_inside_the_vpc_like_the_processing_jobs() -> None:
    spec = make_spec(subnet_ids=("subnet-0a", "subnet-0b"), security_group_ids=("sg-0c",))
    steps = steps_by_name(json.loads(compile_pipeline_definition(spec)))
    assert steps["Train"]["Arguments"]["VpcConfig"] == {"Subnets": ["subnet-0a", "subnet-0b"], "SecurityGroupIds": ["sg-0c"]}
    assert steps["Validate"]["Arguments"]["NetworkConfig"]["VpcConfig"]["Subnets"] == ["subnet-0a", "subnet-0b"]


def test_outputs_are_per_execution(definition: dict[str, Any]) -> None:
    out = steps_by_name(definition)["Validate"]["Arguments"]["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    values = out["Std:Join"]["Values"]
    assert values[0] == "s3://mlops-dev-artifacts/pipeline"
    assert values[1] == {"Get": "Execution.PipelineExecutionId"}
    assert {p["Name"] for p in definition["Parameters"]} == {"InputDataUri", "GitCommit", "ServingImageUri", "ProcessingImageUri", "TrainingImageUri"}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("processing_image_uri", f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/mlops-training:latest", "by digest"),
        ("training_image_uri", f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/mlops-training:v1", "by digest"),
        ("gpu_instance_type", "ml.m5.xlarge", "GPU instance type"),
        ("processing_instance_type", "m5.large", "processing_instance_type"),
        ("role_arn", "mlops-role", "IAM role ARN"),
        ("data_s3_uri", "/local/path", "data_s3_uri"),
        ("artifacts_s3_prefix", "https://bucket", "artifacts_s3_prefix"),
        ("kms_key_id", "", "kms_key_id"),
        ("mlflow_tracking_uri", "mlflow", "mlflow_tracking_uri"),
        ("pipeline_name", "bad name!", "pipeline_name"),
        ("training_max_runtime_s", 5, "training_max_runtime_s"),
        ("subnet_ids", ("subnet-1",), "security_group_ids"),
    ],
)
def test_spec_refuses_bad_input(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_spec(**{field: value})


def test_spec_refuses_gate_that_is_not_thresholds() -> None:
    with pytest.raises(ValueError, match="GateThresholds"):
        make_spec(gate={"min_roc_auc": 0.9})


def test_compile_refuses_something_that_is_not_a_spec() -> None:
    with pytest.raises(TypeError, match="PipelineSpec"):
        compile_pipeline_definition(dataclasses.asdict(make_spec()))  # type: ignore[arg-type]


def test_a_regression_project_compiles_its_own_gate_and_model_name(use_project) -> None:
    """The definition carries the active project's task: its thresholds (regression's, as
    the Processing job's step command parses them back) and its model name."""
    from pipeline import schema
    from pipeline.commands.step import allowed_params
    from pipeline.project import active_thresholds
    from pipeline.schema import REPO_ROOT

    use_project(REPO_ROOT / "examples" / "california-housing.yaml")
    spec = make_spec(gate=dataclasses.replace(schema.THRESHOLDS, error_tolerance=0.03))
    gate = steps_by_name(json.loads(compile_pipeline_definition(spec)))["EvaluateAndGate"]["Arguments"]
    args = gate["AppSpecification"]["ContainerArguments"]
    parsed = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--param")
    assert set(parsed) <= allowed_params("gate")
    assert active_thresholds(parsed) == spec.gate
    assert gate["Environment"]["MLOPS_MODEL_NAME"] == "california-housing"
    with pytest.raises(ValueError, match="RegressionThresholds"):
        make_spec()  # the binary thresholds are not this project's
