"""Test-wide safety: no real cloud credentials, no telemetry, no traffic off loopback.

Environment defaults are set at import time, before any test module imports boto3,
sagemaker or mlflow, because those libraries read them when first imported.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys

import pytest

_OFFLINE_ENV = {
    # Dummy credentials: a test that forgets moto fails on a signature, never on a bill.
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
    "SAGEMAKER_VALIDATE_ROLE": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "PULUMI_SKIP_UPDATE_CHECK": "true",
}
for _key, _value in _OFFLINE_ENV.items():
    os.environ[_key] = _value
# A real tracking server must never be picked up from the developer's shell.
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("AWS_PROFILE", None)

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _guarded(real):
    def connect(self: socket.socket, address: object):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            raise ConnectionRefusedError(f"tests may only connect to loopback, not {address!r}")
        return real(self, address)

    return connect


@pytest.fixture(autouse=True, scope="session")
def _loopback_only():
    """Refuse, inside the test process, any TCP connection off 127.0.0.0/8 and ::1."""
    socket.socket.connect = _guarded(_real_connect)  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded(_real_connect_ex)  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _no_mlflow_uri_leaks():
    """Reset MLflow's process-wide URIs after each test.

    ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` into ``os.environ``;
    left behind, one test's store silently becomes the default registry of every test
    after it (see ``pipeline/mlflow_scope.py``).
    """
    yield
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        os.environ.pop(key, None)
    if "mlflow" in sys.modules:
        from mlflow.tracking import _tracking_service
        from mlflow.tracking._model_registry import utils as registry_utils

        _tracking_service.utils._tracking_uri = None
        registry_utils._registry_uri = None


@pytest.fixture
def use_project(monkeypatch: pytest.MonkeyPatch):
    """``use_project(path)`` makes ``path`` the active project configuration for one test.

    ``pipeline.schema`` serves every step the active contract; the test's own state (the
    loaded contract and ``MLOPS_PROJECT``, which processes started by the test inherit)
    is put back afterwards, so a regression project never leaks into the next test."""
    from pipeline import schema

    monkeypatch.setattr(schema, "_active", None)
    monkeypatch.delenv(schema.PROJECT_ENV, raising=False)

    def activate(path):
        # monkeypatch records the variable's value before ``schema.activate`` writes it;
        # recorded after, the undo would "restore" this test's project for every later test.
        monkeypatch.setenv(schema.PROJECT_ENV, str(os.path.abspath(path)))
        return schema.activate(path)

    return activate
