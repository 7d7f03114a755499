"""IAM and KMS policy documents as pure functions of ARNs.

Every document the platform attaches is built here, so least privilege is reviewed and
tested in one place without Pulumi: no ``*`` action, no ``service:*``, and no write
action on a ``*`` resource (checkov CKV_AWS_62/63/290/355). The few actions AWS only
accepts on ``*`` are read-only or token actions and are listed in ``UNSCOPED_ACTIONS``
with the reason. Components turn the ARNs (Outputs) into these documents with
``Output.all(...).apply(...)``, which creates no resources.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

PolicyDocument = dict[str, Any]

UNSCOPED_ACTIONS: frozenset[str] = frozenset({
    # AWS issues registry tokens per account; the action has no resource-level form.
    "ecr:GetAuthorizationToken",
    # CloudWatch PutMetricData has no resource ARN; it is narrowed by namespace condition.
    "cloudwatch:PutMetricData",
})


def _doc(*statements: dict[str, Any]) -> PolicyDocument:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def service_trust(*services: str) -> PolicyDocument:
    """Trust policy letting AWS services assume a role.

    One service per statement with ``Principal.Service`` a plain string: moto (and some
    older AWS tooling) reads the service principal only in that form.
    """
    return _doc(*[
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        for service in services
    ])


def irsa_trust(oidc_provider_arn: str, issuer_url: str, namespace: str,
               service_account: str) -> PolicyDocument:
    """Trust policy for one Kubernetes service account through the cluster's OIDC issuer.

    Both ``sub`` and ``aud`` are pinned: without ``sub`` any pod in the cluster could
    assume the role.
    """
    issuer = issuer_url.removeprefix("https://")
    return _doc({
        "Effect": "Allow",
        "Principal": {"Federated": oidc_provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
            f"{issuer}:aud": "sts.amazonaws.com",
        }},
    })


def kms_key_policy(account_id: str, region: str, service_principals: Sequence[str]) -> PolicyDocument:
    """Key policy: the account administers the key; named services may use it.

    Admin actions are spelled out instead of ``kms:*``. CloudWatch Logs needs its
    regional principal with an encryption-context condition; CloudWatch alarms and
    EventBridge need Decrypt/GenerateDataKey to publish to a KMS-encrypted SNS topic
    (an AWS quirk: without it alarm notifications are silently dropped).
    """
    root = f"arn:aws:iam::{account_id}:root"
    statements: list[dict[str, Any]] = [
        {
            "Sid": "AccountAdministers",
            "Effect": "Allow",
            "Principal": {"AWS": root},
            "Action": [
                "kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*",
                "kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*",
                "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion",
                "kms:CancelKeyDeletion", "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*",
                "kms:GenerateDataKey*", "kms:CreateGrant",
            ],
            "Resource": "*",
        },
    ]
    for service in service_principals:
        statement: dict[str, Any] = {
            "Sid": "Use" + "".join(p.capitalize() for p in service.split(".")[0].split("-")),
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                       "kms:DescribeKey"],
            "Resource": "*",
        }
        if service.startswith("logs."):
            # DescribeKey carries no encryption context, so under the condition below it
            # could never match (parliament: UNKNOWN_CONDITION_FOR_ACTION): leave it out.
            statement["Action"] = [a for a in statement["Action"] if a != "kms:DescribeKey"]
            statement["Condition"] = {"ArnLike": {
                "kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{region}:{account_id}:*"}}
        else:
            statement["Condition"] = {"StringEquals": {"aws:SourceAccount": account_id}}
        statements.append(statement)
    return _doc(*statements)


def s3_read_write(bucket_arn: str, kms_key_arn: str, prefix: str = "") -> list[dict[str, Any]]:
    """Statements to read, write and list one bucket (optionally one prefix) and use its key."""
    objects = f"{bucket_arn}/{prefix}*"
    return [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                                       "s3:GetObjectVersion"], "Resource": objects},
        {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
         "Resource": bucket_arn},
        {"Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt"],
         "Resource": kms_key_arn},
    ]


def s3_read(bucket_arn: str, kms_key_arn: str) -> list[dict[str, Any]]:
    """Statements to read one bucket and decrypt with its key."""
    return [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectVersion"],
         "Resource": f"{bucket_arn}/*"},
        {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
         "Resource": bucket_arn},
        {"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": kms_key_arn},
    ]


def logs_write(log_group_arn: str) -> dict[str, Any]:
    """Write log streams into one log group (the group itself is created by Pulumi)."""
    return {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [log_group_arn, f"{log_group_arn}:*"]}


def ecr_pull(repository_arns: Iterable[str]) -> list[dict[str, Any]]:
    """Pull images from the named repositories."""
    return [
        {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                                       "ecr:BatchCheckLayerAvailability"],
         "Resource": sorted(repository_arns)},
    ]


def ecr_push(repository_arns: Iterable[str], kms_key_arn: str) -> list[dict[str, Any]]:
    """Push images to, and read scan findings of, the named repositories."""
    return [
        {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
        {"Effect": "Allow", "Action": [
            "ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart",
            "ecr:CompleteLayerUpload", "ecr:PutImage", "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer", "ecr:DescribeImages", "ecr:DescribeImageScanFindings"],
         "Resource": sorted(repository_arns)},
        {"Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt"],
         "Resource": kms_key_arn},
    ]


def sagemaker_execution_policy(*, account_id: str, region: str, prefix: str, role_arn: str,
                               bucket_arn: str, kms_key_arn: str, repository_arns: Sequence[str],
                               log_group_prefix: str = "/aws/sagemaker/") -> PolicyDocument:
    """What the SageMaker pipeline's role needs to run its steps and register the model.

    Jobs are scoped to names starting with the stack prefix (the compiler names them so);
    ``iam:PassRole`` is limited to this role and to SageMaker, which closes the
    privilege-escalation path checkov CKV_AWS_286 looks for.
    """
    arn = f"arn:aws:sagemaker:{region}:{account_id}"
    return _doc(
        {"Effect": "Allow", "Action": [
            "sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob",
            "sagemaker:StopProcessingJob", "sagemaker:CreateTrainingJob",
            "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob", "sagemaker:AddTags"],
         "Resource": [f"{arn}:processing-job/*", f"{arn}:training-job/*"]},
        {"Effect": "Allow", "Action": [
            "sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage",
            "sagemaker:UpdateModelPackage", "sagemaker:CreateModelPackageGroup",
            "sagemaker:DescribeModelPackageGroup"],
         "Resource": [f"{arn}:model-package/{prefix}-*", f"{arn}:model-package-group/{prefix}-*"]},
        {"Effect": "Allow", "Action": ["iam:PassRole"], "Resource": role_arn,
         "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}},
        *s3_read_write(bucket_arn, kms_key_arn),
        *ecr_pull(repository_arns),
        {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream",
                                       "logs:PutLogEvents", "logs:DescribeLogStreams"],
         "Resource": [f"arn:aws:logs:{region}:{account_id}:log-group:{log_group_prefix}*"]},
    )


def cloudwatch_agent_policy(*, cluster_name: str, account_id: str, region: str,
                            emf_log_group_name: str) -> PolicyDocument:
    """The CloudWatch observability add-on's agent and Fluent Bit, in place of the broad
    managed ``CloudWatchAgentServerPolicy``.

    Enhanced Container Insights and the serving EMF records both reach CloudWatch as
    EMF log events (CloudWatch Logs extracts the metrics), so the agent needs
    ``PutMetricData`` only under Container Insights' namespace; log writes are scoped to
    this cluster's Container Insights groups and the serving metrics group. No X-Ray,
    no SSM: the add-on's configuration turns Application Signals off and carries the
    agent config inline. ``ec2:Describe*`` reads are what the agent uses to tag node
    metrics; AWS offers them only on ``*``.
    """
    logs = f"arn:aws:logs:{region}:{account_id}:log-group:"
    groups = [f"{logs}/aws/containerinsights/{cluster_name}/*", f"{logs}{emf_log_group_name}"]
    return _doc(
        {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:PutRetentionPolicy",
                                       "logs:DescribeLogStreams", "logs:CreateLogStream",
                                       "logs:PutLogEvents"],
         "Resource": groups + [f"{g}:*" for g in groups]},
        {"Effect": "Allow", "Action": ["logs:DescribeLogGroups"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["cloudwatch:PutMetricData"], "Resource": "*",
         "Condition": {"StringEquals": {"cloudwatch:namespace": "ContainerInsights"}}},
        {"Effect": "Allow", "Action": ["ec2:DescribeTags", "ec2:DescribeVolumes",
                                       "ec2:DescribeInstances"], "Resource": "*"},
    )


def start_pipeline_policy(codepipeline_arn: str) -> PolicyDocument:
    """The retrain trigger's role: start exactly one CodePipeline, nothing else."""
    return _doc({"Effect": "Allow", "Action": ["codepipeline:StartPipelineExecution"],
                 "Resource": codepipeline_arn})


def run_sagemaker_pipeline(pipeline_arn: str) -> dict[str, Any]:
    """Start and watch executions of one SageMaker pipeline (the train stage)."""
    return {"Effect": "Allow", "Action": [
        "sagemaker:StartPipelineExecution", "sagemaker:DescribePipelineExecution",
        "sagemaker:ListPipelineExecutionSteps", "sagemaker:StopPipelineExecution",
        "sagemaker:DescribePipeline"],
        "Resource": [pipeline_arn, f"{pipeline_arn}/execution/*"]}


def codepipeline_policy(*, bucket_arn: str, kms_key_arn: str, connection_arn: str,
                        codebuild_project_arns: Sequence[str]) -> PolicyDocument:
    """CodePipeline's role: its artifact bucket, the GitHub connection, its build projects."""
    return _doc(
        *s3_read_write(bucket_arn, kms_key_arn),
        {"Effect": "Allow", "Action": ["codeconnections:UseConnection",
                                       "codestar-connections:UseConnection"],
         "Resource": connection_arn},
        {"Effect": "Allow", "Action": ["codebuild:StartBuild", "codebuild:BatchGetBuilds"],
         "Resource": sorted(codebuild_project_arns)},
    )


def policy_violations(document: PolicyDocument) -> list[str]:
    """List least-privilege violations in a policy document (empty when it is clean).

    Flags ``*`` and ``service:*`` actions, ``NotAction``, and ``*`` resources on any
    action outside ``UNSCOPED_ACTIONS`` or a read-only verb (Get/List/Describe). Used by
    the tests and by a reviewer on any new document.
    """
    problems: list[str] = []
    for index, statement in enumerate(document.get("Statement", [])):
        if statement.get("Effect") != "Allow":
            continue
        if "NotAction" in statement:
            problems.append(f"statement {index}: NotAction grants everything not listed")
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else list(actions)
        resources = statement.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else list(resources)
        for action in actions:
            if action == "*" or action.endswith(":*"):
                problems.append(f"statement {index}: wildcard action {action!r}")
        if "*" in resources and "Principal" not in statement:
            for action in actions:
                verb = action.split(":", 1)[-1]
                if action in UNSCOPED_ACTIONS or verb.startswith(("Get", "List", "Describe")):
                    continue
                problems.append(f"statement {index}: {action!r} on resource '*'")
    return problems
