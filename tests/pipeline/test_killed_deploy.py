"""A run killed during its deploy leaves nothing lying: the next run finishes the deploy.

``python -m pipeline run`` is started for real and killed (SIGTERM or SIGKILL) once its
deploy server is up. SIGTERM must stop the server on the way out; after SIGKILL the
server is orphaned (about 400 MB), and the next run must stop it. Either way the champion
was promoted but never smoke-tested (``deploy_smoke_test=pending``): the next run must
smoke-test it, not say "nothing to do".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from pipeline.exit_codes import ExitCode
from pipeline.local_store import LocalStore
from pipeline.registry import SMOKE_TAG
from pipeline.runner import RunConfig, run_pipeline
from pipeline.schema import REPO_ROOT

pytestmark = pytest.mark.slow
QUIET = lambda line: None  # noqa: E731 - progress sink for tests


def _servers(store: Path) -> list[int]:
    """Live ``python -m serving`` processes serving from this store's registry."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and "serving" in argv and any(str(store) in part for part in argv):
            found.append(int(entry.name))
    return found


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "store"
    yield root
    for pid in _servers(root):  # never leak a server from a failed test
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_run_killed_during_deploy_is_finished_by_the_next_run(
    sig: signal.Signals, store: Path, adult_sample_csv: Path, fast_hyperparameters, tmp_path: Path
) -> None:
    hp = fast_hyperparameters
    command = [
        sys.executable, "-m", "pipeline", "run", "--data", str(adult_sample_csv), "--store", str(store), "--create-registry",
        "--param", f"n_estimators={hp.n_estimators}", "--param", f"max_depth={hp.max_depth}",
        "--param", f"learning_rate={hp.learning_rate}", "--param", f"device={hp.device}",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with (tmp_path / "run.log").open("wb") as log:
        run = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: _servers(store) or run.poll() is not None, 600, "the deploy server to start")
        assert run.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
        run.send_signal(sig)
        code = run.wait(60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    if sig == signal.SIGTERM:
        assert code == 128 + signal.SIGTERM, (tmp_path / "run.log").read_text()[-3000:]
        _wait(lambda: not _servers(store), 40, "SIGTERM to stop the deploy server")

    client = MlflowClient(tracking_uri=LocalStore(store).tracking_uri, registry_uri=LocalStore(store).tracking_uri)
    assert client.get_model_version("adult-income", "1").tags.get(SMOKE_TAG) == "pending"

    result = run_pipeline(RunConfig(data=adult_sample_csv, store=LocalStore(store), hyperparameters=hp), progress=QUIET)
    assert result.exit_code == ExitCode.OK, result.message
    assert any("finished the interrupted deploy of v1" in note for note in result.notes), result.notes
    assert client.get_model_version("adult-income", "1").tags[SMOKE_TAG] == "passed"
    assert str(client.get_model_version_by_alias("adult-income", "champion").version) == "1"
    assert not _servers(store), "an orphaned deploy server is still running"
    if sig == signal.SIGKILL:
        assert any("left behind" in note for note in result.notes), result.notes
