"""Making boto3 clients where they are used.

One place decides how a client is built so every module honours the same overrides:
an explicit ``endpoint_url`` (moto on 127.0.0.1 in tests), else boto3's own
``AWS_ENDPOINT_URL`` handling, and a region from the argument or the environment.
"""

from __future__ import annotations

import os
from typing import Any


def make_client(service: str, *, region: str | None = None, endpoint_url: str | None = None) -> Any:
    """A boto3 client for ``service``; imported lazily so importing delivery is free."""
    import boto3
    from botocore.config import Config

    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    # Adaptive retries ride out throttling on the polling loops instead of failing a stage.
    config = Config(retries={"max_attempts": 8, "mode": "adaptive"}, connect_timeout=10, read_timeout=60)
    return boto3.client(service, region_name=region, endpoint_url=endpoint_url, config=config)
