"""InfraPipeline: infra changes reviewed as previews and applied by a pipeline from
inside the VPC, never from a laptop.

- Pull requests: a CodeBuild project (GitHub source through the stack's CodeConnections
  connection, webhook on PR opened/updated/reopened) runs ``pulumi preview --diff`` with
  the policy pack for this stack; CodeBuild reports the build status on the pull request
  and its log (linked from the check) holds the diff reviewers read.
- Merges: a CodePipeline V2 on pushes to the stack's branch: Source -> Preview ->
  Approval (where the stack asks for one; prod always) -> Apply (``pulumi up``).

Both builds run in the private subnets with the API clients' security group, so they
reach the private Kubernetes endpoint. The state lives in an S3 backend this component
creates (KMS, versioning, protected in prod); the builds' own role can only use that
state, the key and assume ``<prefix>-infra-deployer``, the role that holds the rights to
change the platform. That role is created by the operator at bootstrap (docs/infra.md,
"The infra pipeline"): a role that can create IAM roles is not created by the stack it
would then be able to rewrite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import policies
from infra.bucket import SecureBucket, SecureBucketArgs
from infra.build_storage import build_storage
from infra.common import role
from infra.naming import aws_name

BUILD_IMAGE = "aws/codebuild/amazonlinux-x86_64-standard:5.0"
PREVIEW_BUILDSPEC = "infra/buildspecs/preview.yml"
APPLY_BUILDSPEC = "infra/buildspecs/apply.yml"
PR_EVENTS = "PULL_REQUEST_CREATED,PULL_REQUEST_UPDATED,PULL_REQUEST_REOPENED"


def deployer_role_name(prefix: str) -> str:
    """The bootstrap-created role the infra builds assume to run `pulumi up`."""
    return f"{prefix}-infra-deployer"


@dataclass
class InfraPipelineArgs:
    """Where the program comes from, where the builds run, and how prod is gated."""

    prefix: str
    stack: str
    region: str
    account_id: pulumi.Input[str]
    github_repository: str
    github_branch: str
    connection_arn: pulumi.Input[str]
    approval_required: bool
    vpc_id: pulumi.Input[str]
    private_subnet_ids: list[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    """The API clients' group: the cluster admits it on 443."""
    log_retention_days: int
    protect: bool
    tags: dict[str, str] = field(default_factory=dict)


def infra_build_policy(*, log_group_arn: str, state_bucket_arn: str, key_arn: str,
                       artifacts_bucket_arn: str, connection_arn: str, deployer_role_arn: str,
                       region: str, account_id: str, subnet_ids: list[str],
                       security_group_id: str) -> dict[str, Any]:
    """The infra builds' role: logs, the state backend and its key, the pipeline
    artifacts, the GitHub connection, assuming the deployer role, and CodeBuild's ENIs
    in AWS's documented shape. Everything else happens as the deployer."""
    ec2 = f"arn:aws:ec2:{region}:{account_id}"
    subnets = [f"{ec2}:subnet/{s}" for s in subnet_ids]
    return {"Version": "2012-10-17", "Statement": [
        policies.logs_write(log_group_arn),
        *policies.s3_read_write(state_bucket_arn, key_arn),
        *policies.s3_read_write(artifacts_bucket_arn, key_arn),
        {"Effect": "Allow", "Action": ["codeconnections:UseConnection",
                                       "codeconnections:GetConnectionToken",
                                       "codeconnections:GetConnection"],
         "Resource": connection_arn},
        {"Effect": "Allow", "Action": ["sts:AssumeRole"], "Resource": deployer_role_arn},
        {"Effect": "Allow", "Action": [
            "ec2:DescribeNetworkInterfaces", "ec2:DescribeDhcpOptions", "ec2:DescribeSubnets",
            "ec2:DescribeSecurityGroups", "ec2:DescribeVpcs"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["ec2:CreateNetworkInterface"],
         "Resource": [f"{ec2}:network-interface/*", *subnets,
                      f"{ec2}:security-group/{security_group_id}"]},
        {"Effect": "Allow", "Action": ["ec2:DeleteNetworkInterface"],
         "Resource": f"{ec2}:network-interface/*"},
        {"Effect": "Allow", "Action": ["ec2:CreateNetworkInterfacePermission"],
         "Resource": f"{ec2}:network-interface/*",
         "Condition": {"StringEquals": {"ec2:AuthorizedService": "codebuild.amazonaws.com"},
                       "ArnEquals": {"ec2:Subnet": subnets}}},
    ]}


class InfraPipeline(pulumi.ComponentResource):
    """S3 state backend, PR preview project, merge pipeline (preview, approval, apply)."""

    state_bucket_name: pulumi.Output[str]
    pipeline_name: pulumi.Output[str]
    preview_project_name: pulumi.Output[str]

    def __init__(self, name: str, args: InfraPipelineArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:infra_pipeline:InfraPipeline", name, None, opts)
        tags = args.tags
        here = pulumi.ResourceOptions(parent=self)
        storage = build_storage(name, description=f"{name} Pulumi state, artifacts and logs",
                                account_id=args.account_id, region=args.region, protect=args.protect,
                                log_retention_days=args.log_retention_days, tags=tags, opts=here)
        key, artifacts, logs = storage.key, storage.artifacts, storage.logs
        # The S3 backend: `pulumi login s3://<bucket>`; versioned, so a bad write of the
        # state can be rolled back.
        state = SecureBucket(f"{name}-state", SecureBucketArgs(
            kms_key_arn=key.arn, tags=tags, noncurrent_days=365, protect=args.protect,
            access_log_bucket=storage.access_logs.bucket.id), opts=here)
        deployer_arn = pulumi.Output.concat("arn:aws:iam::", args.account_id, ":role/",
                                            deployer_role_name(args.prefix))
        build_role = role(
            f"{name}-build-role", trust=policies.service_trust("codebuild.amazonaws.com"),
            policy_inputs=[logs.arn, state.arn, key.arn, artifacts.arn, args.connection_arn,
                           deployer_arn, args.account_id, args.security_group_id,
                           pulumi.Output.all(*args.private_subnet_ids)],
            policy=lambda lg, sb, k, ab, conn, dep, acct, sg, subnets: infra_build_policy(
                log_group_arn=lg, state_bucket_arn=sb, key_arn=k, artifacts_bucket_arn=ab,
                connection_arn=conn, deployer_role_arn=dep, region=args.region,
                account_id=acct, subnet_ids=list(subnets), security_group_id=sg),
            tags=tags, opts=here)

        def environment(privileged: bool = False) -> dict[str, Any]:
            variables = {"PULUMI_STACK": args.stack, "STATE_BUCKET": state.bucket.bucket,
                         "DEPLOYER_ROLE_ARN": deployer_arn,
                         "SECRETS_PROVIDER": key.arn.apply(lambda arn: f"awskms://{arn}?region={args.region}")}
            return {"compute_type": "BUILD_GENERAL1_MEDIUM", "image": BUILD_IMAGE,
                    "type": "LINUX_CONTAINER", "image_pull_credentials_type": "CODEBUILD",
                    "privileged_mode": privileged,
                    "environment_variables": [{"name": k, "value": v, "type": "PLAINTEXT"}
                                              for k, v in variables.items()]}

        vpc_config = {"vpc_id": args.vpc_id, "subnets": args.private_subnet_ids,
                      "security_group_ids": [args.security_group_id]}
        logs_config = {"cloudwatch_logs": {"status": "ENABLED", "group_name": logs.name,
                                           "stream_name": "infra"},
                       "s3_logs": {"status": "DISABLED"}}
        preview = aws.codebuild.Project(
            f"{name}-preview", name=aws_name("codebuild", name, "preview"),
            description=f"pulumi preview --diff of stack {args.stack} for pull requests",
            service_role=build_role.arn, build_timeout=60, encryption_key=key.arn,
            artifacts={"type": "NO_ARTIFACTS"},
            source={"type": "GITHUB", "location": f"https://github.com/{args.github_repository}.git",
                    "buildspec": PREVIEW_BUILDSPEC, "report_build_status": True,
                    "auth": {"type": "CODECONNECTIONS", "resource": args.connection_arn}},
            environment=environment(), vpc_config=vpc_config, logs_config=logs_config,
            tags=tags, opts=here)
        aws.codebuild.Webhook(f"{name}-preview-webhook", project_name=preview.name,
                              build_type="BUILD",
                              filter_groups=[{"filters": [{"type": "EVENT", "pattern": PR_EVENTS}]}],
                              opts=here)
        apply = aws.codebuild.Project(
            f"{name}-apply", name=aws_name("codebuild", name, "apply"),
            description=f"pulumi up of stack {args.stack} after merge",
            service_role=build_role.arn, build_timeout=120, encryption_key=key.arn,
            artifacts={"type": "CODEPIPELINE"},
            source={"type": "CODEPIPELINE", "buildspec": APPLY_BUILDSPEC},
            # Privileged: `pulumi up` builds and pushes the three images with
            # pulumi-docker, which needs the Docker daemon (CKV_AWS_316).
            environment=environment(privileged=True), vpc_config=vpc_config, logs_config=logs_config,
            tags=tags, opts=here)
        merge_preview = aws.codebuild.Project(
            f"{name}-merge-preview", name=aws_name("codebuild", name, "merge-preview"),
            description=f"pulumi preview --diff of stack {args.stack} before the approval",
            service_role=build_role.arn, build_timeout=60, encryption_key=key.arn,
            artifacts={"type": "CODEPIPELINE"},
            source={"type": "CODEPIPELINE", "buildspec": PREVIEW_BUILDSPEC},
            environment=environment(), vpc_config=vpc_config, logs_config=logs_config,
            tags=tags, opts=here)
        pipeline_role = role(
            f"{name}-role", trust=policies.service_trust("codepipeline.amazonaws.com"),
            policy_inputs=[artifacts.arn, key.arn, args.connection_arn, apply.arn, merge_preview.arn],
            policy=lambda b, k, c, *projects: policies.codepipeline_policy(
                bucket_arn=b, kms_key_arn=k, connection_arn=c, codebuild_project_arns=list(projects)),
            tags=tags, opts=here)

        def build(stage: str, project: aws.codebuild.Project) -> dict[str, Any]:
            return {"name": stage, "actions": [{
                "name": stage, "category": "Build", "owner": "AWS", "provider": "CodeBuild",
                "version": "1", "input_artifacts": ["source"],
                "configuration": {"ProjectName": project.name}}]}

        stages: list[dict[str, Any]] = [
            {"name": "Source", "actions": [{
                "name": "Source", "category": "Source", "owner": "AWS",
                "provider": "CodeStarSourceConnection", "version": "1",
                "output_artifacts": ["source"],
                "configuration": {"ConnectionArn": args.connection_arn,
                                  "FullRepositoryId": args.github_repository,
                                  "BranchName": args.github_branch,
                                  "OutputArtifactFormat": "CODE_ZIP"}}]},
            build("Preview", merge_preview)]
        if args.approval_required:
            stages.append({"name": "Approval", "actions": [{
                "name": "Approve", "category": "Approval", "owner": "AWS", "provider": "Manual",
                "version": "1", "configuration": {
                    "CustomData": "Read the Preview stage's diff before approving the apply."}}]})
        stages.append(build("Apply", apply))
        pipeline = aws.codepipeline.Pipeline(
            name, name=aws_name("codebuild", name), pipeline_type="V2",
            # One apply at a time: a second merge waits for the first `up` to finish.
            execution_mode="QUEUED", role_arn=pipeline_role.arn,
            artifact_stores=[{"location": artifacts.name, "type": "S3",
                              "encryption_key": {"id": key.arn, "type": "KMS"}}],
            stages=stages,
            # Every push: the program builds the images and compiles the SageMaker
            # definition from the whole repository, so any change can change the stack.
            triggers=[{"provider_type": "CodeStarSourceConnection", "git_configuration": {
                "source_action_name": "Source",
                "pushes": [{"branches": {"includes": [args.github_branch]}}]}}],
            tags=tags, opts=here)

        self.state_bucket_name = state.name
        self.pipeline_name = pipeline.name
        self.preview_project_name = preview.name
        self.register_outputs({"state_bucket": state.name, "pipeline_name": pipeline.name})
