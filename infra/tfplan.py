"""Convert captured Pulumi AWS resources into a Terraform-plan-shaped JSON document.

checkov has no Pulumi reader, but its ``terraform_plan`` framework reads the JSON of
``terraform show -json plan``: ``planned_values.root_module.resources`` (type, name,
values), ``resource_changes`` and ``configuration`` (whose ``references`` let checkov's
graph checks connect, say, a bucket to its public-access block). Pulumi's AWS provider
is generated from Terraform's, so the conversion is mechanical: map the type token to
the Terraform type, camelCase keys to snake_case, and the few list blocks Pulumi
pluralises back to Terraform's singular block names. A reference is recorded wherever
an input equals another resource's id, ARN or name, which is how the program wired it.
Pure functions: captured records in, a dict out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

TF_TYPES: dict[str, str] = {
    "aws:cloudwatch/dashboard:Dashboard": "aws_cloudwatch_dashboard",
    "aws:cloudwatch/eventRule:EventRule": "aws_cloudwatch_event_rule",
    "aws:cloudwatch/eventTarget:EventTarget": "aws_cloudwatch_event_target",
    "aws:cloudwatch/logGroup:LogGroup": "aws_cloudwatch_log_group",
    "aws:cloudwatch/metricAlarm:MetricAlarm": "aws_cloudwatch_metric_alarm",
    "aws:codebuild/project:Project": "aws_codebuild_project",
    "aws:codebuild/webhook:Webhook": "aws_codebuild_webhook",
    "aws:codepipeline/pipeline:Pipeline": "aws_codepipeline",
    "aws:codestarconnections/connection:Connection": "aws_codestarconnections_connection",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "aws_default_security_group",
    "aws:ec2/eip:Eip": "aws_eip",
    "aws:ec2/flowLog:FlowLog": "aws_flow_log",
    "aws:ec2/internetGateway:InternetGateway": "aws_internet_gateway",
    "aws:ec2/natGateway:NatGateway": "aws_nat_gateway",
    "aws:ec2/route:Route": "aws_route",
    "aws:ec2/routeTable:RouteTable": "aws_route_table",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "aws_route_table_association",
    "aws:ec2/securityGroup:SecurityGroup": "aws_security_group",
    "aws:ec2/subnet:Subnet": "aws_subnet",
    "aws:ec2/vpc:Vpc": "aws_vpc",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "aws_vpc_endpoint",
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": "aws_ecr_lifecycle_policy",
    "aws:ecr/repository:Repository": "aws_ecr_repository",
    "aws:eks/accessEntry:AccessEntry": "aws_eks_access_entry",
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": "aws_eks_access_policy_association",
    "aws:eks/addon:Addon": "aws_eks_addon",
    "aws:eks/cluster:Cluster": "aws_eks_cluster",
    "aws:eks/nodeGroup:NodeGroup": "aws_eks_node_group",
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": "aws_iam_openid_connect_provider",
    "aws:iam/role:Role": "aws_iam_role",
    "aws:iam/rolePolicy:RolePolicy": "aws_iam_role_policy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "aws_iam_role_policy_attachment",
    "aws:kms/alias:Alias": "aws_kms_alias",
    "aws:kms/key:Key": "aws_kms_key",
    "aws:rds/instance:Instance": "aws_db_instance",
    "aws:rds/parameterGroup:ParameterGroup": "aws_db_parameter_group",
    "aws:rds/subnetGroup:SubnetGroup": "aws_db_subnet_group",
    "aws:s3/bucket:Bucket": "aws_s3_bucket",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": "aws_s3_bucket_lifecycle_configuration",
    "aws:s3/bucketLogging:BucketLogging": "aws_s3_bucket_logging",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": "aws_s3_bucket_ownership_controls",
    "aws:s3/bucketPolicy:BucketPolicy": "aws_s3_bucket_policy",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": "aws_s3_bucket_public_access_block",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration":
        "aws_s3_bucket_server_side_encryption_configuration",
    "aws:s3/bucketVersioning:BucketVersioning": "aws_s3_bucket_versioning",
    "aws:sagemaker/pipeline:Pipeline": "aws_sagemaker_pipeline",
    "aws:secretsmanager/secret:Secret": "aws_secretsmanager_secret",
    "aws:secretsmanager/secretVersion:SecretVersion": "aws_secretsmanager_secret_version",
    "aws:sns/topic:Topic": "aws_sns_topic",
    "aws:sns/topicPolicy:TopicPolicy": "aws_sns_topic_policy",
    "aws:sns/topicSubscription:TopicSubscription": "aws_sns_topic_subscription",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        "aws_vpc_security_group_ingress_rule",
}
"""Every AWS type the program declares; an unmapped one is an error, never a silent skip."""

PLURAL_BLOCKS: dict[str, str] = {
    "rules": "rule", "stages": "stage", "actions": "action", "artifact_stores": "artifact_store",
    "taints": "taint", "encryption_configurations": "encryption_configuration",
    "client_id_lists": "client_id_list", "thumbprint_lists": "thumbprint_list",
    "environment_variables": "environment_variable", "triggers": "trigger",
    "parameters": "parameter", "pushes": "push",
}
"""Pulumi pluralises repeated Terraform blocks; checkov reads Terraform's singular names."""

SECRET_ATTRIBUTES = frozenset({"secret_string", "password", "secret_binary"})
"""Attributes written as ``<redacted>``: the plan is for reading, not for secrets."""

_OPAQUE_KEYS = frozenset({"tags", "tags_all", "dimensions", "labels", "configuration",
                          "values", "triggers_replace"})
"""Maps whose keys are data (tag names, dimension names), not schema: keep them verbatim."""


def snake(name: str) -> str:
    """camelCase -> snake_case (``kmsKeyId`` -> ``kms_key_id``)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def convert_value(value: Any, key: str | None = None) -> Any:
    """Recursively rename keys to Terraform's names; leave opaque maps and scalars alone.

    A nested object (a Terraform block) becomes a one-element list, as in Terraform's
    plan JSON, so checkov reads it (and its references) the way it reads a real plan.
    """
    if isinstance(value, dict):
        if key in _OPAQUE_KEYS:
            return dict(value)
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k.startswith("__"):
                continue
            tf_key = snake(k)
            tf_key = PLURAL_BLOCKS.get(tf_key, tf_key)
            converted = convert_value(v, tf_key)
            if isinstance(v, dict) and tf_key not in _OPAQUE_KEYS:
                converted = [converted]
            out[tf_key] = converted
        return out
    if isinstance(value, list):
        return [convert_value(v, key) for v in value]
    return value


def tf_name(pulumi_name: str) -> str:
    """A Terraform-legal resource name from a Pulumi logical name."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", pulumi_name)


def terraform_plan(resources: Iterable[Any]) -> dict[str, Any]:
    """The Terraform-plan JSON of the captured AWS resources.

    ``resources`` are ``infra.mocks.Recorded`` (anything with type, name, inputs,
    outputs, id). Raises KeyError naming any AWS type not in ``TF_TYPES``.
    """
    records = [r for r in resources if r.custom and r.type.startswith("aws:")]
    unmapped = sorted({r.type for r in records if r.type not in TF_TYPES})
    if unmapped:
        raise KeyError(f"no Terraform type for {unmapped}: add them to infra.tfplan.TF_TYPES")
    by_value: dict[str, str] = {}
    for r in records:
        address = f"{TF_TYPES[r.type]}.{tf_name(r.name)}"
        for attr in ("id", "arn", "name", "bucket", "key_id"):
            value = r.id if attr == "id" else r.outputs.get(attr if attr != "key_id" else "keyId")
            if isinstance(value, str) and len(value) > 6:
                by_value.setdefault(value, f"{address}.{attr}")

    planned: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    config: list[dict[str, Any]] = []
    for r in records:
        tf_type = TF_TYPES[r.type]
        name = tf_name(r.name)
        address = f"{tf_type}.{name}"
        values = convert_value({**r.outputs, **r.inputs})
        values["id"] = r.id
        for secret in SECRET_ATTRIBUTES & values.keys():
            values[secret] = "<redacted>"
        expressions = _expressions(values, by_value, address) or {}
        planned.append({"address": address, "mode": "managed", "type": tf_type, "name": name,
                        "provider_name": "registry.terraform.io/hashicorp/aws",
                        "schema_version": 0, "values": values})
        changes.append({"address": address, "mode": "managed", "type": tf_type, "name": name,
                        "provider_name": "registry.terraform.io/hashicorp/aws",
                        "change": {"actions": ["create"], "before": None, "after": values,
                                   "after_unknown": {}}})
        config.append({"address": address, "mode": "managed", "type": tf_type, "name": name,
                       "provider_config_key": "aws", "expressions": expressions})
    return {"format_version": "1.2", "terraform_version": "1.9.8",
            "planned_values": {"root_module": {"resources": planned}},
            "resource_changes": changes,
            "configuration": {"provider_config": {"aws": {"name": "aws",
                                                          "full_name": "registry.terraform.io/hashicorp/aws"}},
                              "root_module": {"resources": config}}}


def _expressions(value: Any, by_value: dict[str, str], own: str) -> Any:
    """Terraform ``configuration`` expressions mirroring ``value``: a ``references``
    entry (``aws_x.name.attr``, ``aws_x.name``) wherever a value is another resource's
    id, ARN or name; nested blocks recurse. None when nothing is referenced."""
    if isinstance(value, dict):
        nested = {k: e for k, v in value.items() if (e := _expressions(v, by_value, own))}
        return nested or None
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        blocks = [_expressions(v, by_value, own) or {} for v in value]
        return blocks if any(blocks) else None
    found: list[str] = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str) and item in by_value and not by_value[item].startswith(own + "."):
            ref = by_value[item]
            found += [ref, ref.rsplit(".", 1)[0]]
    return {"references": found} if found else None
