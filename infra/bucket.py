"""SecureBucket: an S3 bucket that meets every S3 rule in the safety rules at once.

KMS encryption with a bucket key, versioning, all four public-access blocks, TLS-only
bucket policy, a lifecycle rule that expires old versions and aborts stale multipart
uploads, and server access logging into a companion log bucket. Components that store
data (MLflow artifacts, CodePipeline artifacts) use it, so the rules are written once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.common import child


@dataclass
class SecureBucketArgs:
    """Inputs of a SecureBucket: its key, how long old versions live, protection."""

    kms_key_arn: pulumi.Input[str] | None
    """Customer key; None only for an access-log bucket (S3 quirk: server access logs
    can only be delivered to a bucket encrypted with SSE-S3, not SSE-KMS)."""
    tags: dict[str, str]
    noncurrent_days: int = 90
    protect: bool = False
    access_log_bucket: pulumi.Input[str] | None = None
    """Target of this bucket's server access logs; None for the access-log bucket itself."""
    account_id: pulumi.Input[str] | None = None
    """Set on an access-log bucket: only this account's buckets may deliver logs to it."""


def bucket_policy(bucket_arn: str, log_source_account: str | None = None) -> str:
    """Bucket policy: deny any request not sent over TLS; on a log bucket, also let the
    S3 logging service write, from this account only.

    The ``*`` principal appears only in a Deny (checkov CKV_AWS_70 looks for Allow).
    """
    statements: list[dict[str, object]] = [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]
    if log_source_account is not None:
        statements.append({
            "Sid": "S3ServerAccessLogs", "Effect": "Allow",
            "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:PutObject",
            "Resource": f"{bucket_arn}/*",
            "Condition": {"StringEquals": {"aws:SourceAccount": log_source_account}}})
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


class SecureBucket(pulumi.ComponentResource):
    """An encrypted, versioned, private, logged bucket with lifecycle rules."""

    bucket: aws.s3.Bucket
    arn: pulumi.Output[str]
    name: pulumi.Output[str]

    def __init__(self, name: str, args: SecureBucketArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:bucket:SecureBucket", name, None, opts)
        self.bucket = aws.s3.Bucket(name, tags=args.tags, opts=child(self, protect=args.protect))
        bid = self.bucket.id
        plain = pulumi.ResourceOptions(parent=self)
        aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access", bucket=bid, block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True, opts=plain)
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership", bucket=bid,
            rule={"object_ownership": "BucketOwnerEnforced"}, opts=plain)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-sse", bucket=bid,
            rules=[{"apply_server_side_encryption_by_default": (
                {"sse_algorithm": "aws:kms", "kms_master_key_id": args.kms_key_arn}
                if args.kms_key_arn is not None else {"sse_algorithm": "AES256"}),
                "bucket_key_enabled": args.kms_key_arn is not None}], opts=plain)
        aws.s3.BucketVersioning(
            f"{name}-versioning", bucket=bid,
            versioning_configuration={"status": "Enabled"}, opts=plain)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle", bucket=bid,
            rules=[{"id": "expire-old-versions", "status": "Enabled", "filter": {},
                    "noncurrent_version_expiration": {"noncurrent_days": args.noncurrent_days},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7}}],
            opts=plain)
        aws.s3.BucketPolicy(f"{name}-tls-only", bucket=bid,
                            policy=pulumi.Output.all(self.bucket.arn, args.account_id).apply(
                                lambda v: bucket_policy(v[0], v[1])), opts=plain)
        if args.access_log_bucket is not None:
            aws.s3.BucketLogging(f"{name}-access-logs", bucket=bid,
                                 target_bucket=args.access_log_bucket,
                                 target_prefix=f"{name}/", opts=plain)
        self.arn = self.bucket.arn
        self.name = self.bucket.bucket
        self.register_outputs({"arn": self.arn, "name": self.name})
