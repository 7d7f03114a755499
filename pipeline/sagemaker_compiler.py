"""Compile the commit pipeline's step wiring into a SageMaker Pipeline definition.

The local runner and SageMaker run the same steps: each SageMaker Processing job runs
``python -m pipeline step NAME --input DIR ... --output DIR`` (docs/contracts.md, "The
SageMaker step entry") in the processing image, and training runs the training image,
which follows SageMaker's training-container conventions (``training/train.py``:
channels ``train``/``validation`` under ``/opt/ml/input/data``, hyperparameters from
``/opt/ml/input/config/hyperparameters.json``, the model written to ``/opt/ml/model``).
``compile_pipeline_definition`` turns a typed :class:`PipelineSpec` into the JSON
definition that the ``TrainingPipeline`` Pulumi component hands to
``aws.sagemaker.Pipeline``; it never calls AWS, creates nothing and reads no files, so
it is safe inside ``Output.apply``. The SDK reads its settings from the environment
when first imported, so :func:`prepare_offline_sdk_environment` runs before the first
import and the SDK is imported lazily inside the compile function, never at import
time of this module.

Wiring (each arrow is a property reference SageMaker resolves at run time)::

    Validate -> Split -> Train (GPU) -> EvaluateAndGate --PropertyFile--> GateCheck
                  \\________________________/                 |-- passed --> Register
                                                             '-- refused --> GateRefused (Fail)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pipeline import schema
from pipeline.steps.gate import GateThresholds

if TYPE_CHECKING:
    from pipeline.project import RegressionThresholds
from pipeline.tracking_credentials import SECRET_ENV as CREDENTIALS_SECRET_ENV

PROCESSING_ROOT: Final = "/opt/ml/processing"
EVALUATION_FILE: Final = "evaluation.json"
"""Written by the gate step; its ``gate.passed`` decides the ConditionStep."""
EVALUATION_OUTPUT: Final = "evaluation"
PROPERTY_FILE_NAME: Final = "EvaluationReport"
JOB_ENTRY: Final = "job-entry"
"""The training image's start script (training/job_entry.sh): SageMaker mounts the
processing folders owned by root, so every job starts as root, is given its mounts and
drops to UID 10001 before any pipeline code runs."""
GATE_STEP_COMMAND: Final = "gate"
"""The ``python -m pipeline step`` name that evaluates and writes ``evaluation.json``."""

STEP_VALIDATE: Final = "Validate"
STEP_SPLIT: Final = "Split"
STEP_TRAIN: Final = "Train"
STEP_EVALUATE: Final = "EvaluateAndGate"
STEP_CONDITION: Final = "GateCheck"
STEP_REGISTER: Final = "Register"
STEP_FAIL: Final = "GateRefused"
GATE_REFUSED_PREFIX: Final = "Gate refused the challenger:"
"""The FailStep's message starts with this; ``pipeline.delivery`` looks for it."""

PARAM_INPUT_DATA: Final = "InputDataUri"
PARAM_GIT_COMMIT: Final = "GitCommit"
PARAM_SERVING_IMAGE: Final = "ServingImageUri"
PARAM_TRAINING_IMAGE: Final = "TrainingImageUri"
PARAM_PROCESSING_IMAGE: Final = "ProcessingImageUri"
IMAGE_PARAMETERS: Final[dict[str, str]] = {PARAM_PROCESSING_IMAGE: "training", PARAM_TRAINING_IMAGE: "training", PARAM_SERVING_IMAGE: "serving"}
"""Execution parameter -> the ``images.json`` role (``deliver build-images``) that fills it.

Processing steps run ``python -m pipeline step`` and that package ships in the training
image, so both the processing and the training parameter take the training digest.
"""

_DIGEST_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._\-/:]*@sha256:[0-9a-f]{64}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/[\w+=,.@\-/]+$")
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$")
_SECRET_ARN = re.compile(r"^arn:aws[a-z\-]*:secretsmanager:[a-z0-9\-]+:\d{12}:secret:.+$")
_PIPELINE_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")
# Instance families with NVIDIA GPUs that SageMaker training offers.
_GPU_FAMILIES: Final = ("ml.g4dn.", "ml.g5.", "ml.g6.", "ml.g6e.", "ml.gr6.", "ml.p3.", "ml.p3dn.", "ml.p4d.", "ml.p4de.", "ml.p5.", "ml.p5e.", "ml.p5en.")
_SDK_ENV_PREPARED = "_MLOPS_SAGEMAKER_OFFLINE_PREPARED"


def is_digest_image(uri: str) -> bool:
    """True when ``uri`` names an image by digest (``repo@sha256:<64 hex>``), never a tag.

    Shared by the spec (parameter defaults) and ``deliver train`` (the values it passes),
    so an execution can only ever run bytes that were scanned.
    """
    return bool(_DIGEST_IMAGE.match(uri or ""))


def gate_params(gate: GateThresholds | RegressionThresholds) -> list[str]:
    """``--param name=value`` for every gate threshold, in field order.

    The thresholds live in the pipeline definition (not in the image) so a stack's
    config, not a rebuild, decides how strict promotion is; the names are the local
    runner's ``pipeline.steps.gate.GateThresholds`` fields, so both paths judge a
    challenger the same way.
    """
    args: list[str] = []
    for name, value in asdict(gate).items():
        args += ["--param", f"{name}={value!r}"]
    return args


@dataclass(frozen=True)
class PipelineSpec:
    """Everything the SageMaker pipeline definition depends on, validated on creation.

    Images are referenced by digest (``repo@sha256:...``) so a definition always names
    exactly the bytes that were scanned; a tag is refused. They are the defaults of the
    ``ProcessingImageUri``/``TrainingImageUri`` execution parameters, which ``deliver
    train`` overrides with each push's freshly built digests. ``artifacts_s3_prefix`` is
    where each execution writes its step outputs (one folder per execution id), and
    ``data_s3_uri`` is the default of the ``InputDataUri`` execution parameter.
    """

    pipeline_name: str
    role_arn: str
    processing_image_uri: str
    training_image_uri: str
    gpu_instance_type: str
    processing_instance_type: str
    data_s3_uri: str
    artifacts_s3_prefix: str
    kms_key_id: str
    mlflow_tracking_uri: str
    model_name: str = field(default_factory=lambda: schema.DEFAULT_MODEL_NAME)
    gate: GateThresholds | RegressionThresholds = field(default_factory=lambda: schema.THRESHOLDS)
    hyperparameters: Mapping[str, str | int | float] = field(default_factory=dict)
    training_max_runtime_s: int = 4 * 3600
    processing_max_runtime_s: int = 3600
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    mlflow_credentials_secret_arn: str = ""
    """The Secrets Manager secret the jobs read MLflow's basic-auth credentials from at
    start (``pipeline.tracking_credentials``); only its ARN is in the definition."""

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not _PIPELINE_NAME.match(self.pipeline_name or ""):
            problems.append(f"pipeline_name {self.pipeline_name!r} must be alphanumeric with hyphens, at most 256 characters")
        if not _ROLE_ARN.match(self.role_arn or ""):
            problems.append(f"role_arn {self.role_arn!r} is not an IAM role ARN")
        for name in ("processing_image_uri", "training_image_uri"):
            value = getattr(self, name)
            if not is_digest_image(value):
                problems.append(f"{name} {value!r} must be referenced by digest (repo@sha256:<64 hex>), never by tag")
        if not str(self.gpu_instance_type).startswith(_GPU_FAMILIES):
            problems.append(f"gpu_instance_type {self.gpu_instance_type!r} is not a SageMaker GPU instance type (one of {', '.join(f + '*' for f in _GPU_FAMILIES)})")
        if not re.match(r"^ml\.[a-z0-9]+\.[a-z0-9]+$", self.processing_instance_type or ""):
            problems.append(f"processing_instance_type {self.processing_instance_type!r} is not a SageMaker instance type (ml.<family>.<size>)")
        for name in ("data_s3_uri", "artifacts_s3_prefix"):
            value = getattr(self, name)
            if not _S3_URI.match(value or ""):
                problems.append(f"{name} {value!r} is not an s3:// URI")
        if not self.kms_key_id:
            problems.append("kms_key_id is required: pipeline outputs and volumes are encrypted with a customer key")
        if not re.match(r"^(https?|databricks|sqlite|file)://", self.mlflow_tracking_uri or ""):
            problems.append(f"mlflow_tracking_uri {self.mlflow_tracking_uri!r} is not a tracking URI")
        if not self.model_name:
            problems.append("model_name is required")
        for name in ("training_max_runtime_s", "processing_max_runtime_s"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 60 <= value <= 28 * 24 * 3600:
                problems.append(f"{name} must be an integer between 60 and {28 * 24 * 3600}, got {value!r}")
        if bool(self.subnet_ids) != bool(self.security_group_ids):
            problems.append("subnet_ids and security_group_ids go together: give both or neither")
        if self.mlflow_credentials_secret_arn and not _SECRET_ARN.match(self.mlflow_credentials_secret_arn):
            problems.append(f"mlflow_credentials_secret_arn {self.mlflow_credentials_secret_arn!r} is not a Secrets Manager secret ARN")
        if self.mlflow_tracking_uri.startswith("http") and not self.mlflow_credentials_secret_arn:
            problems.append("mlflow_credentials_secret_arn is required with an http(s) tracking server: the jobs must log in")
        if not isinstance(self.gate, type(schema.THRESHOLDS)):
            problems.append(f"gate must be the project's {type(schema.THRESHOLDS).__name__} ({schema.TASK} task)")
        if problems:
            raise ValueError("invalid PipelineSpec: " + "; ".join(problems))

    @property
    def output_prefix(self) -> str:
        return self.artifacts_s3_prefix.rstrip("/")


def supports_attached_volume(instance_type: str) -> bool:
    """True when SageMaker attaches an EBS volume to ``instance_type`` (a volume KMS key is allowed).

    Instance types with local NVMe storage (g5, g6, p4d, p5, the ``d`` families, ...)
    get no EBS volume, and CreateTrainingJob/CreateProcessingJob reject a volume KMS key
    for them (their instance storage is encrypted by the hardware). The
    SDK's own table decides, so the rule follows AWS's as the SDK is upgraded.
    """
    prepare_offline_sdk_environment()
    from sagemaker.core.common_utils import instance_supports_kms, volume_size_supported

    return bool(instance_supports_kms(instance_type) and volume_size_supported(instance_type))


def prepare_offline_sdk_environment(region: str = "us-east-1") -> Path:
    """Set the variables the SageMaker SDK reads at import so it compiles without AWS.

    The SDK resolves a region, credentials and its defaults config when first imported
    and would otherwise probe the instance-metadata endpoint and send telemetry; this
    sets a region, placeholder credentials only where none are set (compiling signs
    nothing), empty AWS config files, and a user config with ``TelemetryOptOut: true``
    written to a temporary file. Returns that file's path. Idempotent; called by
    :func:`compile_pipeline_definition` before the SDK is imported.
    """
    prepared = os.environ.get(_SDK_ENV_PREPARED)
    if prepared and Path(prepared).is_file():
        return Path(prepared)
    handle = tempfile.NamedTemporaryFile("w", prefix="sagemaker-user-config-", suffix=".yaml", delete=False)
    with handle:
        handle.write("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n")
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "offline-compile")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "offline-compile")
    os.environ.update(
        {
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
            "SAGEMAKER_VALIDATE_ROLE": "false",
            "SAGEMAKER_USER_CONFIG_OVERRIDE": handle.name,
            _SDK_ENV_PREPARED: handle.name,
        }
    )
    return Path(handle.name)


@contextlib.contextmanager
def _validate_sdk_config_once() -> Iterator[None]:
    """Validate the SDK's defaults config once per compile instead of on every lookup.

    SDK quirk: ``get_sagemaker_config_value`` runs ``jsonschema.validate`` on the whole
    defaults config, re-checking the (large) schema itself, on each of the ~50 lookups a
    definition makes: about 15 s of the compile on two cores. The config cannot change
    during a compile, so each distinct config is validated fully the first time only.
    """
    from sagemaker.core.config.config_manager import SageMakerConfig

    original = SageMakerConfig.__dict__["validate_sagemaker_config"]
    seen: set[str] = set()

    def validate_once(sagemaker_config: dict | None = None) -> None:
        key = json.dumps(sagemaker_config, sort_keys=True, default=str)
        if key not in seen:
            original.__func__(sagemaker_config)
            seen.add(key)

    SageMakerConfig.validate_sagemaker_config = staticmethod(validate_once)
    try:
        yield
    finally:
        SageMakerConfig.validate_sagemaker_config = original


def _region_of(spec: PipelineSpec) -> str:
    match = re.match(r"^arn:aws[a-z\-]*:kms:([a-z0-9\-]+):", spec.kms_key_id)
    return match.group(1) if match else os.environ.get("AWS_DEFAULT_REGION", "us-east-1")


def compile_pipeline_definition(spec: PipelineSpec) -> str:
    """The SageMaker Pipeline definition JSON for ``spec``, built offline by the SDK.

    Why the SDK and not a hand-written JSON: the SDK's step classes are what AWS keeps
    in step with the service's request shapes; a hand-kept copy would drift unnoticed.
    Validate, Split, EvaluateAndGate and Register are Processing steps running our CLI
    in the processing image; Train is a Training step (``ModelTrainer``) on the GPU
    instance type; GateCheck reads ``gate.passed`` from ``evaluation.json`` through a
    PropertyFile, registering on True and failing with the gate's reasons otherwise.
    Raises ``ValueError`` (from the spec) on bad input; makes no AWS call.
    """
    if not isinstance(spec, PipelineSpec):
        raise TypeError(f"compile_pipeline_definition needs a PipelineSpec, got {type(spec).__name__}")
    prepare_offline_sdk_environment(_region_of(spec))

    from sagemaker.core.processing import Processor
    from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output, StoppingCondition
    from sagemaker.core.training.configs import Compute, InputData, Networking, OutputDataConfig
    from sagemaker.core.workflow.conditions import ConditionEquals
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join, JsonGet
    from sagemaker.core.workflow.parameters import ParameterString
    from sagemaker.core.workflow.pipeline_context import PipelineSession
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.mlops.workflow import ConditionStep, FailStep, Pipeline, ProcessingStep, TrainingStep
    from sagemaker.train import ModelTrainer

    network: Any = None
    if spec.subnet_ids:
        from sagemaker.core.network import NetworkConfig

        network = NetworkConfig(subnets=list(spec.subnet_ids), security_group_ids=list(spec.security_group_ids), encrypt_inter_container_traffic=True)

    input_data = ParameterString(name=PARAM_INPUT_DATA, default_value=spec.data_s3_uri)
    git_commit = ParameterString(name=PARAM_GIT_COMMIT, default_value="unknown")
    serving_image = ParameterString(name=PARAM_SERVING_IMAGE, default_value="")
    # Images are execution parameters, not constants: the definition is compiled at
    # `pulumi up`, but every push builds new images, and `deliver train` passes those
    # digests at start. The defaults are the digests known at `pulumi up`.
    processing_image = ParameterString(name=PARAM_PROCESSING_IMAGE, default_value=spec.processing_image_uri)
    training_image = ParameterString(name=PARAM_TRAINING_IMAGE, default_value=spec.training_image_uri)

    def out_uri(step: str) -> Any:
        # One folder per execution, so a re-run never reads a previous run's outputs.
        return Join(on="/", values=[spec.output_prefix, ExecutionVariables.PIPELINE_EXECUTION_ID, step])

    def s3_in(name: str, uri: Any) -> Any:
        return ProcessingInput(
            input_name=name,
            s3_input=ProcessingS3Input(s3_uri=uri, s3_data_type="S3Prefix", local_path=f"{PROCESSING_ROOT}/input/{name}", s3_input_mode="File"),
        )

    def s3_out(name: str, step: str) -> Any:
        return ProcessingOutput(
            output_name=name,
            s3_output=ProcessingS3Output(s3_uri=out_uri(f"{step}/{name}"), local_path=f"{PROCESSING_ROOT}/output/{name}", s3_upload_mode="EndOfJob"),
        )

    def cli_args(inputs: list[str], output: str, params: list[str]) -> list[str]:
        args: list[str] = []
        for name in inputs:
            args += ["--input", f"{PROCESSING_ROOT}/input/{name}"]
        out_dir = f"{PROCESSING_ROOT}/output/{output}" if output else f"{PROCESSING_ROOT}/output"
        return [*args, "--output", out_dir, *params]

    with warnings.catch_warnings(), _validate_sdk_config_once():
        # "Running within a PipelineSession, there will be No Wait...": expected here.
        warnings.simplefilter("ignore", UserWarning)
        session = PipelineSession()
        env = {"MLFLOW_TRACKING_URI": spec.mlflow_tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true", "MLOPS_MODEL_NAME": spec.model_name}
        if spec.mlflow_credentials_secret_arn:
            env[CREDENTIALS_SECRET_ENV] = spec.mlflow_credentials_secret_arn
        processing_volume = supports_attached_volume(spec.processing_instance_type)
        training_volume = supports_attached_volume(spec.gpu_instance_type)

        def processor(step_command: str, base_job_name: str) -> Any:
            return Processor(
                role=spec.role_arn,
                image_uri=processing_image,
                instance_count=1,
                instance_type=spec.processing_instance_type,
                entrypoint=[JOB_ENTRY, "python", "-m", "pipeline", "step", step_command],
                # Instance-storage types get no EBS volume, so no volume key (module docstring).
                volume_kms_key=spec.kms_key_id if processing_volume else None,
                output_kms_key=spec.kms_key_id,
                max_runtime_in_seconds=spec.processing_max_runtime_s,
                base_job_name=base_job_name,
                sagemaker_session=session,
                env=env,
                network_config=network,
            )

        validate = ProcessingStep(
            name=STEP_VALIDATE,
            step_args=processor("validate", "mlops-validate").run(
                inputs=[s3_in("data", input_data)],
                outputs=[s3_out("validated", STEP_VALIDATE)],
                arguments=cli_args(["data"], "validated", []),
            ),
        )
        validated_uri = validate.properties.ProcessingOutputConfig.Outputs["validated"].S3Output.S3Uri

        split = ProcessingStep(
            name=STEP_SPLIT,
            step_args=processor("split", "mlops-split").run(
                inputs=[s3_in("validated", validated_uri)],
                outputs=[s3_out(name, STEP_SPLIT) for name in ("train", "validation", "holdout")],
                # The split step writes train/, validation/ and holdout/ under one output folder.
                arguments=cli_args(["validated"], "", []),
            ),
        )
        split_outputs = split.properties.ProcessingOutputConfig.Outputs

        trainer = ModelTrainer(
            sagemaker_session=session,
            role=spec.role_arn,
            training_image=training_image,
            base_job_name="mlops-train",
            compute=Compute(instance_type=spec.gpu_instance_type, instance_count=1, volume_size_in_gb=30,
                            volume_kms_key_id=spec.kms_key_id if training_volume else None),
            # Inside the VPC like the processing jobs: S3 through the gateway endpoint,
            # no route to the internet.
            networking=Networking(subnets=list(spec.subnet_ids), security_group_ids=list(spec.security_group_ids),
                                  enable_inter_container_traffic_encryption=True) if spec.subnet_ids else None,
            # Uncompressed, so S3ModelArtifacts is a folder the gate and register steps
            # read as a plain `--input DIR`, like the local runner's model directory.
            output_data_config=OutputDataConfig(s3_output_path=out_uri(STEP_TRAIN), kms_key_id=spec.kms_key_id, compression_type="NONE"),
            stopping_condition=StoppingCondition(max_runtime_in_seconds=spec.training_max_runtime_s),
            hyperparameters={str(k): v for k, v in spec.hyperparameters.items()},
            environment={"MLOPS_GIT_COMMIT": git_commit},
        )
        train = TrainingStep(
            name=STEP_TRAIN,
            step_args=trainer.train(
                input_data_config=[
                    InputData(channel_name="train", data_source=split_outputs["train"].S3Output.S3Uri),
                    InputData(channel_name="validation", data_source=split_outputs["validation"].S3Output.S3Uri),
                ]
            ),
        )
        model_uri = train.properties.ModelArtifacts.S3ModelArtifacts

        evaluation_file = PropertyFile(name=PROPERTY_FILE_NAME, output_name=EVALUATION_OUTPUT, path=EVALUATION_FILE)
        evaluate = ProcessingStep(
            name=STEP_EVALUATE,
            step_args=processor(GATE_STEP_COMMAND, "mlops-gate").run(
                inputs=[s3_in("model", model_uri), s3_in("holdout", split_outputs["holdout"].S3Output.S3Uri)],
                outputs=[s3_out(EVALUATION_OUTPUT, STEP_EVALUATE)],
                arguments=cli_args(["model", "holdout"], EVALUATION_OUTPUT, gate_params(spec.gate)),
            ),
            property_files=[evaluation_file],
        )
        evaluation_uri = evaluate.properties.ProcessingOutputConfig.Outputs[EVALUATION_OUTPUT].S3Output.S3Uri

        register = ProcessingStep(
            name=STEP_REGISTER,
            step_args=processor("register", "mlops-register").run(
                inputs=[s3_in("model", model_uri), s3_in("evaluation", evaluation_uri), s3_in("validated", validated_uri)],
                outputs=[s3_out("registered", STEP_REGISTER)],
                arguments=cli_args(
                    ["model", "evaluation", "validated"],
                    "registered",
                    ["--param", Join(on="=", values=["git_commit", git_commit]), "--param", Join(on="=", values=["image_digest", serving_image])],
                ),
            ),
        )
        refused = FailStep(
            name=STEP_FAIL,
            error_message=Join(on=" ", values=[GATE_REFUSED_PREFIX, JsonGet(step_name=STEP_EVALUATE, property_file=evaluation_file, json_path="gate.reasons")]),
        )
        gate = ConditionStep(
            name=STEP_CONDITION,
            conditions=[ConditionEquals(left=JsonGet(step_name=STEP_EVALUATE, property_file=evaluation_file, json_path="gate.passed"), right=True)],
            if_steps=[register],
            else_steps=[refused],
        )
        pipeline = Pipeline(
            name=spec.pipeline_name,
            parameters=[input_data, git_commit, serving_image, processing_image, training_image],
            steps=[validate, split, train, evaluate, gate],
            sagemaker_session=session,
        )
        definition = pipeline.definition()
    # Round-trip so the string is canonical JSON whatever the SDK's formatting.
    return json.dumps(json.loads(definition), sort_keys=True)
