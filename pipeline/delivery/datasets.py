"""Put a dataset where the SageMaker pipeline reads it, under a name that says which data.

Each push goes to a content-addressed prefix, ``<InputDataUri>sha256-<digest>/<file>``,
and the stage passes that prefix as the execution's ``InputDataUri``: the execution's
parameters then record exactly which bytes it trained on, a later push can never change
what an earlier execution (or its retry) reads, and pushing the same file twice is a
no-op. ``python -m pipeline deliver push-data FILE --data-uri S3_PREFIX`` prints the
prefix and records it as the latest push (``LATEST.json`` under the data prefix); the
Train stage (``deliver train`` with ``PIPELINE_DATA_URI`` set) trains on that push.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from pipeline.digest import file_digest


LATEST = "LATEST.json"
"""The pointer to the newest push, under the data prefix."""


class NoDatasetPushed(LookupError):
    """No dataset has been pushed under the data prefix yet."""


def split_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key or prefix) of an ``s3://`` URI; ValueError naming it otherwise."""
    match = re.match(r"^s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/?(.*)$", uri or "")
    if not match:
        raise ValueError(f"{uri!r} is not an s3:// URI")
    return match.group(1), match.group(2)


def ensure_bucket(s3: Any, uri: str) -> None:
    """Create the bucket of ``uri`` if it is missing (the local stand-in; in AWS the stack made it)."""
    bucket, _ = split_s3_uri(uri)
    try:
        s3.head_bucket(Bucket=bucket)
    except Exception:  # noqa: BLE001 - botocore's errors are dynamic; a real failure resurfaces on create
        s3.create_bucket(Bucket=bucket)


def push_dataset(s3: Any, path: Path, data_uri: str) -> str:
    """Upload ``path`` under ``data_uri`` at its content address; the prefix URI to train on."""
    if not path.is_file():
        raise FileNotFoundError(f"no dataset file {path}")
    bucket, prefix = split_s3_uri(data_uri)
    prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    folder = f"{prefix}sha256-{file_digest(path)[:32]}/"
    key = folder + path.name
    existing = s3.list_objects_v2(Bucket=bucket, Prefix=folder).get("Contents", [])
    if not any(item["Key"] == key for item in existing):
        s3.upload_file(str(path), bucket, key)
    uri = f"s3://{bucket}/{folder}"
    pointer = {"input_data": uri, "file": path.name, "pushed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    s3.put_object(Bucket=bucket, Key=prefix + LATEST, Body=json.dumps(pointer).encode(), ContentType="application/json")
    return uri


def latest_push(s3: Any, data_uri: str) -> str:
    """The prefix of the newest push under ``data_uri``; :class:`NoDatasetPushed` if none."""
    bucket, prefix = split_s3_uri(data_uri)
    prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    try:
        body = s3.get_object(Bucket=bucket, Key=prefix + LATEST)["Body"].read()
    except s3.exceptions.NoSuchKey:
        raise NoDatasetPushed(f"no dataset pushed under {data_uri}: run `python -m pipeline deliver push-data FILE --data-uri {data_uri}`") from None
    return str(json.loads(body)["input_data"])
