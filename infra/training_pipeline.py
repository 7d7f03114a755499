"""TrainingPipeline: the SageMaker pipeline that validates, trains (GPU), gates and registers.

The definition is never written by hand: it comes from ``pipeline.sagemaker_compiler``
(the SageMaker SDK), either as a finished JSON string or as a builder called with this
component's role ARN and job security group once they resolve (the compiler makes no
AWS call and creates no resource, so building inside ``apply`` is safe). The role may
run jobs, pass only itself to SageMaker, read and write only the pipeline's bucket and
key, pull only the platform's images, and read the MLflow credentials secret. Jobs run
in the private subnets so they reach MLflow's internal endpoint and nothing public.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import policies
from infra.common import role
from infra.naming import aws_name

DefinitionBuilder = Callable[[str, str], pulumi.Input[str]]
"""(role_arn, security_group_id) -> definition JSON."""


@dataclass
class TrainingPipelineArgs:
    """The definition (or its builder) and what the pipeline's role may touch."""

    definition: pulumi.Input[str] | DefinitionBuilder
    prefix: str
    region: str
    account_id: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    repository_arns: Sequence[pulumi.Input[str]]
    credentials_secret_arn: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    vpc_cidr: str
    s3_prefix_list_id: pulumi.Input[str]
    """The S3 gateway endpoint's prefix list: jobs reach S3 through it."""
    tags: dict[str, str]


def training_role_policy(account_id: str, region: str, prefix: str, role_arn: str,
                         bucket_arn: str, key_arn: str, secret_arn: str,
                         *repository_arns: str) -> dict[str, Any]:
    """SageMaker execution policy plus the VPC and secret permissions jobs need."""
    doc = policies.sagemaker_execution_policy(
        account_id=account_id, region=region, prefix=prefix, role_arn=role_arn,
        bucket_arn=bucket_arn, kms_key_arn=key_arn, repository_arns=list(repository_arns))
    doc["Statement"] += [
        {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": secret_arn},
        # VPC-mode jobs create and delete their own ENIs; AWS offers no resource-level
        # scoping for the create call beyond the subnet/security-group ARNs below.
        {"Effect": "Allow", "Action": [
            "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs", "ec2:DescribeDhcpOptions",
            "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["ec2:CreateNetworkInterface",
                                       "ec2:CreateNetworkInterfacePermission",
                                       "ec2:DeleteNetworkInterface",
                                       "ec2:DeleteNetworkInterfacePermission"],
         "Resource": [f"arn:aws:ec2:{region}:{account_id}:network-interface/*",
                      f"arn:aws:ec2:{region}:{account_id}:subnet/*",
                      f"arn:aws:ec2:{region}:{account_id}:security-group/*"]},
    ]
    return doc


class TrainingPipeline(pulumi.ComponentResource):
    """IAM role, job security group and the ``aws.sagemaker.Pipeline``."""

    pipeline_arn: pulumi.Output[str]
    pipeline_name: pulumi.Output[str]
    role_arn: pulumi.Output[str]
    security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: TrainingPipelineArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:training_pipeline:TrainingPipeline", name, None, opts)
        here = pulumi.ResourceOptions(parent=self)
        pipeline_name = aws_name("sagemaker_pipeline", name)
        role_name = aws_name("iam_role", name, "sagemaker")
        role_arn = pulumi.Output.concat("arn:aws:iam::", args.account_id, ":role/", role_name)
        sm_role = role(
            f"{name}-role", role_name=role_name,
            trust=policies.service_trust("sagemaker.amazonaws.com"),
            policy_inputs=[args.account_id, args.region, args.prefix, role_arn, args.bucket_arn,
                           args.kms_key_arn, args.credentials_secret_arn, *args.repository_arns],
            policy=training_role_policy, tags=args.tags, opts=here)
        sg = aws.ec2.SecurityGroup(
            f"{name}-jobs-sg", vpc_id=args.vpc_id,
            description="SageMaker pipeline jobs: HTTPS and MLflow inside the VPC only",
            egress=[{"protocol": "tcp", "from_port": 443, "to_port": 443,
                     "cidr_blocks": [args.vpc_cidr], "description": "VPC endpoints"},
                    {"protocol": "tcp", "from_port": 443, "to_port": 443,
                     "prefix_list_ids": [args.s3_prefix_list_id],
                     "description": "S3 through the gateway endpoint"},
                    {"protocol": "tcp", "from_port": 80, "to_port": 80,
                     "cidr_blocks": [args.vpc_cidr], "description": "MLflow internal NLB"}],
            tags=args.tags, opts=here)
        definition = args.definition
        if callable(definition):
            build = definition
            definition = pulumi.Output.all(sm_role.arn, sg.id).apply(lambda v: build(v[0], v[1]))
        pipeline = aws.sagemaker.Pipeline(
            name, pipeline_name=pipeline_name, pipeline_display_name=pipeline_name,
            pipeline_description="Validate, train on GPU, gate against the champion, register",
            role_arn=sm_role.arn, pipeline_definition=definition,
            parallelism_configuration={"max_parallel_execution_steps": 4},
            tags=args.tags, opts=here)
        self.pipeline_arn = pipeline.arn
        self.pipeline_name = pipeline.pipeline_name
        self.role_arn = sm_role.arn
        self.security_group_id = sg.id
        self.register_outputs({"pipeline_arn": pipeline.arn, "pipeline_name": pipeline_name})


def definition_steps(definition: str) -> list[str]:
    """Names of the top-level steps of a definition JSON (for inventories and tests)."""
    return [step["Name"] for step in json.loads(definition).get("Steps", [])]
