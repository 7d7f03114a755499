"""``python -m pipeline deliver STAGE``: each CodeBuild stage of the DeliveryPipeline, by hand.

The buildspecs in ``buildspecs/`` run exactly these commands, so a person can rerun
any stage from a laptop (with AWS credentials and kubectl access) and see the same
output. Stages: ``build-images`` (build, push, wait for the ECR scan, refuse critical
findings, write ``images.json``), ``train`` (start the SageMaker pipeline and wait; a
gate refusal exits 3 with the gate report), ``deploy`` (canary of the champion on the
Argo Rollout, or ``--local`` beside the local champion), ``smoke-test``, and
``rehearse`` (the whole sequence locally). ``--endpoint-url`` points every AWS call at
another endpoint (moto on 127.0.0.1), and ``--sns-topic`` publishes each outcome.
Exit codes: ``pipeline/exit_codes.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipeline.exit_codes import ExitCode
from pipeline import schema



def _model_name_default() -> str:
    """Every CodeBuild project of the DeliveryPipeline sets MODEL_NAME (infra/delivery_pipeline.py)."""
    return os.environ.get("MODEL_NAME") or schema.DEFAULT_MODEL_NAME


def add_parser(subparsers: Any) -> None:
    """Register ``deliver`` and its stage subcommands."""
    parser = subparsers.add_parser("deliver", help="run one delivery stage (as CodeBuild does) or rehearse them all locally", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--endpoint-url", default=os.environ.get("MLOPS_AWS_ENDPOINT_URL"), help="AWS endpoint for every call (moto on 127.0.0.1); default: AWS")
        p.add_argument("--sns-topic", default=os.environ.get("DELIVERY_SNS_TOPIC_ARN"), help="SNS topic ARN that receives the stage outcome")
        p.add_argument("--stack", default=os.environ.get("PULUMI_STACK", "dev"), help="stack name (dev, prod): labels notifications, picks canary config")

    build = stages.add_parser("build-images", help="build and push the training and serving images; refuse critical scan findings")
    common(build)
    build.add_argument("--registry", default=os.environ.get("ECR_REGISTRY"), help="ECR registry host, ACCOUNT.dkr.ecr.REGION.amazonaws.com")
    build.add_argument("--training-repository", default=os.environ.get("TRAINING_REPOSITORY", "mlops-training"))
    build.add_argument("--serving-repository", default=os.environ.get("SERVING_REPOSITORY", "mlops-serving"))
    build.add_argument("--tag", default=os.environ.get("CODEBUILD_RESOLVED_SOURCE_VERSION", "local"), help="image tag (the git commit; tags are immutable)")
    build.add_argument("--skip-build", action="store_true", help="only resolve digests and judge scans of already-pushed tags")
    build.add_argument("--fail-on", default="CRITICAL", help="comma-separated severities that refuse the image (default: CRITICAL)")
    build.add_argument("--scan-timeout-s", type=float, default=900.0)
    build.add_argument("--out", type=Path, default=Path("images.json"), help="where to write the image digests for later stages")
    build.set_defaults(func=build_images_command)

    train = stages.add_parser("train", help="start the SageMaker pipeline execution and wait; exit 3 on gate refusal")
    common(train)
    train.add_argument("--pipeline-name", default=os.environ.get("SAGEMAKER_PIPELINE_NAME"), help="the SageMaker pipeline to start (required unless --local)")
    train.add_argument("--artifacts-prefix", default=os.environ.get("PIPELINE_ARTIFACTS_PREFIX"), help="s3:// prefix the pipeline writes under (to print the gate report)")
    train.add_argument("--git-commit", default=os.environ.get("CODEBUILD_RESOLVED_SOURCE_VERSION", "unknown"))
    train.add_argument("--images", type=Path, default=None, help="images.json from build-images: the training (and processing) and serving digests this execution runs; without it the digests known at `pulumi up` run")
    train.add_argument("--input-data", default=None, help="the execution's InputDataUri (default: the latest push under --data-uri)")
    train.add_argument("--data-uri", default=os.environ.get("PIPELINE_DATA_URI"), help="the data prefix `deliver push-data` pushes to; the latest push there is trained on")
    train.add_argument("--timeout-s", type=float, default=4 * 3600.0)
    train.add_argument("--poll-s", type=float, default=30.0)
    train.add_argument("--local", action="store_true", help="compile --stack's definition as `pulumi up` does and execute every step here, in the images `make images` built (S3 at --endpoint-url, MLflow at --tracking-uri)")
    train.add_argument("--tracking-uri", default=None, help="(--local) the MLflow server the jobs use instead of the in-cluster one; credentials from MLFLOW_TRACKING_USERNAME/PASSWORD go into the definition's secret")
    train.add_argument("--data", type=Path, default=None, help="(--local) dataset file to push to the pipeline's InputDataUri first")
    train.add_argument("--workdir", type=Path, default=Path("build/local-execution"), help="(--local) where job inputs, outputs and logs are staged")
    train.add_argument("--model-name", default=_model_name_default(), help="registered model (default: $MODEL_NAME, set on every CodeBuild project)")
    train.add_argument("--release-out", type=Path, default=Path("release.json"), help="where to write the release (version, the champion it was gated against, image) that every later stage acts on")
    train.set_defaults(func=train_command)

    deploy = stages.add_parser("deploy", help="canary the release's candidate on the Rollout; abort and restore on any fault (champion does not move)")
    common(deploy)
    deploy.add_argument("--release", type=Path, default=None, help="release.json from the train stage: the version to canary (required on the cluster)")
    deploy.add_argument("--lease-wait-s", type=float, default=1800.0, help="how long to wait for another release of the model to finish before refusing (exit 7)")
    deploy.add_argument("--tracking-uri", default=None, help="MLflow tracking/registry URI (default: MLFLOW_TRACKING_URI, else the local store)")
    deploy.add_argument("--model-name", default=_model_name_default(), help="registered model (default: $MODEL_NAME, set on every CodeBuild project)")
    deploy.add_argument("--rollout", default=os.environ.get("ROLLOUT_NAME", "model-server"))
    deploy.add_argument("--namespace", default=os.environ.get("SERVING_NAMESPACE", "serving"))
    deploy.add_argument("--container", default="server")
    deploy.add_argument("--template-kind", choices=("deployment", "rollout"), default="deployment", help="object holding the pod template: the Rollout's workloadRef Deployment (ModelService) or the Rollout itself")
    deploy.add_argument("--images", type=Path, default=None, help="images.json from build-images (the serving image digest)")
    deploy.add_argument("--image", default=None, help="serving image by digest (overrides the version's image_digest tag)")
    deploy.add_argument("--alarm", action="append", default=[], help="CloudWatch alarm that aborts the canary when it fires (repeatable)")
    deploy.add_argument("--timeout-s", type=float, default=None, help="how long to wait for the rollout (default: 3x the stack's bake time + 10 min)")
    deploy.add_argument("--poll-s", type=float, default=15.0)
    deploy.add_argument("--local", action="store_true", help="canary on 127.0.0.1 beside the locally served champion instead of the cluster")
    deploy.add_argument("--replay-data", type=Path, default=None, help="(--local) CSV/Parquet to replay (default: the dataset)")
    deploy.add_argument("--record", type=Path, default=Path("deployment.json"), help="where to write what the deploy replaced (the SmokeTest stage's input)")
    deploy.add_argument("--kubectl-timeout-s", type=float, default=60.0, help="per kubectl call (a time-out is retried with backoff)")
    deploy.set_defaults(func=deploy_command)

    smoke = stages.add_parser("smoke-test", help="smoke-test the canaried version; promote it to champion (compare-and-set) or restore the rollout")
    common(smoke)
    smoke.add_argument("--release", type=Path, default=None, help="release.json from the train stage (with --deployment-record: the cluster path)")
    smoke.add_argument("--url", required=True, help="base URL of the model server")
    smoke.add_argument("--tracking-uri", default=None)
    smoke.add_argument("--model-name", default=_model_name_default(), help="registered model (default: $MODEL_NAME, set on every CodeBuild project)")
    smoke.add_argument("--previous-version", default=None, help="without --release: version to move the champion alias back to on failure (the laptop loop's deploy)")
    smoke.add_argument("--deployment-record", type=Path, default=None, help="deployment.json from the deploy stage: on failure the Rollout goes back to what it replaced")
    smoke.add_argument("--restore-timeout-s", type=float, default=600.0, help="how long to wait for the restored Rollout to be healthy")
    smoke.add_argument("--poll-s", type=float, default=10.0)
    smoke.set_defaults(func=smoke_command)

    push = stages.add_parser("push-data", help="upload a dataset to the pipeline's data prefix at its content address; print the URI to train on")
    common(push)
    push.add_argument("file", type=Path, help="dataset file (CSV or Parquet, optionally compressed)")
    push.add_argument("--data-uri", default=os.environ.get("PIPELINE_DATA_URI"), help="the pipeline's InputDataUri prefix, s3://BUCKET/datasets/MODEL/ (stack output dataUri)")
    push.add_argument("--out", type=Path, default=None, help="also write {\"input_data\": URI} here for `deliver train --input-data`")
    push.set_defaults(func=push_data_command)

    rehearse = stages.add_parser("rehearse", help="run the whole delivery sequence locally and print each stage's outcome")
    common(rehearse)
    rehearse.add_argument("--data", type=Path, default=None, help="training data (default: the dataset)")
    rehearse.add_argument("--tracking-uri", default=None)
    rehearse.add_argument("--model-name", default=_model_name_default(), help="registered model (default: $MODEL_NAME, set on every CodeBuild project)")
    rehearse.add_argument("--store", type=Path, default=None, help="local store folder (default: MLOPS_HOME or .mlops/)")
    rehearse.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="training hyperparameter")
    rehearse.add_argument("--gate", action="append", default=[], metavar="KEY=VALUE", help="gate threshold")
    rehearse.add_argument("--force", action="store_true", help="ignore the step cache")
    rehearse.add_argument("--image", action="append", default=[], metavar="REPOSITORY:TAG", help="(with --endpoint-url) ECR image whose scan must pass")
    rehearse.add_argument("--sagemaker-pipeline", default=None, help="(with --endpoint-url) SageMaker pipeline to start and wait for")
    rehearse.add_argument("--alarm", action="append", default=[], help="(with --endpoint-url) alarm that rolls back the canary when it fires")
    rehearse.add_argument("--replay-requests", type=int, default=200)
    rehearse.set_defaults(func=rehearse_command)


def push_data_command(args: argparse.Namespace) -> int:
    """Upload a dataset under its content address; print the prefix an execution trains on."""
    from pipeline.delivery import datasets
    from pipeline.delivery.aws import make_client

    if not args.data_uri:
        return _finish(args, "push-data", ExitCode.USAGE, "--data-uri (or PIPELINE_DATA_URI) is required")
    try:
        uri = datasets.push_dataset(make_client("s3", endpoint_url=args.endpoint_url), args.file, args.data_uri)
    except (ValueError, FileNotFoundError) as exc:
        return _finish(args, "push-data", ExitCode.USAGE, str(exc))
    if args.out is not None:
        args.out.write_text(json.dumps({"input_data": uri}) + "\n")
    print(uri)
    return _finish(args, "push-data", ExitCode.OK, f"{args.file} -> {uri}")


def _train_locally(args: argparse.Namespace) -> int:
    """``train --local``: the stack's definition executed here, step by step, in the built images."""
    from pipeline.containers import image_exists
    from pipeline.delivery import datasets, local_train
    from pipeline.delivery.aws import make_client

    problems = [flag for flag, value in (("--endpoint-url", args.endpoint_url), ("--tracking-uri", args.tracking_uri)) if not value]
    problems += [f"image {name} (run `make images`)" for name in ("training",) if not image_exists(name)]
    if problems:
        return _finish(args, "train", ExitCode.USAGE, "--local needs " + ", ".join(problems) + "; nothing was started")
    stack_def = local_train.stack_definition(args.stack)
    s3 = make_client("s3", endpoint_url=args.endpoint_url, region=local_train.LOCAL_REGION)
    input_data = args.input_data
    if args.data is not None:
        datasets.ensure_bucket(s3, stack_def.parameter_default("InputDataUri"))
        input_data = datasets.push_dataset(s3, args.data, args.input_data or stack_def.parameter_default("InputDataUri"))
        print(f"pushed {args.data} to {input_data}", flush=True)
    username, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if stack_def.credentials_secret_arn and username and password:
        local_train.seed_credentials_secret(make_client("secretsmanager", endpoint_url=args.endpoint_url, region=local_train.LOCAL_REGION),
                                            stack_def.credentials_secret_arn, username, password)
    execution = local_train.execute_locally(stack_def, s3=s3, tracking_uri=args.tracking_uri, endpoint_url=args.endpoint_url,
                                            workdir=args.workdir, git_commit=args.git_commit, input_data=input_data,
                                            log=lambda line: print(line, flush=True))
    for step in execution.steps:
        print(f"  {step.name:<16} {step.type:<10} {step.status:<9} {step.seconds:6.1f} s")
    if execution.succeeded:
        from pipeline.sagemaker_compiler import STEP_REGISTER

        registration = args.workdir / execution.execution_id / STEP_REGISTER / "output" / "registered" / "registration.json"
        try:
            written = _write_release(args, f"local-execution/{execution.execution_id}", registration.read_text(), str(registration), args.tracking_uri)
        except (OSError, ValueError) as exc:
            return _finish(args, "train", ExitCode.ERROR, f"local execution {execution.execution_id} Succeeded but its release cannot be written: {exc}")
        return _finish(args, "train", ExitCode.OK, f"local execution {execution.execution_id} Succeeded; {written}")
    if local_train.is_gate_refusal(execution):
        return _finish(args, "train", ExitCode.GATE_REFUSED, execution.failure_reason)
    return _finish(args, "train", ExitCode.ERROR, f"{execution.failed_step}: {execution.failure_reason}")


# --- helpers --------------------------------------------------------------------------


def _notify(args: argparse.Namespace, stage: str, ok: bool, detail: str) -> None:
    """Publish the outcome; a notification that cannot be sent is reported, never the
    stage's verdict (a release that succeeded must not fail on a full SNS quota)."""
    if not args.sns_topic:
        return
    from pipeline.delivery.notify import notify_stage

    try:
        notify_stage(args.sns_topic, stage, ok, detail[:4000], stack=args.stack, endpoint_url=args.endpoint_url)
    except Exception as exc:  # noqa: BLE001 - the stage's outcome stands either way
        print(f"{stage}: warning: the outcome could not be published to {args.sns_topic}: {type(exc).__name__}: {exc}", file=sys.stderr)


def _finish(args: argparse.Namespace, stage: str, code: ExitCode, detail: str) -> int:
    if getattr(args, "json", False):
        from pipeline import console

        console.emit_json({"stage": stage, "ok": code == ExitCode.OK, "exit_code": int(code),
                           "status": code.name.lower(), "detail": detail})
    else:
        stream = sys.stdout if code == ExitCode.OK else sys.stderr
        print(f"{stage}: {'ok' if code == ExitCode.OK else 'FAILED'}: {detail}", file=stream)
    _notify(args, stage, code == ExitCode.OK, detail)
    return int(code)


def _read_images(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        images = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"cannot read images file {path}: {exc}") from exc
    if not isinstance(images, dict):
        raise SystemExit(f"images file {path} must be a JSON object of role -> image, got {type(images).__name__}")
    return {str(k): str(v) for k, v in images.items()}


def _tracking_uri(value: str | None) -> str:
    from pipeline.local_store import LocalStore

    return value or os.environ.get("MLFLOW_TRACKING_URI") or LocalStore.default().tracking_uri


# --- stages ---------------------------------------------------------------------------


def build_images_command(args: argparse.Namespace) -> int:
    """Build and push both images (docker), then resolve digests and judge ECR scans.

    Idempotent per commit: an image whose commit tag ECR already holds is not rebuilt
    (the repositories are tag-immutable, so a second push would fail the stage forever);
    its digest is reused and its scan judged again."""
    from pipeline.delivery.ecr_scan import image_digest, pushed_digest, scan_findings

    if not args.registry and not args.skip_build:
        return _finish(args, "build-images", ExitCode.USAGE, "--registry (or ECR_REGISTRY) is required to push images")
    images = {"training": (args.training_repository, "training/Dockerfile"), "serving": (args.serving_repository, "serving/Dockerfile")}
    if not args.skip_build:
        for repository, dockerfile in images.values():
            ref = f"{args.registry}/{repository}:{args.tag}"
            existing = pushed_digest(repository, args.tag, endpoint_url=args.endpoint_url)
            if existing:
                print(f"{ref} is already in ECR as {existing} (an earlier attempt at this commit): not rebuilt", flush=True)
                continue
            for command in (["docker", "build", "--pull", "-f", dockerfile, "-t", ref, "."], ["docker", "push", ref]):
                print("+ " + " ".join(command), flush=True)
                if subprocess.run(command, check=False).returncode != 0:
                    return _finish(args, "build-images", ExitCode.ERROR, f"{' '.join(command[:2])} of {ref} failed")
    written: dict[str, str] = {}
    refused: list[str] = []
    fail_on = [s.strip() for s in args.fail_on.split(",") if s.strip()]
    for role, (repository, _) in images.items():
        digest = image_digest(repository, args.tag, endpoint_url=args.endpoint_url)
        result = scan_findings(repository, digest, fail_on=fail_on, timeout_s=args.scan_timeout_s, endpoint_url=args.endpoint_url)
        print(result.render(), flush=True)
        written[role] = f"{args.registry}/{repository}@{digest}" if args.registry else f"{repository}@{digest}"
        if not result.passed:
            refused.append(result.render())
    if refused:
        return _finish(args, "build-images", ExitCode.ERROR, "scan findings block the release: " + "; ".join(refused))
    args.out.write_text(json.dumps(written, indent=2) + "\n")
    return _finish(args, "build-images", ExitCode.OK, f"images scanned clean, digests in {args.out}")


def train_command(args: argparse.Namespace) -> int:
    """Start the SageMaker pipeline, wait, and print the gate report either way."""
    from pipeline.delivery import gate_report, sagemaker_runs

    if args.local:
        return _train_locally(args)
    if not args.pipeline_name:
        return _finish(args, "train", ExitCode.USAGE, "--pipeline-name (or SAGEMAKER_PIPELINE_NAME) is required; nothing was started")

    images = _read_images(args.images) if args.images is not None else None
    if not args.input_data and args.data_uri:
        from pipeline.delivery import datasets
        from pipeline.delivery.aws import make_client

        try:
            args.input_data = datasets.latest_push(make_client("s3", endpoint_url=args.endpoint_url), args.data_uri)
        except (datasets.NoDatasetPushed, ValueError) as exc:
            return _finish(args, "train", ExitCode.USAGE, f"{exc}; nothing was started")
    try:
        parameters = sagemaker_runs.execution_parameters(images, git_commit=args.git_commit, input_data=args.input_data)
    except ValueError as exc:
        return _finish(args, "train", ExitCode.USAGE, f"{exc} ({args.images}); nothing was started")
    print("parameters: " + ", ".join(f"{k}={v}" for k, v in sorted(parameters.items())), flush=True)
    arn = sagemaker_runs.start_execution(args.pipeline_name, parameters, display_name=f"commit-{args.git_commit[:12]}", endpoint_url=args.endpoint_url)
    print(f"started {arn}", flush=True)

    def report() -> str:
        if not args.artifacts_prefix:
            return ""
        try:
            return gate_report.read_gate_outcome(gate_report.evaluation_uri(args.artifacts_prefix, arn), endpoint_url=args.endpoint_url).render()
        except Exception as exc:  # the report is context; its absence must not mask the outcome
            return f"(gate report unavailable: {type(exc).__name__}: {exc})"

    try:
        result = sagemaker_runs.wait_for_execution(arn, timeout_s=args.timeout_s, poll_s=args.poll_s, endpoint_url=args.endpoint_url)
    except sagemaker_runs.ExecutionFailed as failed:
        try:
            steps = sagemaker_runs.failed_step_reasons(arn, endpoint_url=args.endpoint_url)
        except Exception:  # e.g. moto: list_pipeline_execution_steps is not implemented
            steps = {}
        text = report()
        if text:
            print(text, file=sys.stderr)
        refusal = sagemaker_runs.gate_refusal_reason(steps, failed.reason)
        if refusal is not None:
            return _finish(args, "train", ExitCode.GATE_REFUSED, f"gate refused the challenger: {refusal}")
        detail = "; ".join(f"{k}: {v}" for k, v in steps.items()) or failed.reason
        return _finish(args, "train", ExitCode.ERROR, f"{failed.status}: {detail}")
    text = report()
    if text:
        print(text)
    if not args.artifacts_prefix:
        return _finish(args, "train", ExitCode.ERROR, f"{arn} {result.status}, but without --artifacts-prefix its registration (and so release.json) cannot be read")
    from pipeline.delivery.aws import make_client
    from pipeline.delivery.release import registration_uri

    uri = registration_uri(args.artifacts_prefix, arn)
    try:
        bucket, key = uri[5:].split("/", 1)
        body = make_client("s3", endpoint_url=args.endpoint_url).get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        written = _write_release(args, arn, body, uri, None, images)
    except Exception as exc:  # noqa: BLE001 - any failure to name the release fails the stage, named
        return _finish(args, "train", ExitCode.ERROR, f"{arn} {result.status}, but its release cannot be written: {type(exc).__name__}: {exc}")
    return _finish(args, "train", ExitCode.OK, f"{arn} {result.status} in {result.waited_s:.0f} s; {written}")


def _write_release(args: argparse.Namespace, release_id: str, registration: str, source: str, tracking_uri: str | None,
                   images: dict[str, str] | None = None) -> str:
    """Write ``--release-out`` from the register step's ``registration.json``: the
    version, the champion it was gated against, the serving image. Says what it wrote."""
    from pipeline.delivery.release import registered_version, release_from_registry

    version = registered_version(registration, source)
    release = release_from_registry(_tracking_uri(tracking_uri), args.model_name, version, release_id=release_id,
                                    git_commit=args.git_commit, image=(images or {}).get("serving"))
    release.write(args.release_out)
    return (f"candidate {release.model_name} v{release.version} (gated against v{release.base_champion or 'nothing'}) "
            f"written to {args.release_out}")


def deploy_command(args: argparse.Namespace) -> int:
    """Canary the release's candidate on the cluster (or the champion locally)."""
    from pipeline.delivery.canary import canary_config_from_stack
    from pipeline.delivery.errors import StageFailed

    tracking_uri = _tracking_uri(args.tracking_uri)
    if args.local:
        return _deploy_local(args, tracking_uri)
    from pipeline.delivery.alarms import alarm_states, firing
    from pipeline.delivery.deploy_cluster import Cluster, deploy_release
    from pipeline.delivery.release import ReleaseFileError, read_release
    from pipeline.delivery.rollout import RolloutTarget, kubectl

    if args.release is None:
        return _finish(args, "deploy", ExitCode.USAGE, "--release (the train stage's release.json) is required: the deploy acts on exactly that version; nothing deployed")
    try:
        release = read_release(args.release)
    except ReleaseFileError as exc:
        return _finish(args, "deploy", ExitCode.USAGE, f"{exc}; nothing deployed")
    if release.model_name != args.model_name:
        return _finish(args, "deploy", ExitCode.USAGE, f"the release is for {release.model_name!r}, not --model-name {args.model_name!r}; nothing deployed")
    config = canary_config_from_stack(args.stack)
    timeout = args.timeout_s or 3 * config.bake_s + 600

    def check_alarms() -> list[str]:
        return [a.name for a in firing(alarm_states(args.alarm, endpoint_url=args.endpoint_url))]

    def run(argv: list[str], **kwargs: object) -> str:
        return kubectl(argv, timeout_s=args.kubectl_timeout_s)

    image = args.image or _read_images(args.images).get("serving")
    if image and release.image and image != release.image:
        return _finish(args, "deploy", ExitCode.USAGE, f"--image/--images {image} disagrees with the release's image {release.image}; nothing deployed")
    if image and not release.image:
        from dataclasses import replace

        release = replace(release, image=image)
    cluster = Cluster(RolloutTarget(name=args.rollout, namespace=args.namespace, container=args.container, template_kind=args.template_kind),
                      run=run, poll_s=args.poll_s, log=lambda line: print(line, flush=True))
    try:
        result = deploy_release(release, tracking_uri=tracking_uri, cluster=cluster, timeout_s=timeout,
                                check_alarms=check_alarms if args.alarm else None, lease_wait_s=args.lease_wait_s)
    except StageFailed as failed:
        return _finish(args, "deploy", failed.exit_code, failed.reason)
    result.record.write(args.record)
    return _finish(args, "deploy", ExitCode.OK, f"{result.action}: {result.message}; record in {args.record}")


def _deploy_local(args: argparse.Namespace, tracking_uri: str) -> int:
    """Local canary: the champion against the version the local store last deployed."""
    from pipeline.delivery import registry
    from pipeline.delivery.canary import canary_config_from_stack
    from pipeline.delivery.local_canary import replay_requests, run_local_canary
    from pipeline.delivery.rehearsal import default_smoke_test
    from pipeline.local_store import LocalStore
    from pipeline.schema import DEFAULT_DATASET

    store = LocalStore.default().ensure()
    state_file = store.root / "deployed.json"
    deployed = json.loads(state_file.read_text()).get(args.model_name) if state_file.is_file() else None
    champion = registry.current_champion(tracking_uri, args.model_name)
    if champion is None:
        return _finish(args, "deploy", ExitCode.ERROR, f"{args.model_name} has no champion alias")
    if deployed == champion.version:
        return _finish(args, "deploy", ExitCode.OK, f"nothing-to-do: v{champion.version} already deployed; champion did not move")
    result = run_local_canary(
        tracking_uri=tracking_uri, model_name=args.model_name, new_version=champion.version, previous_version=deployed,
        requests=replay_requests(args.replay_data or DEFAULT_DATASET), config=canary_config_from_stack(args.stack, min_requests=20),
        log_dir=store.reports_dir / "canary", smoke_test=default_smoke_test(tracking_uri, args.model_name),
    )
    print(result.verdict.render())
    if result.rolled_back:
        why = "; ".join(result.verdict.reasons) or f"smoke test failed: {result.smoke}"
        return _finish(args, "deploy", ExitCode.DEPLOY_FAILED, f"{why}; {result.registry_action}")
    state = json.loads(state_file.read_text()) if state_file.is_file() else {}
    state[args.model_name] = champion.version
    state_file.write_text(json.dumps(state, indent=2) + "\n")
    return _finish(args, "deploy", ExitCode.OK, f"promoted: v{champion.version} ({result.registry_action})")


def smoke_command(args: argparse.Namespace) -> int:
    """Smoke-test ``--url``; on the cluster path promote the release or restore the Rollout.

    With ``--release`` and ``--deployment-record`` (the CodePipeline path) both files
    are validated before anything runs (exit 2, nothing touched). A passing smoke test
    moves ``champion`` to the release's version by compare-and-set (exit 7 if another
    release moved it: the Rollout is restored). A failing one restores the Rollout to the
    recorded container; ``champion`` never moved (exit 5; 1 when the Rollout could not
    be restored: a person must look). Without them (the laptop loop's deploy, where
    ``champion`` moved first), a failure moves the alias back to ``--previous-version``.
    """
    from pipeline.delivery import registry
    from pipeline.delivery.rehearsal import default_smoke_test

    tracking_uri = _tracking_uri(args.tracking_uri)
    check = default_smoke_test(tracking_uri, args.model_name)
    if args.release is None and args.deployment_record is None:
        champion = registry.current_champion(tracking_uri, args.model_name)
        result = check(args.url, champion.version if champion else "")
        if getattr(result, "passed", False):
            return _finish(args, "smoke-test", ExitCode.OK, str(result))
        action = registry.restore_champion(tracking_uri, args.model_name, args.previous_version) if args.previous_version else "alias left as is (no --previous-version)"
        return _finish(args, "smoke-test", ExitCode.DEPLOY_FAILED, f"{result}; {action}")
    from pipeline.delivery.deploy_cluster import Cluster, finish_release
    from pipeline.delivery.deploy_record import DeploymentRecordError, read_record
    from pipeline.delivery.errors import StageFailed
    from pipeline.delivery.release import ReleaseFileError, read_release

    if args.release is None or args.deployment_record is None:
        return _finish(args, "smoke-test", ExitCode.USAGE, "--release and --deployment-record go together (the cluster path); nothing was smoke-tested or restored")
    try:
        release, record = read_release(args.release), read_record(args.deployment_record)
    except (ReleaseFileError, DeploymentRecordError) as exc:
        return _finish(args, "smoke-test", ExitCode.USAGE, f"{exc}; nothing was smoke-tested or restored")
    if release.model_name != args.model_name:
        return _finish(args, "smoke-test", ExitCode.USAGE, f"the release is for {release.model_name!r}, not --model-name {args.model_name!r}; nothing was smoke-tested or restored")
    cluster = Cluster(record.target, poll_s=args.poll_s, log=lambda line: print(line, file=sys.stderr, flush=True))
    try:
        promoted = finish_release(release, record, tracking_uri=tracking_uri, url=args.url, smoke_check=check, cluster=cluster,
                                  restore_timeout_s=args.restore_timeout_s)
    except StageFailed as failed:
        return _finish(args, "smoke-test", failed.exit_code, failed.reason)
    return _finish(args, "smoke-test", ExitCode.OK, promoted)


def rehearse_command(args: argparse.Namespace) -> int:
    """The whole delivery sequence locally; prints each stage and exits with the first failure's code."""
    from pipeline.commands.run import _key_values
    from pipeline.delivery.canary import canary_config_from_stack
    from pipeline.delivery.rehearsal import RehearsalConfig, rehearse
    from pipeline.local_store import LocalStore
    from pipeline.runner import RunConfig
    from pipeline.schema import DEFAULT_DATASET
    from pipeline.project import active_thresholds
    from training.model import Hyperparameters

    store = LocalStore(args.store.resolve()) if args.store else LocalStore.default()
    store.ensure()
    data = args.data or DEFAULT_DATASET
    run_config = RunConfig(
        data=data, tracking_uri=args.tracking_uri, model_name=args.model_name, store=store, force=args.force,
        hyperparameters=Hyperparameters.from_mapping(_key_values(args.param, "--param")) if args.param else None,
        gate=active_thresholds(_key_values(args.gate, "--gate")) if args.gate else None,
    )
    images = []
    for item in args.image:
        repository, sep, tag = item.rpartition(":")
        if not sep or not repository:
            return _finish(args, "rehearse", ExitCode.USAGE, f"--image expects REPOSITORY:TAG, got {item!r}")
        images.append((repository, tag))
    config = RehearsalConfig(
        run_config=run_config, canary=canary_config_from_stack(args.stack, min_requests=20), replay_data=data,
        log_dir=store.reports_dir / "rehearsal", replay_requests=args.replay_requests, aws_endpoint=args.endpoint_url,
        images=images, sagemaker_pipeline=args.sagemaker_pipeline, alarm_names=args.alarm,
    )
    result = rehearse(config)
    failed = result.failed_stage
    return _finish(args, "rehearse", result.exit_code, f"stopped at {failed.stage}: {failed.detail}" if failed else "every stage passed")
