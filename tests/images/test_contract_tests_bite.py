"""The contract tests catch a broken image: a serving image built with one ``COPY`` line
removed (the one that shipped without it crashed at start) must fail the SageMaker
contract's readiness check, with the reason in the container's log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.schema import REPO_ROOT
from serving.process import free_port
from tests.images.podman import IMAGE_PREFIX, podman, podman_env
from tests.images.test_serving_sagemaker import sagemaker_model_dir, serve_env, serve_options, wait_ready

IMAGES_USED = ("serving",)
MUTANT = f"{IMAGE_PREFIX}/serving-without-pipeline:test"
REMOVED = "COPY pipeline/__init__.py pipeline/metric_names.py pipeline/gc_tuning.py /opt/program/pipeline/"


@pytest.fixture(scope="module")
def mutant_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import os
    import subprocess

    dockerfile = (REPO_ROOT / "serving" / "Dockerfile").read_text()
    assert REMOVED in dockerfile, "the line this test removes is gone: update the test"
    mutated = tmp_path_factory.mktemp("mutant") / "Dockerfile"
    mutated.write_text(dockerfile.replace(REMOVED, ""))
    base = os.environ.get("MLOPS_BASE_STANDIN", f"{IMAGE_PREFIX}/python-standin:3.11-slim-bookworm")
    subprocess.run(["buildah", "build", "--quiet", "--layers", "--format", "docker", "--pull=never", "--network", "host",
                    "--from", base, "-f", str(mutated), "-t", MUTANT, str(REPO_ROOT)],
                   check=True, capture_output=True, timeout=900, env=podman_env())
    yield MUTANT
    podman("rmi", "-f", MUTANT, check=False)


def test_a_build_without_the_pipeline_copy_fails_the_readiness_contract(mutant_image: str, tmp_path: Path) -> None:
    from tests.images import podman as podman_module

    tmp_path.chmod(0o755)
    model_dir = sagemaker_model_dir(tmp_path)
    port = free_port()
    name = "mlops-test-mutant"
    podman("run", "-d", "--name", name, "--network", "host", *serve_options(model_dir),
           *[i for k, v in serve_env(port).items() for i in ("-e", f"{k}={v}")], mutant_image, "serve")
    try:
        with pytest.raises(AssertionError, match="No module named 'pipeline'"):
            wait_ready(f"http://127.0.0.1:{port}", podman_module.Container(name), timeout=60)
    finally:
        podman("rm", "-f", name, check=False)
