"""The encrypted storage every CodePipeline/CodeBuild component needs, in one place.

The delivery pipeline (infra/delivery_pipeline.py) and the infra pipeline
(infra/infra_pipeline.py) each need the same four things: a customer KMS key that
CloudWatch Logs may use, an access-log bucket, an artifact bucket logging to it and
encrypted with the key, and an encrypted build log group. Built here once, so the two
cannot drift apart in how they encrypt, log or retain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from infra.bucket import SecureBucket, SecureBucketArgs
from infra.common import kms_key, log_group


@dataclass(frozen=True)
class BuildStorage:
    key: Any
    """The component's KMS key (artifacts, logs, build outputs)."""
    access_logs: SecureBucket
    artifacts: SecureBucket
    logs: Any
    """The CodeBuild log group ``/aws/codebuild/<name>``."""


def build_storage(name: str, *, description: str, account_id: pulumi.Input[str], region: str, protect: bool,
                  log_retention_days: int, tags: dict[str, str], opts: pulumi.ResourceOptions) -> BuildStorage:
    """Key, access-log bucket, artifact bucket and log group named ``<name>-...`` under ``opts``'s parent."""
    key = kms_key(f"{name}-key", description=description, account_id=account_id, region=region,
                  services=[f"logs.{region}.amazonaws.com"], tags=tags, opts=opts)
    access_logs = SecureBucket(f"{name}-access-logs", SecureBucketArgs(
        kms_key_arn=None, tags=tags, noncurrent_days=30, protect=protect, account_id=account_id), opts=opts)
    artifacts = SecureBucket(f"{name}-artifacts", SecureBucketArgs(
        kms_key_arn=key.arn, tags=tags, noncurrent_days=30, protect=protect,
        access_log_bucket=access_logs.bucket.id), opts=opts)
    logs = log_group(f"{name}-build-logs", log_group_name=f"/aws/codebuild/{name}",
                     retention_days=log_retention_days, kms_key_arn=key.arn, tags=tags, opts=opts)
    return BuildStorage(key=key, access_logs=access_logs, artifacts=artifacts, logs=logs)
