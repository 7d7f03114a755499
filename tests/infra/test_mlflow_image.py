"""The MLflow server image (infra/mlflow): its Dockerfile passes hadolint, and its
entrypoint builds the backend URI from the RDS-managed secret (moto, in process) and
the mounted admin credentials, refusing to start without its settings."""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

IMAGE_DIR = Path(__file__).resolve().parents[2] / "infra" / "mlflow"


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "hadolint")
    result = subprocess.run([hadolint, "--failure-threshold", "warning", str(IMAGE_DIR / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _load_entrypoint() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("mlflow_entrypoint", IMAGE_DIR / "entrypoint.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_entrypoint_refuses_to_start_without_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_DB_HOST", "MLFLOW_DB_NAME", "MLFLOW_DB_SECRET_ARN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit, match="MLFLOW_DB_HOST is required"):
        _load_entrypoint().main()


def test_entrypoint_refuses_to_start_without_the_shared_flask_secret_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The basic-auth app dies without it; every replica needs the same one."""
    for name, value in {"MLFLOW_DB_HOST": "db", "MLFLOW_DB_NAME": "mlflow", "MLFLOW_DB_SECRET_ARN": "arn:secret",
                        "MLFLOW_ADMIN_CREDENTIALS_DIR": str(tmp_path),
                        "MLFLOW_ARTIFACTS_DESTINATION": "s3://bucket/mlflow"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MLFLOW_FLASK_SERVER_SECRET_KEY", raising=False)
    with pytest.raises(SystemExit, match="MLFLOW_FLASK_SERVER_SECRET_KEY is required"):
        _load_entrypoint().main()


def test_image_installs_mlflow_with_its_auth_extra_from_a_hashed_lock() -> None:
    """The basic-auth app imports Flask-WTF: without the extra the server dies at start."""
    dockerfile = (IMAGE_DIR / "Dockerfile").read_text()
    assert "--require-hashes -r /opt/mlflow/requirements.lock" in dockerfile
    lock = (IMAGE_DIR / "requirements.lock").read_text()
    assert "mlflow[auth]==" in (IMAGE_DIR / "requirements.in").read_text()
    assert "\nflask-wtf==" in lock and "--hash=sha256:" in lock


def test_entrypoint_builds_backend_and_auth_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import boto3
    from moto import mock_aws

    admin = tmp_path / "admin"
    admin.mkdir()
    (admin / "username").write_text("admin\n")
    (admin / "password").write_text("p%ss-word-long-enough\n")
    captured: dict[str, Any] = {}
    module = _load_entrypoint()
    monkeypatch.setattr(module.os, "execvp", lambda file, args: captured.update(file=file, args=args))
    auth_path = tmp_path / "basic_auth.ini"
    monkeypatch.setattr(module, "Path", lambda p: auth_path if p == "/tmp/basic_auth.ini" else Path(p))
    with mock_aws():
        arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="rds-db", SecretString=json.dumps({"username": "mlflow", "password": "a/b@c"}))["ARN"]
        monkeypatch.setenv("MLFLOW_DB_HOST", "db.internal")
        monkeypatch.setenv("MLFLOW_DB_NAME", "mlflow")
        monkeypatch.setenv("MLFLOW_DB_SECRET_ARN", arn)
        monkeypatch.setenv("MLFLOW_ADMIN_CREDENTIALS_DIR", str(admin))
        monkeypatch.setenv("MLFLOW_ARTIFACTS_DESTINATION", "s3://bucket/mlflow")
        monkeypatch.setenv("MLFLOW_FLASK_SERVER_SECRET_KEY", "shared-by-every-replica")
        module.main()
    args = captured["args"]
    backend = args[args.index("--backend-store-uri") + 1]
    assert backend == "postgresql+psycopg2://mlflow:a%2Fb%40c@db.internal:5432/mlflow?sslmode=require"
    assert args[args.index("--app-name") + 1] == "basic-auth"
    parser = configparser.ConfigParser()
    parser.read(auth_path)
    assert parser["mlflow"]["admin_password"] == "p%ss-word-long-enough"
    assert parser["mlflow"]["database_uri"] == backend
