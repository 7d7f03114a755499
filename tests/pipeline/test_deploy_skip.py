"""A deploy that did not run says so (issue 15): the deploy step of a refused candidate,
or of a run with ``--no-deploy``, is ``skipped`` with its reason, never ``done``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.local_store import LocalStore
from pipeline.runner import Artifact, RunConfig, StepContext
from pipeline.wiring import deploy_step


def _context(tmp_path: Path, *, promoted: bool, deploy: bool) -> StepContext:
    registration = tmp_path / "registration.json"
    registration.write_text(json.dumps({"version": "2", "promoted": promoted}))
    champion = tmp_path / "champion.json"
    champion.write_text(json.dumps({"version": "1"}))
    return StepContext(
        config=RunConfig(deploy=deploy), store=LocalStore(tmp_path / "store"), tracking_uri="sqlite:///unused.db",
        inputs={"registration": Artifact("registration", registration, "r"), "champion": Artifact("champion", champion, "c")},
        output_dir=tmp_path, report_dir=tmp_path / "reports", key="k", keys={},
    )


@pytest.mark.parametrize(("promoted", "deploy", "reason"), [
    (False, True, "v2 was not promoted, nothing to deploy"),
    (True, False, "--no-deploy"),
])
def test_a_deploy_that_does_not_run_is_skipped_with_its_reason(
    tmp_path: Path, promoted: bool, deploy: bool, reason: str
) -> None:
    ctx = _context(tmp_path, promoted=promoted, deploy=deploy)
    assert deploy_step(ctx) == {}
    assert ctx.skipped == reason
    assert not (tmp_path / "reports" / "deploy.json").exists()
