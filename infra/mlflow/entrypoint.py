"""Start the MLflow tracking server from what the MlflowServer component provides.

The database password is managed by RDS in Secrets Manager (never in Pulumi state or
the pod spec): it is read here at start with the pod's IRSA role. The basic-auth admin
credentials arrive as mounted files; the auth config MLflow needs is written to /tmp
(the root filesystem is read-only). The basic-auth app also needs
``MLFLOW_FLASK_SERVER_SECRET_KEY``, one value shared by every replica (it signs the
sessions and CSRF tokens a replica issues and another may check). Every setting is
checked before anything talks to AWS, so a missing one fails in milliseconds with its
name, never as a crash loop deep inside MLflow. Then this process becomes ``mlflow server``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from urllib.parse import quote


def _required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        sys.exit(f"mlflow entrypoint: environment variable {name} is required")
    return value


def main() -> None:
    """Build the backend URI and auth config, then exec ``mlflow server``."""
    host = _required("MLFLOW_DB_HOST")
    db_name = _required("MLFLOW_DB_NAME")
    secret_arn = _required("MLFLOW_DB_SECRET_ARN")
    admin_dir = Path(_required("MLFLOW_ADMIN_CREDENTIALS_DIR"))
    artifacts = _required("MLFLOW_ARTIFACTS_DESTINATION")
    _required("MLFLOW_FLASK_SERVER_SECRET_KEY")  # mlflow reads it from the environment
    port = os.environ.get("MLFLOW_DB_PORT", "5432")
    if not port.isdigit():
        sys.exit(f"mlflow entrypoint: MLFLOW_DB_PORT must be a port number, got {port!r}")

    import boto3  # imported here: nothing talks to AWS before the checks above

    secret = json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"])
    # RDS enforces TLS (rds.force_ssl=1); require it from the client side as well.
    backend = (f"postgresql+psycopg2://{quote(secret['username'], safe='')}:{quote(secret['password'], safe='')}"
               f"@{host}:{port}/{db_name}?sslmode=require")
    auth_config = Path("/tmp/basic_auth.ini")
    # configparser interpolates "%": the URL-quoted password must have it doubled.
    def ini(value: str) -> str:
        return value.replace("%", "%%")

    auth_config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {ini(backend)}\n"
        f"admin_username = {ini((admin_dir / 'username').read_text().strip())}\n"
        f"admin_password = {ini((admin_dir / 'password').read_text().strip())}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    auth_config.chmod(0o600)
    os.environ["MLFLOW_AUTH_CONFIG_PATH"] = str(auth_config)
    # mlflow reads MLFLOW_HOST, MLFLOW_PORT and MLFLOW_WORKERS itself: the pod listens on
    # every interface of its own network namespace, port 5000, unless told otherwise.
    os.environ.setdefault("MLFLOW_HOST", "0.0.0.0")
    os.environ.setdefault("MLFLOW_PORT", "5000")
    args = ["mlflow", "server", "--app-name", "basic-auth",
            "--backend-store-uri", backend, "--serve-artifacts",
            "--artifacts-destination", artifacts]
    os.execvp("mlflow", args)


if __name__ == "__main__":
    main()
