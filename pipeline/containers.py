"""Run the project's locally built images with podman (``make images``).

There is no Docker engine on the machines this project is developed and tested on;
podman and buildah (Debian packages) build and run the images from their unchanged
Dockerfiles. ``images/env.sh`` writes the podman configuration these hosts need under
``build/containers/``; every podman call made from Python goes through :func:`podman` so
it uses that configuration too. The images are tagged ``localhost/mlops-test/NAME:test``:
they are test images, built on a stand-in base, and never pushed anywhere.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipeline.schema import REPO_ROOT

CONF_DIR = REPO_ROOT / "build" / "containers"
IMAGE_PREFIX = os.environ.get("MLOPS_IMAGE_PREFIX", "localhost/mlops-test")
IMAGES = ("serving", "training", "mlflow")


class ContainerError(RuntimeError):
    """podman is missing, unconfigured, or a podman command failed."""


def image(name: str) -> str:
    """The test tag images/build.sh gives image ``name``."""
    return f"{IMAGE_PREFIX}/{name}:test"


def image_by_digest(name: str) -> str:
    """Image ``name`` referenced as ``repo@sha256:...``, the form BuildImages hands the
    pipeline in AWS (a tag can move; a release names exactly one image)."""
    digest = podman("image", "inspect", "--format", "{{.Digest}}", image(name), timeout=30).stdout.strip()
    if not digest.startswith("sha256:"):
        raise ContainerError(f"podman reports no digest for {image(name)}: {digest!r}")
    return f"{IMAGE_PREFIX}/{name}@{digest}"


def podman_env() -> dict[str, str]:
    """The process environment with podman pointed at images/env.sh's configuration."""
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(CONF_DIR / "containers.conf")
    env["CONTAINERS_STORAGE_CONF"] = str(CONF_DIR / "storage.conf")
    return env


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``podman ARGS``; raise :class:`ContainerError` with its output when it fails and ``check`` is set."""
    try:
        result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, env=podman_env())
    except FileNotFoundError as exc:
        raise ContainerError("podman is not installed: run `make images` (it installs podman and builds the images)") from exc
    if check and result.returncode != 0:
        raise ContainerError(f"podman {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def image_exists(name: str) -> bool:
    """True when ``make images`` has built image ``name`` on this machine."""
    if not (CONF_DIR / "containers.conf").is_file():
        return False
    try:
        return podman("image", "exists", image(name), check=False, timeout=30).returncode == 0
    except (ContainerError, subprocess.TimeoutExpired):
        return False


def env_args(env: Mapping[str, str] | None) -> list[str]:
    """``-e KEY=VALUE`` options for ``podman run``."""
    return [item for key, value in (env or {}).items() for item in ("-e", f"{key}={value}")]


def run_to_completion(image_ref: str, args: Sequence[str] = (), *, options: Sequence[str] = (),
                      env: Mapping[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``podman run --rm`` of a full image reference and wait; its result (a non-zero exit is returned, not raised)."""
    return podman("run", "--rm", *options, *env_args(env), image_ref, *args, timeout=timeout, check=False)


def root_owned_dir(path: Path) -> Path:
    """A folder owned by root, mode 0755: how SageMaker mounts /opt/ml/model and friends."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, 0, 0)
    path.chmod(0o755)
    return path
