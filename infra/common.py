"""Small builders the components share: a rotating KMS key, a KMS-encrypted log group,
and an IAM role with one inline least-privilege policy.

They create their resources as children of the calling component (``parent`` in the
options they receive), so each resource still appears under its component in the
preview. Policies are rendered with ``Output.all(...).apply(json.dumps(...))``: the
apply only builds a string, never a resource.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import policies


def child(parent: pulumi.Resource, *, protect: bool = False,
          depends_on: Sequence[pulumi.Resource] | None = None,
          provider: pulumi.ProviderResource | None = None) -> pulumi.ResourceOptions:
    """Options for a component's child: parented, optionally protected against delete.

    ``retain_on_delete`` goes with ``protect``: even when someone unprotects and
    destroys the stack, the cloud object (database, bucket, registry) is left behind.
    """
    return pulumi.ResourceOptions(
        parent=parent, protect=protect or None, retain_on_delete=protect or None,
        depends_on=list(depends_on) if depends_on else None, provider=provider)


def kms_key(name: str, *, description: str, account_id: pulumi.Input[str], region: str,
            services: Sequence[str], tags: dict[str, str],
            opts: pulumi.ResourceOptions) -> aws.kms.Key:
    """A customer-managed key with rotation on and an explicit key policy."""
    key = aws.kms.Key(
        name,
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=pulumi.Output.from_input(account_id).apply(
            lambda acct: json.dumps(policies.kms_key_policy(acct, region, list(services)))),
        tags=tags,
        opts=opts,
    )
    aws.kms.Alias(f"{name}-alias", name=f"alias/{name}", target_key_id=key.key_id,
                  opts=pulumi.ResourceOptions(parent=opts.parent))
    return key


def log_group(name: str, *, log_group_name: pulumi.Input[str], retention_days: int,
              kms_key_arn: pulumi.Input[str], tags: dict[str, str],
              opts: pulumi.ResourceOptions) -> aws.cloudwatch.LogGroup:
    """A log group with retention and KMS (checkov CKV_AWS_66/158/338)."""
    return aws.cloudwatch.LogGroup(name, name=log_group_name, retention_in_days=retention_days,
                                   kms_key_id=kms_key_arn, tags=tags, opts=opts)


def role(name: str, *, trust: pulumi.Input[dict[str, Any]] | dict[str, Any],
         policy_inputs: Sequence[pulumi.Input[Any]] = (),
         policy: Callable[..., dict[str, Any]] | None = None,
         managed_policy_arns: Sequence[str] = (), tags: dict[str, str],
         opts: pulumi.ResourceOptions, role_name: str | None = None) -> aws.iam.Role:
    """An IAM role with its trust policy, an inline policy and managed attachments.

    ``policy`` is a pure function from ``policy_inputs`` (resolved ARNs) to a document
    in ``infra.policies``; AWS-managed policies are attached only where AWS documents
    them as the required policy (EKS cluster/node roles).
    """
    assume = pulumi.Output.from_input(trust).apply(json.dumps)
    iam_role = aws.iam.Role(name, name=role_name, assume_role_policy=assume, tags=tags, opts=opts)
    child_opts = pulumi.ResourceOptions(parent=opts.parent)
    if policy is not None:
        document = pulumi.Output.all(*policy_inputs).apply(lambda values: json.dumps(policy(*values)))
        aws.iam.RolePolicy(f"{name}-policy", role=iam_role.id, policy=document, opts=child_opts)
    for index, arn in enumerate(managed_policy_arns):
        aws.iam.RolePolicyAttachment(f"{name}-managed-{index}", role=iam_role.name,
                                     policy_arn=arn, opts=child_opts)
    return iam_role


def prop(value: Any, name: str) -> Any:
    """Read a nested output property by its snake_case name.

    The provider SDK hands nested outputs over as typed objects, while the mock
    runtime may hand over plain dicts keyed in camelCase or snake_case; reading
    through this works with all three.
    """
    if not isinstance(value, dict) and hasattr(value, name):
        return getattr(value, name)
    camel = name.split("_")[0] + "".join(p.capitalize() for p in name.split("_")[1:])
    if isinstance(value, dict):
        for key in (name, camel):
            if key in value:
                return value[key]
    raise KeyError(f"property {name!r} not found in {type(value).__name__}")
