"""Execute a compiled SageMaker pipeline definition on this machine, in the built images.

moto accepts a pipeline definition and reports every execution ``Succeeded`` at once
without running a step, so it cannot show that the definition works. This module runs
the definition's own JSON, step by step, as SageMaker would: each Processing job's
``ImageUri``, ``ContainerEntrypoint``, ``ContainerArguments`` and ``Environment`` with
its ``ProcessingInputs`` copied from S3 to their ``LocalPath`` (read-only) and its
outputs uploaded from theirs after a successful exit; each Training job with its
channels under ``/opt/ml/input/data/<channel>``, its hyperparameters as strings in
``/opt/ml/input/config/hyperparameters.json``, only ``TRAINING_JOB_NAME``/``ARN`` and
the definition's ``Environment`` set, and ``/opt/ml/model`` uploaded to
``S3OutputPath/<job>/output/model/`` (``CompressionType: NONE``); Condition steps
evaluated on ``JsonGet`` over the property files the jobs wrote; Fail steps ending the
execution with their message. Output mounts are created owned by root, as SageMaker
mounts them. Instance types, volume sizes and KMS keys are metadata here (there is one
machine); they are checked by ``pipeline.sagemaker_compiler`` instead.

Why not the SageMaker SDK's ``LocalPipelineSession``: it executes the SDK's Python step
objects, not a definition (the JSON that ``pulumi up`` hands to AWS is what must work),
and it drives containers through ``docker compose``, which these machines do not have.

The container runner and the S3 client are parameters, so tests can run the engine on
recorded jobs and the CLI runs it with podman against moto's server on 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pipeline.containers import root_owned_dir
from pipeline.delivery import datasets

JOB_UID = 10001
"""The images' unprivileged user; the Processing and Training outputs end up owned by it."""


class DefinitionError(ValueError):
    """The definition uses something this executor (or SageMaker) cannot evaluate."""


@dataclass(frozen=True)
class ContainerJob:
    """One container run: what SageMaker would start for a Processing or Training job."""

    step: str
    image: str
    entrypoint: list[str] | None
    args: list[str]
    env: dict[str, str]
    mounts: list[tuple[Path, str, bool]]
    """(host folder, container path, read-only)."""
    timeout_s: float


class ContainerRunner(Protocol):
    def __call__(self, job: ContainerJob) -> tuple[int, str]:
        """Run ``job`` to completion; its exit code and its logs."""


@dataclass
class StepOutcome:
    """How one step ended, for the report and the benchmark."""

    name: str
    type: str
    status: str
    seconds: float = 0.0
    detail: str = ""


@dataclass
class LocalExecution:
    """The result of one local execution."""

    execution_id: str
    status: str = "Executing"
    failed_step: str | None = None
    failure_reason: str = ""
    steps: list[StepOutcome] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status == "Succeeded"


class _StepFailed(Exception):
    def __init__(self, step: str, reason: str) -> None:
        super().__init__(reason)
        self.step = step
        self.reason = reason


_PROPERTY_PATH = re.compile(r"\.?([A-Za-z0-9_]+)|\['([^']+)'\]|\[(\d+)\]")


def split_s3_uri(uri: str) -> tuple[str, str]:
    try:
        return datasets.split_s3_uri(uri)
    except ValueError as exc:
        raise DefinitionError(str(exc)) from exc


class DefinitionExecutor:
    """Evaluate and run one SageMaker pipeline definition, in order, on this machine.

    ``env_overrides`` replaces the values of variables a job's environment already has
    (the tracking server's in-cluster address, which cannot resolve here) and adds the
    ``AWS_*`` ones (the stand-in endpoint and region, which SageMaker gives a job through
    its instance role and VPC instead); anything else runs as the definition says.
    """

    def __init__(self, definition: str | Mapping[str, Any], *, s3: Any, runner: ContainerRunner, workdir: Path,
                 parameters: Mapping[str, str] | None = None, env_overrides: Mapping[str, str] | None = None,
                 pipeline_name: str = "local", log: Callable[[str], None] = lambda _: None) -> None:
        self.definition = json.loads(definition) if isinstance(definition, str) else dict(definition)
        self.s3 = s3
        self.runner = runner
        self.workdir = workdir
        self.env_overrides = dict(env_overrides or {})
        self.pipeline_name = pipeline_name
        self.log = log
        declared = {p["Name"]: p for p in self.definition.get("Parameters", [])}
        unknown = sorted(set(parameters or {}) - set(declared))
        if unknown:
            raise DefinitionError(f"unknown execution parameter(s) {', '.join(unknown)}; the definition declares {', '.join(sorted(declared))}")
        self.parameters = {name: p.get("DefaultValue") for name, p in declared.items()} | dict(parameters or {})
        self.execution = LocalExecution(execution_id=uuid.uuid4().hex[:12])
        self._property_files: dict[str, dict[str, dict[str, str]]] = {}

    # -- expressions ------------------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        """The run-time value of a definition expression (``Get``, ``Std:Join``, ``Std:JsonGet``)."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Get"}:
            return self._get(value["Get"])
        if set(value) == {"Std:Join"}:
            spec = value["Std:Join"]
            return str(spec.get("On", "")).join(self._join_text(self.resolve(item)) for item in spec["Values"])
        if set(value) == {"Std:JsonGet"}:
            return self._json_get(value["Std:JsonGet"])
        return {key: self.resolve(item) for key, item in value.items()}

    @staticmethod
    def _join_text(value: Any) -> str:
        # SageMaker renders non-string values in a Join as JSON (lists, booleans).
        return value if isinstance(value, str) else json.dumps(value)

    def _get(self, path: str) -> Any:
        head, _, rest = path.partition(".")
        if head == "Parameters":
            if rest not in self.parameters:
                raise DefinitionError(f"{path}: no such parameter")
            return self.parameters[rest]
        if head == "Execution":
            variables = {"PipelineExecutionId": self.execution.execution_id, "PipelineName": self.pipeline_name,
                         "PipelineExecutionArn": f"arn:aws:sagemaker:local:000000000000:pipeline/{self.pipeline_name}/execution/{self.execution.execution_id}",
                         "StartDateTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "CurrentDateTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            if rest not in variables:
                raise DefinitionError(f"{path}: no such execution variable")
            return variables[rest]
        if head == "Steps":
            step, _, prop = rest.partition(".")
            if step not in self.execution.properties:
                raise DefinitionError(f"{path}: step {step} has not run (a property reference to a later or skipped step)")
            return self._dig(self.execution.properties[step], prop, path)
        raise DefinitionError(f"{path}: unsupported reference")

    @staticmethod
    def _dig(node: Any, prop: str, path: str) -> Any:
        position = 0
        while position < len(prop):
            match = _PROPERTY_PATH.match(prop, position)
            if not match or match.end() == position:
                raise DefinitionError(f"{path}: cannot parse property path at {prop[position:]!r}")
            key = match.group(1) or match.group(2)
            try:
                node = node[int(match.group(3))] if match.group(3) is not None else node[key]
            except (KeyError, IndexError, TypeError) as exc:
                raise DefinitionError(f"{path}: the step has no property {prop[:match.end()]!r}") from exc
            position = match.end()
        return node

    def _json_get(self, spec: Mapping[str, Any]) -> Any:
        reference = spec["PropertyFile"]["Get"] if isinstance(spec["PropertyFile"], dict) else spec["PropertyFile"]
        match = re.match(r"^Steps\.([^.]+)\.PropertyFiles\.(.+)$", reference)
        if not match:
            raise DefinitionError(f"JsonGet: unsupported property file reference {reference!r}")
        step, name = match.groups()
        document = self._property_file(step, name)
        node: Any = document
        for part in re.findall(r"[^.\[\]]+|\[\d+\]", spec["Path"]):
            try:
                node = node[int(part[1:-1])] if part.startswith("[") else node[part]
            except (KeyError, IndexError, TypeError) as exc:
                raise DefinitionError(f"JsonGet: {spec['Path']!r} is not in property file {name} of step {step}") from exc
        return node

    def _property_file(self, step: str, name: str) -> Any:
        files = self._property_files.get(step, {})
        if name not in files:
            raise DefinitionError(f"JsonGet: step {step} declares no property file {name} (or has not run)")
        location = files[name]
        bucket, key = split_s3_uri(location["uri"].rstrip("/") + "/" + location["path"])
        try:
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:  # noqa: BLE001 - botocore's errors are dynamic
            raise _StepFailed(step, f"property file {name}: s3://{bucket}/{key} could not be read: {exc}") from exc
        return json.loads(body)

    def _condition(self, condition: Mapping[str, Any]) -> bool:
        kind = condition["Type"]
        if kind == "Not":
            return not self._condition(condition["Expression"])
        if kind == "Or":
            return any(self._condition(item) for item in condition["Conditions"])
        if kind == "In":
            return self.resolve(condition["QueryValue"]) in self.resolve(condition["Values"])
        left, right = self.resolve(condition["LeftValue"]), self.resolve(condition["RightValue"])
        compare = {"Equals": lambda: left == right, "GreaterThan": lambda: left > right,
                   "GreaterThanOrEqualTo": lambda: left >= right, "LessThan": lambda: left < right,
                   "LessThanOrEqualTo": lambda: left <= right}
        if kind not in compare:
            raise DefinitionError(f"condition type {kind!r} is not supported")
        return bool(compare[kind]())

    # -- S3 staging -------------------------------------------------------------------
    def _download(self, uri: str, target: Path) -> int:
        bucket, prefix = split_s3_uri(uri)
        target.mkdir(parents=True, exist_ok=True)
        count = 0
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                relative = item["Key"][len(prefix):].lstrip("/") or Path(item["Key"]).name
                destination = target / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(bucket, item["Key"], str(destination))
                count += 1
        for path in [target, *target.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        return count

    def _upload(self, source: Path, uri: str) -> None:
        bucket, prefix = split_s3_uri(uri)
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            self.s3.upload_file(str(path), bucket, f"{prefix.rstrip('/')}/{path.relative_to(source).as_posix()}".lstrip("/"))

    def _env(self, environment: Mapping[str, Any]) -> dict[str, str]:
        resolved = {key: str(self.resolve(value)) for key, value in environment.items()}
        return resolved | {key: value for key, value in self.env_overrides.items() if key in resolved or key.startswith("AWS_")}

    # -- steps ------------------------------------------------------------------------
    def _processing(self, step: Mapping[str, Any], job_dir: Path) -> dict[str, Any]:
        args = self.resolve(step["Arguments"])
        mounts: list[tuple[Path, str, bool]] = []
        for item in args.get("ProcessingInputs", []):
            s3_input = item["S3Input"]
            local = job_dir / "input" / item["InputName"]
            if self._download(s3_input["S3Uri"], local) == 0:
                raise _StepFailed(step["Name"], f"ClientError: no objects under {s3_input['S3Uri']} for input {item['InputName']}")
            mounts.append((local, s3_input["LocalPath"], True))
        outputs = args.get("ProcessingOutputConfig", {}).get("Outputs", [])
        for item in outputs:
            mounts.append((root_owned_dir(job_dir / "output" / item["OutputName"]), item["S3Output"]["LocalPath"], False))
        app = args["AppSpecification"]
        job = ContainerJob(step=step["Name"], image=app["ImageUri"], entrypoint=app.get("ContainerEntrypoint"),
                           args=[str(a) for a in app.get("ContainerArguments", [])], env=self._env(args.get("Environment", {})),
                           mounts=mounts, timeout_s=float(args.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 3600)))
        self._run(job)
        for item in outputs:
            self._upload(job_dir / "output" / item["OutputName"], item["S3Output"]["S3Uri"])
        self._property_files[step["Name"]] = {
            pf["PropertyFileName"]: {"uri": next(o["S3Output"]["S3Uri"] for o in outputs if o["OutputName"] == pf["OutputName"]), "path": pf["FilePath"]}
            for pf in step.get("PropertyFiles", [])
        }
        return {"ProcessingJobStatus": "Completed",
                "ProcessingOutputConfig": {"Outputs": {o["OutputName"]: o for o in outputs}},
                "ProcessingInputs": {i["InputName"]: i for i in args.get("ProcessingInputs", [])}}

    def _training(self, step: Mapping[str, Any], job_dir: Path) -> dict[str, Any]:
        args = self.resolve(step["Arguments"])
        job_name = f"pipelines-{self.execution.execution_id}-{step['Name']}"[:63]
        config = root_owned_dir(job_dir / "input" / "config")
        hyperparameters = args.get("HyperParameters", {})
        not_strings = sorted(k for k, v in hyperparameters.items() if not isinstance(v, str))
        if not_strings:
            raise _StepFailed(step["Name"], f"ValidationException: HyperParameters must be strings: {', '.join(not_strings)}")
        (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
        channels = {c["ChannelName"]: c for c in args.get("InputDataConfig", [])}
        (config / "inputdataconfig.json").write_text(json.dumps({name: {"TrainingInputMode": c.get("InputMode", "File")} for name, c in channels.items()}))
        (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
        mounts: list[tuple[Path, str, bool]] = [(config, "/opt/ml/input/config", True)]
        for name, channel in channels.items():
            local = job_dir / "data" / name
            uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
            if self._download(uri, local) == 0:
                raise _StepFailed(step["Name"], f"ClientError: no objects under {uri} for channel {name}")
            mounts.append((local, f"/opt/ml/input/data/{name}", True))
        model = root_owned_dir(job_dir / "model")
        mounts += [(model, "/opt/ml/model", False), (root_owned_dir(job_dir / "output"), "/opt/ml/output", False)]
        env = self._env(args.get("Environment", {})) | {
            "TRAINING_JOB_NAME": job_name, "TRAINING_JOB_ARN": f"arn:aws:sagemaker:local:000000000000:training-job/{job_name.lower()}"}
        spec = args["AlgorithmSpecification"]
        job = ContainerJob(step=step["Name"], image=spec["TrainingImage"], entrypoint=spec.get("ContainerEntrypoint"),
                           args=spec.get("ContainerArguments", ["train"]), env=env, mounts=mounts,
                           timeout_s=float(args.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400)))
        self._run(job)
        output = args["OutputDataConfig"]
        if output.get("CompressionType", "GZIP") != "NONE":
            raise DefinitionError(f"step {step['Name']}: only CompressionType NONE is executed locally (the gate reads the model as a folder)")
        artifacts = f"{output['S3OutputPath'].rstrip('/')}/{job_name}/output/model/"
        self._upload(model, artifacts)
        return {"TrainingJobName": job_name, "TrainingJobStatus": "Completed", "ModelArtifacts": {"S3ModelArtifacts": artifacts}}

    def _run(self, job: ContainerJob) -> None:
        code, logs = self.runner(job)
        if code != 0:
            tail = "\n".join(logs.strip().splitlines()[-15:])
            raise _StepFailed(job.step, f"AlgorithmError: the container exited {code}\n{tail}")

    def _ordered(self, steps: list[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        """Steps in an order that respects every property reference and ``DependsOn``."""
        names = {step["Name"] for step in steps}
        pending = list(steps)
        done: set[str] = set()
        while pending:
            for step in pending:
                needs = ({ref for ref in re.findall(r'"Steps\.([^."\[]+)', json.dumps(step)) if ref != step["Name"]}
                         | set(step.get("DependsOn", []))) & names
                if needs <= done:
                    pending.remove(step)
                    done.add(step["Name"])
                    yield step
                    break
            else:
                raise DefinitionError(f"steps {', '.join(s['Name'] for s in pending)} depend on each other in a cycle")

    def run(self) -> LocalExecution:
        """Run every step; the execution ends Succeeded, or Failed with the failing step and reason."""
        try:
            self._run_steps(self.definition.get("Steps", []))
        except _StepFailed as failed:
            self.execution.status = "Failed"
            self.execution.failed_step = failed.step
            self.execution.failure_reason = failed.reason
        else:
            self.execution.status = "Succeeded"
        return self.execution

    def _run_steps(self, steps: list[Mapping[str, Any]]) -> None:
        for step in self._ordered(steps):
            outcome = StepOutcome(step["Name"], step["Type"], "Executing")
            self.execution.steps.append(outcome)
            self.log(f"{step['Name']} ({step['Type']}) ...")
            started = time.monotonic()
            branch: list[Mapping[str, Any]] = []
            try:
                branch = self._run_step(step, outcome)
            except _StepFailed as failed:
                outcome.status, outcome.detail = "Failed", failed.reason
                raise
            except DefinitionError as exc:
                outcome.status, outcome.detail = "Failed", str(exc)
                raise _StepFailed(step["Name"], str(exc)) from exc
            finally:
                outcome.seconds = time.monotonic() - started
            self.log(f"{step['Name']}: {outcome.status} in {outcome.seconds:.1f} s{(' - ' + outcome.detail) if outcome.detail else ''}")
            if branch:
                self._run_steps(branch)

    def _run_step(self, step: Mapping[str, Any], outcome: StepOutcome) -> list[Mapping[str, Any]]:
        """Run one step; a Condition returns the branch to run next (timed on its own)."""
        kind = step["Type"]
        job_dir = self.workdir / self.execution.execution_id / step["Name"]
        if kind == "Processing":
            self.execution.properties[step["Name"]] = self._processing(step, job_dir)
        elif kind == "Training":
            self.execution.properties[step["Name"]] = self._training(step, job_dir)
        elif kind == "Condition":
            outcome_value = all(self._condition(c) for c in step["Arguments"]["Conditions"])
            self.execution.properties[step["Name"]] = {"Outcome": outcome_value}
            outcome.detail = f"outcome {str(outcome_value).lower()}"
            outcome.status = "Succeeded"
            return list(step["Arguments"]["IfSteps" if outcome_value else "ElseSteps"])
        elif kind == "Fail":
            message = self._join_text(self.resolve(step["Arguments"].get("ErrorMessage", "")))
            raise _StepFailed(step["Name"], message)
        else:
            raise DefinitionError(f"step {step['Name']}: type {kind} is not executed locally")
        outcome.status = "Succeeded"
        return []


def podman_runner(log_dir: Path, *, network: str = "host") -> ContainerRunner:
    """A :class:`ContainerRunner` that runs each job with podman, logs kept under ``log_dir``.

    Jobs share the host's network so they reach the S3 stand-in and the tracking server
    on 127.0.0.1 (SageMaker's jobs run in the VPC, where both are reachable).
    """
    from pipeline.containers import run_to_completion

    def run(job: ContainerJob) -> tuple[int, str]:
        options = ["--network", network]
        if job.entrypoint:
            options += ["--entrypoint", json.dumps(job.entrypoint)]
        for host, path, read_only in job.mounts:
            options += ["-v", f"{host}:{path}{':ro' if read_only else ''}"]
        result = run_to_completion(job.image, job.args, options=options, env=job.env, timeout=job.timeout_s)
        logs = result.stdout + result.stderr
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / f"{job.step}.log").write_text(logs)
        return result.returncode, logs

    return run


def clean(workdir: Path) -> None:
    """Remove a local execution's staging folders (inputs, outputs and models it copied)."""
    shutil.rmtree(workdir, ignore_errors=True)
