"""MLflow credentials for pipeline jobs, read from AWS Secrets Manager at job start.

The SageMaker jobs talk to an MLflow server that has basic auth on. Credentials never
travel as pipeline parameters or definition environment (both are readable by anyone who
can describe the pipeline): the definition carries only the secret's ARN in
``MLOPS_MLFLOW_CREDENTIALS_SECRET``, the job's execution role may read it, and this
module sets MLflow's own ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` from
it before any step code runs. The secret holds ``{"username": ..., "password": ...}``
(infra/mlflow_server.py writes it).
"""

from __future__ import annotations

import json
import os
import re
from typing import Final

SECRET_ENV: Final = "MLOPS_MLFLOW_CREDENTIALS_SECRET"
_REFUSED = re.compile(r"error code (401|403)\b")


class CredentialsError(RuntimeError):
    """The credentials secret cannot be read or does not hold a username and password.

    A configuration error (exit 2), never a gate refusal: no model was judged.
    """


def load_tracking_credentials(environ: dict[str, str] | None = None) -> str | None:
    """Set MLflow's credential variables from the secret named in the environment.

    Returns the secret's ARN when it was used, ``None`` when no secret is configured or
    credentials are already set explicitly (a person running a step by hand).
    """
    env = os.environ if environ is None else environ
    secret = env.get(SECRET_ENV, "").strip()
    if not secret or env.get("MLFLOW_TRACKING_USERNAME"):
        return None
    from botocore.exceptions import BotoCoreError, ClientError

    from pipeline.delivery.aws import make_client

    try:
        value = make_client("secretsmanager").get_secret_value(SecretId=secret)["SecretString"]
    except (BotoCoreError, ClientError, KeyError) as exc:
        raise CredentialsError(f"cannot read the MLflow credentials secret {secret} ({SECRET_ENV}): {exc}") from exc
    try:
        document = json.loads(value)
        username, password = document["username"], document["password"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CredentialsError(f"the MLflow credentials secret {secret} must hold JSON {{\"username\": ..., \"password\": ...}}") from exc
    env["MLFLOW_TRACKING_USERNAME"] = str(username)
    env["MLFLOW_TRACKING_PASSWORD"] = str(password)
    return secret


def is_auth_refusal(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is the tracking server refusing our credentials.

    MLflow's REST client reports a non-JSON refusal as ``... failed with error code 401
    != 200``; a JSON one carries the status in the exception.
    """
    from mlflow.exceptions import MlflowException

    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            break
        if isinstance(seen, MlflowException) and (
                seen.get_http_status_code() in (401, 403) or _REFUSED.search(str(seen)[:500])):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
