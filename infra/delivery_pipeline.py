"""DeliveryPipeline: CodePipeline V2 that carries every push to the cluster.

Source (GitHub through a CodeConnections connection: no long-lived keys) -> Test ->
BuildImages -> Train (runs the SageMaker pipeline and waits; a gate refusal fails the
stage) -> Approval (only where the stack asks; prod always) -> Deploy (canary through
Argo Rollouts) -> SmokeTest. Each CodeBuild project runs a buildspec from
``buildspecs/`` (docs/contracts.md, "Delivery stages"), has its own least-privilege
role, logs to a KMS-encrypted log group, and encrypts artifacts with the pipeline's
customer key. Only the image-building project runs privileged.

The buildspecs' side of the contract: ``STAGES`` lists the environment each one reads
(named in each buildspec's header); BuildImages writes the ``images`` artifact
(``images.json``: the pushed digests) that Train (as the SageMaker execution's image
parameters) and Deploy take as a second input; Deploy writes the ``deployment``
artifact (``deployment.json``: the Rollout and what it served before) that SmokeTest
takes to restore the workload when the smoke test fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import policies
from infra.build_storage import build_storage
from infra.common import role
from infra.kube import DEPLOYER_GROUP
from infra.naming import aws_name

BUILD_IMAGE = "aws/codebuild/amazonlinux-x86_64-standard:5.0"


@dataclass(frozen=True)
class Stage:
    """One CodeBuild stage: its buildspec, artifacts, environment and what its role needs."""

    name: str
    buildspec: str
    env: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ("source",)
    outputs: tuple[str, ...] = ()
    privileged: bool = False
    in_vpc: bool = False
    cluster_access: bool = False
    timeout_minutes: int = 60


MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
STAGES: tuple[Stage, ...] = (
    Stage("Test", "buildspecs/test.yml", timeout_minutes=30),
    # Privileged: Docker-in-Docker needs it to build and push the training and serving
    # images (CKV_AWS_316); no other project gets it.
    Stage("BuildImages", "buildspecs/build_images.yml", privileged=True, outputs=("images",),
          env=("ECR_REGISTRY", "TRAINING_REPOSITORY", "SERVING_REPOSITORY",
               "DELIVERY_SNS_TOPIC_ARN")),
    # Train writes "release" (release.json: the candidate version, the champion it was
    # gated against, the serving image): every later stage acts on exactly that version.
    Stage("Train", "buildspecs/train.yml", in_vpc=True, inputs=("source", "images"), outputs=("release",),
          env=("SAGEMAKER_PIPELINE_NAME", "PIPELINE_ARTIFACTS_PREFIX", "PIPELINE_DATA_URI", "DELIVERY_SNS_TOPIC_ARN",
               *MLFLOW_ENV), timeout_minutes=480),
    # Deploy writes "deployment" (deployment.json: what it replaced) so that a failed
    # smoke test can put the Rollout back, not only the alias.
    # KUBECTL_VERSION: the kubectl the buildspec installs, of the cluster's own minor
    # (the CodeBuild image's kubectl is outside the supported version skew).
    Stage("Deploy", "buildspecs/deploy.yml", in_vpc=True, cluster_access=True,
          inputs=("source", "images", "release"), outputs=("deployment",),
          env=("EKS_CLUSTER_NAME", "KUBECTL_VERSION", "SERVING_NAMESPACE", "ROLLOUT_NAME",
               "SERVING_ALARMS", "DELIVERY_SNS_TOPIC_ARN", *MLFLOW_ENV), timeout_minutes=90),
    Stage("SmokeTest", "buildspecs/smoke_test.yml", in_vpc=True, cluster_access=True,
          inputs=("source", "deployment", "release"),
          env=("SERVING_URL", "EKS_CLUSTER_NAME", "KUBECTL_VERSION", "DELIVERY_SNS_TOPIC_ARN",
               *MLFLOW_ENV),
          timeout_minutes=30),
)
"""The stages and the environment each buildspec reads (see each buildspec's header)."""
TRAIN_VARIABLES = "TrainVariables"
"""Namespace of the Train action's exported variables (buildspecs/train.yml)."""
SECRET_ENV = frozenset({"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"})


def pipeline_name(prefix: str) -> str:
    """The CodePipeline's name, known before it exists (the retrain rule targets it)."""
    return aws_name("codebuild", prefix, "delivery")


@dataclass
class DeliveryPipelineArgs:
    """What the pipeline builds from, what it runs, and what it deploys to."""

    prefix: str
    stack: str
    region: str
    account_id: pulumi.Input[str]
    github_repository: str
    github_branch: str
    approval_required: bool
    model_name: str
    serving_namespace: str
    rollout_name: str
    serving_url: pulumi.Input[str]
    serving_alarm_names: list[str]
    alarm_topic_arn: pulumi.Input[str]
    alarm_topic_kms_key_arn: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    vpc_cidr: str
    private_subnet_ids: list[pulumi.Input[str]]
    cluster_name: pulumi.Input[str]
    cluster_arn: pulumi.Input[str]
    kubectl_version: str
    """The kubectl release (x.y.z) the cluster-facing stages install: the cluster's minor."""
    repository_names: dict[str, pulumi.Input[str]]
    repository_arns: dict[str, pulumi.Input[str]]
    registry_kms_key_arn: pulumi.Input[str]
    sagemaker_pipeline_arn: pulumi.Input[str]
    sagemaker_pipeline_name: pulumi.Input[str]
    sagemaker_artifacts_prefix: pulumi.Input[str]
    data_uri: pulumi.Input[str]
    """Where `deliver push-data` puts datasets; the Train stage trains on the latest push."""
    sagemaker_bucket_arn: pulumi.Input[str]
    sagemaker_kms_key_arn: pulumi.Input[str]
    mlflow_tracking_uri: pulumi.Input[str]
    mlflow_credentials_secret_arn: pulumi.Input[str]
    mlflow_kms_key_arn: pulumi.Input[str]
    log_retention_days: int
    protect: bool
    tags: dict[str, str] = field(default_factory=dict)


def codebuild_policy(stage: Stage, *, log_group_arn: str, bucket_arn: str, key_arn: str,
                     region: str, account_id: str, repository_arns: list[str],
                     registry_key_arn: str, sagemaker_pipeline_arn: str,
                     sagemaker_bucket_arn: str, sagemaker_key_arn: str, cluster_arn: str,
                     mlflow_secret_arn: str, mlflow_key_arn: str, topic_arn: str,
                     topic_key_arn: str, alarm_names: list[str], subnet_ids: list[str],
                     security_group_id: str) -> dict[str, Any]:
    """The least-privilege policy of one stage's CodeBuild role.

    Every stage writes its own logs and reads/writes pipeline artifacts. BuildImages
    adds ECR push on the platform's repositories; Train adds running one SageMaker
    pipeline and reading its evaluation report; Deploy and SmokeTest add describing one
    EKS cluster (Kubernetes rights come from the access entry's group, bound to a Role in
    the serving namespace) and Deploy reads the serving alarms it watches during the
    bake. Stages that talk to MLflow read its credentials secret; stages that report
    publish to the alarm topic, which is KMS-encrypted: SNS encrypts each message with a
    data key the publisher must be allowed to generate (without it Publish fails).
    Stages in the VPC get CodeBuild's ENI rights in AWS's documented shape: the
    ``ec2:AuthorizedService``/``ec2:Subnet`` conditions sit on
    ``CreateNetworkInterfacePermission``, the only action that has those keys.
    """
    statements: list[dict[str, Any]] = [policies.logs_write(log_group_arn),
                                         *policies.s3_read_write(bucket_arn, key_arn)]
    if stage.name == "BuildImages":
        statements += policies.ecr_push(repository_arns, registry_key_arn)
    if stage.name == "Train":
        statements.append(policies.run_sagemaker_pipeline(sagemaker_pipeline_arn))
        statements += policies.s3_read(sagemaker_bucket_arn, sagemaker_key_arn)
    if stage.cluster_access:
        statements.append({"Effect": "Allow", "Action": ["eks:DescribeCluster"],
                           "Resource": cluster_arn})
    if "SERVING_ALARMS" in stage.env:
        statements.append({"Effect": "Allow", "Action": ["cloudwatch:DescribeAlarms"],
                           "Resource": [f"arn:aws:cloudwatch:{region}:{account_id}:alarm:{name}"
                                        for name in alarm_names]})
    if "DELIVERY_SNS_TOPIC_ARN" in stage.env:
        statements.append({"Effect": "Allow", "Action": ["sns:Publish"], "Resource": topic_arn})
        statements.append({"Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                           "Resource": topic_key_arn})
    if set(MLFLOW_ENV) & set(stage.env):
        statements.append({"Effect": "Allow", "Action": [
            "secretsmanager:GetSecretValue"], "Resource": mlflow_secret_arn})
        statements.append({"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": mlflow_key_arn})
    if stage.in_vpc:
        ec2 = f"arn:aws:ec2:{region}:{account_id}"
        subnets = [f"{ec2}:subnet/{subnet}" for subnet in subnet_ids]
        # CodeBuild in a VPC manages its own ENIs; the Describe calls have no resource form.
        statements.append({"Effect": "Allow", "Action": [
            "ec2:DescribeNetworkInterfaces", "ec2:DescribeDhcpOptions", "ec2:DescribeSubnets",
            "ec2:DescribeSecurityGroups", "ec2:DescribeVpcs"], "Resource": "*"})
        statements.append({"Effect": "Allow", "Action": ["ec2:CreateNetworkInterface"],
                           "Resource": [f"{ec2}:network-interface/*", *subnets,
                                        f"{ec2}:security-group/{security_group_id}"]})
        statements.append({"Effect": "Allow", "Action": ["ec2:DeleteNetworkInterface"],
                           "Resource": f"{ec2}:network-interface/*"})
        statements.append({"Effect": "Allow", "Action": ["ec2:CreateNetworkInterfacePermission"],
                           "Resource": f"{ec2}:network-interface/*",
                           "Condition": {
                               "StringEquals": {"ec2:AuthorizedService": "codebuild.amazonaws.com"},
                               # ec2:Subnet holds ARNs: compared as ARNs.
                               "ArnEquals": {"ec2:Subnet": subnets}}})
    return {"Version": "2012-10-17", "Statement": statements}


def stage_layout(approval_required: bool) -> list[str]:
    """The pipeline's stage names in order; Approval sits between Train and Deploy."""
    names = ["Source", "Test", "BuildImages", "Train"]
    if approval_required:
        names.append("Approval")
    return names + ["Deploy", "SmokeTest"]


class DeliveryPipeline(pulumi.ComponentResource):
    """CodeConnections source, CodeBuild stages, CodePipeline V2."""

    pipeline_name: pulumi.Output[str]
    pipeline_arn: pulumi.Output[str]
    connection_arn: pulumi.Output[str]
    project_names: dict[str, pulumi.Output[str]]
    build_security_group_id: pulumi.Output[str]
    """The VPC build jobs' group: the cluster admits it to its private API endpoint."""

    def __init__(self, name: str, args: DeliveryPipelineArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:delivery_pipeline:DeliveryPipeline", name, None, opts)
        tags = args.tags
        here = pulumi.ResourceOptions(parent=self)
        storage = build_storage(name, description=f"{name} artifacts and build logs", account_id=args.account_id,
                                region=args.region, protect=args.protect, log_retention_days=args.log_retention_days,
                                tags=tags, opts=here)
        key, artifacts, logs = storage.key, storage.artifacts, storage.logs
        # Created PENDING: someone must finish the GitHub handshake once in the console
        # (AWS quirk: the OAuth step cannot be automated). docs/infra.md says how.
        connection = aws.codestarconnections.Connection(
            f"{name}-github", name=aws_name("codebuild", name, "gh")[:32], provider_type="GitHub",
            tags=tags, opts=here)
        build_sg = aws.ec2.SecurityGroup(
            f"{name}-build-sg", vpc_id=args.vpc_id,
            description="CodeBuild jobs: HTTPS and MLflow inside the VPC, HTTPS out via NAT",
            egress=[{"protocol": "tcp", "from_port": 443, "to_port": 443,
                     "cidr_blocks": ["0.0.0.0/0"],
                     "description": "HTTPS: AWS APIs, EKS endpoint, package registries"},
                    {"protocol": "tcp", "from_port": 80, "to_port": 80,
                     "cidr_blocks": [args.vpc_cidr], "description": "MLflow internal NLB"}],
            tags=tags, opts=here)

        env_values: dict[str, pulumi.Input[str]] = {
            "ECR_REGISTRY": pulumi.Output.concat(args.account_id, ".dkr.ecr.", args.region,
                                                 ".amazonaws.com"),
            "TRAINING_REPOSITORY": args.repository_names["training"],
            "SERVING_REPOSITORY": args.repository_names["serving"],
            "DELIVERY_SNS_TOPIC_ARN": args.alarm_topic_arn,
            "SAGEMAKER_PIPELINE_NAME": args.sagemaker_pipeline_name,
            "PIPELINE_ARTIFACTS_PREFIX": args.sagemaker_artifacts_prefix,
            "PIPELINE_DATA_URI": args.data_uri,
            "EKS_CLUSTER_NAME": args.cluster_name,
            "KUBECTL_VERSION": args.kubectl_version,
            "SERVING_NAMESPACE": args.serving_namespace,
            "ROLLOUT_NAME": args.rollout_name,
            "SERVING_ALARMS": " ".join(args.serving_alarm_names),
            "SERVING_URL": args.serving_url,
            "MLFLOW_TRACKING_URI": args.mlflow_tracking_uri,
            # CodeBuild resolves "<secret-arn>:<json-key>" from Secrets Manager at start.
            "MLFLOW_TRACKING_USERNAME": pulumi.Output.concat(args.mlflow_credentials_secret_arn,
                                                             ":username"),
            "MLFLOW_TRACKING_PASSWORD": pulumi.Output.concat(args.mlflow_credentials_secret_arn,
                                                             ":password"),
        }
        repo_arns = list(args.repository_arns.values())
        projects: dict[str, aws.codebuild.Project] = {}
        for stage in STAGES:
            slug = stage.name.lower()
            stage_role = role(
                f"{name}-{slug}-role", trust=policies.service_trust("codebuild.amazonaws.com"),
                policy_inputs=[logs.arn, artifacts.arn, key.arn, args.account_id,
                               args.registry_kms_key_arn, args.sagemaker_pipeline_arn,
                               args.sagemaker_bucket_arn, args.sagemaker_kms_key_arn,
                               args.cluster_arn, args.mlflow_credentials_secret_arn,
                               args.mlflow_kms_key_arn, args.alarm_topic_arn,
                               args.alarm_topic_kms_key_arn, build_sg.id,
                               pulumi.Output.all(*repo_arns),
                               pulumi.Output.all(*args.private_subnet_ids)],
                policy=lambda lg, b, k, acct, rk, sp, sb, sk, c, ms, mk, topic, tk, sg, repos,
                subnets, st=stage:
                    codebuild_policy(st, log_group_arn=lg, bucket_arn=b, key_arn=k,
                                     region=args.region, account_id=acct,
                                     repository_arns=list(repos), registry_key_arn=rk,
                                     sagemaker_pipeline_arn=sp, sagemaker_bucket_arn=sb,
                                     sagemaker_key_arn=sk, cluster_arn=c,
                                     mlflow_secret_arn=ms, mlflow_key_arn=mk, topic_arn=topic,
                                     topic_key_arn=tk, alarm_names=list(args.serving_alarm_names),
                                     subnet_ids=list(subnets), security_group_id=sg),
                tags=tags, opts=here)
            variables: list[dict[str, Any]] = [{"name": "PULUMI_STACK", "value": args.stack, "type": "PLAINTEXT"},
                         {"name": "MODEL_NAME", "value": args.model_name, "type": "PLAINTEXT"}]
            variables += [{"name": var, "value": env_values[var],
                           "type": "SECRETS_MANAGER" if var in SECRET_ENV else "PLAINTEXT"}
                          for var in stage.env]
            environment: dict[str, Any] = {
                "compute_type": "BUILD_GENERAL1_MEDIUM", "image": BUILD_IMAGE,
                "type": "LINUX_CONTAINER", "image_pull_credentials_type": "CODEBUILD",
                "privileged_mode": stage.privileged, "environment_variables": variables,
            }
            project_args: dict[str, Any] = {}
            if stage.in_vpc:
                project_args["vpc_config"] = {"vpc_id": args.vpc_id,
                                              "subnets": args.private_subnet_ids,
                                              "security_group_ids": [build_sg.id]}
            projects[stage.name] = aws.codebuild.Project(
                f"{name}-{slug}", name=aws_name("codebuild", name, slug),
                description=f"{stage.name} stage: runs {stage.buildspec}",
                service_role=stage_role.arn, build_timeout=stage.timeout_minutes,
                encryption_key=key.arn,
                artifacts={"type": "CODEPIPELINE"},
                source={"type": "CODEPIPELINE", "buildspec": stage.buildspec},
                environment=environment,
                logs_config={"cloudwatch_logs": {"status": "ENABLED", "group_name": logs.name,
                                                 "stream_name": slug},
                             "s3_logs": {"status": "DISABLED"}},
                tags=tags, opts=here, **project_args)

            if stage.cluster_access:
                # No access policy: AmazonEKSEditPolicy has no argoproj.io rules and EKS
                # access policies cannot be extended. The entry's group is bound to a Role
                # in the serving namespace (ModelService, kube.deployer_rules).
                aws.eks.AccessEntry(f"{name}-{slug}-access", cluster_name=args.cluster_name,
                                    principal_arn=stage_role.arn, type="STANDARD",
                                    kubernetes_groups=[DEPLOYER_GROUP], tags=tags, opts=here)

        pipeline_role = role(
            f"{name}-role", trust=policies.service_trust("codepipeline.amazonaws.com"),
            policy_inputs=[artifacts.arn, key.arn, connection.arn,
                           *[p.arn for p in projects.values()]],
            policy=lambda b, k, c, *projs: policies.codepipeline_policy(
                bucket_arn=b, kms_key_arn=k, connection_arn=c, codebuild_project_arns=list(projs)),
            tags=tags, opts=here)

        def build_action(stage: Stage) -> dict[str, Any]:
            configuration: dict[str, Any] = {"ProjectName": projects[stage.name].name}
            if len(stage.inputs) > 1:
                # The source is the primary input; a second one ("images" from
                # BuildImages, "deployment" from Deploy) arrives as
                # $CODEBUILD_SRC_DIR_<artifact name>.
                configuration["PrimarySource"] = "source"
            action: dict[str, Any] = {
                "name": stage.name, "category": "Build", "owner": "AWS", "provider": "CodeBuild",
                "version": "1", "input_artifacts": list(stage.inputs),
                "configuration": configuration}
            if stage.outputs:
                action["output_artifacts"] = list(stage.outputs)
            if stage.name == "Train":
                # Its exported RELEASE_VERSION names the version in the approval request.
                action["namespace"] = TRAIN_VARIABLES
            return action

        stages: list[dict[str, Any]] = [{"name": "Source", "actions": [{
            "name": "Source", "category": "Source", "owner": "AWS",
            "provider": "CodeStarSourceConnection", "version": "1",
            "output_artifacts": ["source"],
            "configuration": {"ConnectionArn": connection.arn,
                              "FullRepositoryId": args.github_repository,
                              "BranchName": args.github_branch,
                              "OutputArtifactFormat": "CODE_ZIP"}}]}]
        by_name = {s.name: s for s in STAGES}
        for stage_name in stage_layout(args.approval_required)[1:]:
            if stage_name == "Approval":
                stages.append({"name": "Approval", "actions": [{
                    "name": "Approve", "category": "Approval", "owner": "AWS",
                    "provider": "Manual", "version": "1",
                    "configuration": {"CustomData":
                        f"Approve {args.model_name} version #{{{TRAIN_VARIABLES}.RELEASE_VERSION}} for a canary: read its gate "
                        "report in the Train stage log first. Approving releases exactly that version; champion moves only "
                        "after its canary and smoke test pass."}}]})
            else:
                stages.append({"name": stage_name, "actions": [build_action(by_name[stage_name])]})

        pipeline = aws.codepipeline.Pipeline(
            name, name=pipeline_name(args.prefix), pipeline_type="V2", execution_mode="QUEUED",
            role_arn=pipeline_role.arn,
            artifact_stores=[{"location": artifacts.name, "type": "S3",
                              "encryption_key": {"id": key.arn, "type": "KMS"}}],
            stages=stages,
            triggers=[{"provider_type": "CodeStarSourceConnection", "git_configuration": {
                "source_action_name": "Source",
                "pushes": [{"branches": {"includes": [args.github_branch]}}]}}],
            tags=tags, opts=here)

        self.pipeline_name = pipeline.name
        self.pipeline_arn = pipeline.arn
        self.connection_arn = connection.arn
        self.project_names = {stage: p.name for stage, p in projects.items()}
        self.build_security_group_id = build_sg.id
        self.register_outputs({"pipeline_name": pipeline.name, "pipeline_arn": pipeline.arn,
                               "connection_arn": connection.arn})
