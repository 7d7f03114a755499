"""A thin, bounded wrapper around podman for the image contract tests.

The images are built by ``make images`` (images/build.sh) from their unchanged
Dockerfiles; these helpers run them the way their platform does: SageMaker's
``docker run IMAGE serve|train``, a Kubernetes pod spec's user, read-only root filesystem
and mounts. Every container runs with ``--network host`` (there is no bridge networking
here) and every listener is bound to 127.0.0.1 by the test; every wait has a deadline.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from pipeline import containers
from pipeline.containers import IMAGE_PREFIX, IMAGES, podman_env, root_owned_dir

__all__ = ["IMAGES", "IMAGE_PREFIX", "Container", "image", "image_exists", "podman", "podman_env", "root_owned_dir",
           "run_detached", "run_to_completion"]


def image(name: str) -> str:
    """The test tag images/build.sh gives image ``name``."""
    return containers.image(name)


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``podman ARGS``; a failure raises AssertionError (a test failure) with podman's output."""
    try:
        return containers.podman(*args, timeout=timeout, check=check)
    except containers.ContainerError as exc:
        raise AssertionError(str(exc)) from exc


image_exists = containers.image_exists


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
    podman("run", "-d", "--name", name, "--network", "host", *options, *containers.env_args(env), image(image_name), *args, timeout=120)
    container = Container(name)
    try:
        yield container
    finally:
        podman("rm", "-f", "-t", "2", name, check=False, timeout=60)


def run_to_completion(image_name: str, args: Sequence[str] = (), *, options: Sequence[str] = (),
                      env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``podman run --rm`` and wait; its result (never raises on a non-zero exit)."""
    return containers.run_to_completion(image(image_name), args, options=options, env=env, timeout=timeout)
