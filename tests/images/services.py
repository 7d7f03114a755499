"""Real backing services for the image tests, all on 127.0.0.1 and all bounded.

- PostgreSQL 15 from Debian's package, TLS on and password (SCRAM) authentication only
  over TLS, as RDS with ``rds.force_ssl=1`` behaves; a throwaway cluster per session.
- moto's server for S3 and Secrets Manager (the MLflow image reads its database secret
  from Secrets Manager and stores artifacts in S3).
- The MLflow image itself, with basic auth, as the MlflowServer component runs it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from serving.process import free_port
from tests.images.podman import Container, run_detached

PG_BIN = Path("/usr/lib/postgresql/15/bin")
REGION = "us-east-1"


@dataclass(frozen=True)
class Postgres:
    port: int
    database: str
    user: str
    password: str


def _as_postgres(*command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True,
                          timeout=timeout, check=True)


@contextmanager
def postgres_with_tls() -> Iterator[Postgres]:
    """A PostgreSQL cluster on 127.0.0.1 that accepts passwords only over TLS.

    Its folder is outside pytest's (root-only) temporary tree: the server runs as the
    ``postgres`` user, which must reach it."""
    root = Path(tempfile.mkdtemp(prefix="mlops-postgres-", dir="/var/tmp"))
    shutil.chown(root, "postgres", "postgres")
    data, tls = root / "data", root / "tls"
    tls.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(tls / "server.key"), "-out", str(tls / "server.crt")],
                   capture_output=True, check=True, timeout=60)
    for path in (tls, tls / "server.key", tls / "server.crt"):
        shutil.chown(path, "postgres", "postgres")
    (tls / "server.key").chmod(0o600)
    _as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "peer", "-U", "postgres", "--no-sync")
    # TLS or nothing for TCP clients: a client that does not ask for TLS is refused.
    (data / "pg_hba.conf").write_text("local all postgres peer\nhostssl all all 127.0.0.1/32 scram-sha-256\n")
    port = free_port()
    server = subprocess.Popen(
        ["runuser", "-u", "postgres", "--", str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port),
         "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={root}", "-c", "ssl=on",
         "-c", f"ssl_cert_file={tls / 'server.crt'}", "-c", f"ssl_key_file={tls / 'server.key'}", "-c", "fsync=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([str(PG_BIN / "pg_isready"), "-h", str(root), "-p", str(port)],
                             capture_output=True).returncode != 0:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start: {server.stderr.read() if server.stderr else ''}")
            time.sleep(0.2)
        # A password with characters that need quoting in a URI and in an ini file.
        password = "p@ss/w%rd:" + secrets.token_hex(8)
        # Two -c: CREATE DATABASE cannot run inside the one transaction a single -c opens.
        _as_postgres(str(PG_BIN / "psql"), "-h", str(root), "-p", str(port), "-v", "ON_ERROR_STOP=1",
                     "-c", f"CREATE ROLE mlflow LOGIN PASSWORD '{password}'", "-c", "CREATE DATABASE mlflow OWNER mlflow")
        yield Postgres(port=port, database="mlflow", user="mlflow", password=password)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class Moto:
    endpoint: str

    def client(self, service: str):  # noqa: ANN201 - a boto3 client
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")


@contextmanager
def moto_server() -> Iterator[Moto]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield Moto(endpoint=f"http://127.0.0.1:{port}")
    finally:
        server.stop()


@dataclass(frozen=True)
class MlflowServer:
    url: str
    admin_user: str
    admin_password: str
    container: Container

    @property
    def auth(self) -> tuple[str, str]:
        return self.admin_user, self.admin_password


def wait_health(url: str, container: Container, timeout: float = 180) -> float:
    """Seconds until ``/health`` answers 200 (the pod's readiness probe)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if not container.running():
            raise AssertionError(f"the MLflow container exited:\n{container.logs()[-4000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return time.monotonic() - start
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"MLflow /health not 200 within {timeout} s:\n{container.logs()[-4000:]}")


@dataclass(frozen=True)
class MlflowSettings:
    """What the MlflowServer component gives the pod: database, secret, admin files, bucket."""

    env: dict[str, str]
    admin_dir: Path
    admin_user: str
    admin_password: str


def mlflow_settings(root: Path, postgres: Postgres, moto: Moto, secret_key: str) -> MlflowSettings:
    arn = moto.client("secretsmanager").create_secret(
        Name=f"rds-mlflow-{secrets.token_hex(4)}",
        SecretString=json.dumps({"username": postgres.user, "password": postgres.password}))["ARN"]
    bucket = f"mlflow-artifacts-{secrets.token_hex(4)}"
    moto.client("s3").create_bucket(Bucket=bucket)
    admin_dir = root / "admin"
    admin_dir.mkdir(parents=True, mode=0o755)
    user, password = "admin", "Adm1n-" + secrets.token_hex(8)
    (admin_dir / "username").write_text(user)
    (admin_dir / "password").write_text(password)
    for path in admin_dir.iterdir():
        path.chmod(0o644)
    env = {
        "MLFLOW_DB_HOST": "127.0.0.1", "MLFLOW_DB_PORT": str(postgres.port), "MLFLOW_DB_NAME": postgres.database,
        "MLFLOW_DB_SECRET_ARN": arn, "MLFLOW_ADMIN_CREDENTIALS_DIR": "/var/run/secrets/mlflow-admin",
        "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{bucket}/mlflow", "MLFLOW_FLASK_SERVER_SECRET_KEY": secret_key,
        # IRSA on EKS; here moto's endpoint and dummy keys.
        "AWS_ENDPOINT_URL": moto.endpoint, "MLFLOW_S3_ENDPOINT_URL": moto.endpoint, "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "MLFLOW_HOST": "127.0.0.1", "MLFLOW_WORKERS": "1",
    }
    return MlflowSettings(env=env, admin_dir=admin_dir, admin_user=user, admin_password=password)


@contextmanager
def mlflow_container(settings: MlflowSettings, *, read_only: bool = True) -> Iterator[MlflowServer]:
    """The MLflow image as the Deployment runs it: non-root, read-only root, /tmp writable."""
    port = free_port()
    options = ["-v", f"{settings.admin_dir}:/var/run/secrets/mlflow-admin:ro", "--user", "10001:10001",
               "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    if read_only:
        options += ["--read-only", "--tmpfs", "/tmp:rw,size=256m"]
    with run_detached("mlflow", options=options, env={**settings.env, "MLFLOW_PORT": str(port)}) as container:
        url = f"http://127.0.0.1:{port}"
        wait_health(url, container)
        yield MlflowServer(url=url, admin_user=settings.admin_user, admin_password=settings.admin_password,
                           container=container)


@contextmanager
def mlflow_stack(root: Path, secret_key: str | None = None) -> Iterator[tuple[MlflowServer, Moto, MlflowSettings]]:
    """PostgreSQL + moto + one MLflow container; yields the server, moto and its settings."""
    with ExitStack() as stack:
        postgres = stack.enter_context(postgres_with_tls())
        moto = stack.enter_context(moto_server())
        settings = mlflow_settings(root, postgres, moto, secret_key or secrets.token_hex(32))
        server = stack.enter_context(mlflow_container(settings))
        yield server, moto, settings


def client_env(server: MlflowServer) -> dict[str, str]:
    """How a pipeline job or the serving pod authenticates to the tracking server."""
    return {"MLFLOW_TRACKING_URI": server.url, "MLFLOW_TRACKING_USERNAME": server.admin_user,
            "MLFLOW_TRACKING_PASSWORD": server.admin_password}


def set_client_env(server: MlflowServer) -> dict[str, str | None]:
    """Point this process's MLflow client at ``server``; returns the previous values."""
    previous = {key: os.environ.get(key) for key in client_env(server)}
    os.environ.update(client_env(server))
    return previous
