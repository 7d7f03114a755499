"""The image contract tests run on images built by ``make images``.

``make image-test`` builds them and sets ``MLOPS_REQUIRE_IMAGES=1``, and then a missing
image, or podman itself missing, fails the run. A plain ``pytest`` (``make test``) skips
this folder with a message that names the target, because building images needs root,
Debian's podman/buildah and several minutes.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.images.podman import IMAGES, image, image_exists

REQUIRED = os.environ.get("MLOPS_REQUIRE_IMAGES") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    if REQUIRED:
        return
    skip = pytest.mark.skip(reason="image contract tests run under `make image-test` (builds the images first)")
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(skip)


@pytest.fixture(scope="module", autouse=True)
def _images_built(request: pytest.FixtureRequest) -> None:
    """Each test module names the images it runs in ``IMAGES_USED``; all three by default."""
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: run `make image-test`, which installs it")
    used = getattr(request.module, "IMAGES_USED", IMAGES)
    missing = [image(name) for name in used if not image_exists(name)]
    if missing:
        pytest.fail(f"images not built: {', '.join(missing)} (run `make images`)")
