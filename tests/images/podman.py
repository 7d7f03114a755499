"""A thin, bounded wrapper around podman for the image contract tests.

The images are built by ``make images`` (images/build.sh) from their unchanged
Dockerfiles; these helpers run them the way their platform does: SageMaker's
``docker run IMAGE serve|train``, a Kubernetes pod spec's user, read-only root filesystem
and mounts. Every container runs with ``--network host`` (there is no bridge networking
here) and every listener is bound to 127.0.0.1 by the test; every wait has a deadline.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline.schema import REPO_ROOT

CONF_DIR = REPO_ROOT / "build" / "containers"
IMAGE_PREFIX = os.environ.get("MLOPS_IMAGE_PREFIX", "localhost/mlops-test")
IMAGES = ("serving", "training", "mlflow")


def image(name: str) -> str:
    """The test tag images/build.sh gives image ``name``."""
    return f"{IMAGE_PREFIX}/{name}:test"


def podman_env() -> dict[str, str]:
    """The process environment with podman pointed at images/env.sh's configuration."""
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(CONF_DIR / "containers.conf")
    env["CONTAINERS_STORAGE_CONF"] = str(CONF_DIR / "storage.conf")
    return env


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``podman ARGS``; raise with its output when it fails and ``check`` is set."""
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, env=podman_env())
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def image_exists(name: str) -> bool:
    if not (CONF_DIR / "containers.conf").is_file():
        return False
    try:
        return podman("image", "exists", image(name), check=False, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass
class Container:
    """A detached container: its name, and helpers to read its state and logs."""

    name: str

    def logs(self) -> str:
        result = podman("logs", self.name, check=False, timeout=30)
        return result.stdout + result.stderr

    def state(self) -> dict[str, object]:
        import json

        result = podman("inspect", "--format", "json", self.name, check=False, timeout=30)
        if result.returncode != 0:
            return {"Status": "gone"}
        return json.loads(result.stdout)[0]["State"]

    def running(self) -> bool:
        return self.state().get("Status") == "running"

    def wait(self, timeout: float) -> int:
        """Wait for the container to exit; its exit code."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if state.get("Status") in ("exited", "stopped"):
                return int(state.get("ExitCode", -1))  # type: ignore[arg-type]
            time.sleep(0.2)
        raise AssertionError(f"container {self.name} still running after {timeout} s:\n{self.logs()[-3000:]}")


@contextmanager
def run_detached(image_name: str, args: Sequence[str] = (), *, options: Sequence[str] = (),
                 env: dict[str, str] | None = None) -> Iterator[Container]:
    """``podman run -d`` with host networking; the container is removed afterwards."""
    name = f"mlops-test-{uuid.uuid4().hex[:10]}"
    env_args = [item for key, value in (env or {}).items() for item in ("-e", f"{key}={value}")]
    podman("run", "-d", "--name", name, "--network", "host", *options, *env_args, image(image_name), *args, timeout=120)
    container = Container(name)
    try:
        yield container
    finally:
        podman("rm", "-f", "-t", "2", name, check=False, timeout=60)


def run_to_completion(image_name: str, args: Sequence[str] = (), *, options: Sequence[str] = (),
                      env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``podman run --rm`` and wait; its result (never raises on a non-zero exit)."""
    env_args = [item for key, value in (env or {}).items() for item in ("-e", f"{key}={value}")]
    return podman("run", "--rm", *options, *env_args, image(image_name), *args, timeout=timeout, check=False)


def root_owned_dir(path: Path) -> Path:
    """A folder owned by root, mode 0755: how SageMaker mounts /opt/ml/model and friends."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, 0, 0)
    path.chmod(0o755)
    return path
