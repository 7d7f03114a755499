"""Local deploy: serve the new champion on 127.0.0.1, smoke-test it, roll back on failure.

The pipeline run calls :func:`deploy` after *register* has moved ``champion``. It starts
the real server (``python -m serving``, the image's entry point) on
``models:/NAME@champion`` at a free loopback port, runs the smoke test
(:mod:`pipeline.steps.smoke_test`), stops the server, and when any check fails moves
``champion`` back to the previous version, or deletes it when there was none, and says
so in the result. Rollback is one ``set_registered_model_alias`` (or delete) call, as
docs/contracts.md ("The model") asks. The deploy-time server captures nothing, so smoke
traffic never reaches the monitors.

A run killed mid-deploy leaves the new champion tagged ``deploy_smoke_test=pending``
(register sets it when it promotes, and :func:`deploy` replaces it with the verdict); the
next run finds that tag and calls :func:`deploy` again to finish the job
(``pipeline.wiring.resume_deploy_step``). The version ``champion`` replaced is recorded
on the new one (``replaced_champion``) so that late rollback knows where to go.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pipeline.registry import PENDING, REPLACED_TAG, SMOKE_TAG
from pipeline.steps.smoke_test import KnownPrediction, SmokeCheck, known_prediction, run_smoke_test
from serving.process import ServerStartError, running_server

log = logging.getLogger("pipeline.deploy")

__all__ = ["PENDING", "REPLACED_TAG", "SMOKE_TAG", "DeployResult", "deploy"]

@dataclass(frozen=True)
class DeployResult:
    """What the deploy did: verdict, each check, any rollback, where the server logged."""

    passed: bool
    model_name: str
    version: str
    checks: tuple[SmokeCheck, ...]
    rolled_back_to: str | None
    alias_deleted: bool
    url: str | None
    log_path: Path
    message: str


def _scored(offline: Future[KnownPrediction], checks: list[SmokeCheck]) -> KnownPrediction | None:
    """Wait for the offline score and record it as the ``known_input`` check."""
    try:
        expected = offline.result()
    except Exception as exc:  # any failure to score offline fails the deploy, with the reason
        checks.append(SmokeCheck("known_input", False, f"cannot score the input example offline: {type(exc).__name__}: {exc}"))
        return None
    checks.append(SmokeCheck("known_input", True, f"{len(expected.predictions)} rows scored offline"))
    return expected


def _roll_back(tracking_uri: str, model_name: str, alias: str, new_version: str, previous: str | None) -> tuple[str | None, bool, str]:
    """Move ``alias`` back to ``previous`` (or delete it); returns (target, deleted, note)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        current = str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException:
        current = None
    if current != str(new_version):
        # Someone moved the alias since register; rolling back would clobber their move.
        return None, False, f"'{alias}' now points at version {current}, not {new_version}: left as it is"
    if previous is not None:
        client.set_registered_model_alias(model_name, alias, str(previous))
        return str(previous), False, f"'{alias}' moved back to version {previous}"
    client.delete_registered_model_alias(model_name, alias)
    return None, True, f"'{alias}' deleted (there was no previous champion)"


def deploy(
    tracking_uri: str,
    model_name: str,
    new_version: str,
    previous_version: str | None,
    *,
    alias: str = "champion",
    log_dir: Path | None = None,
    startup_timeout_s: float = 120.0,
    server_args: Sequence[str] = (),
    pidfile: Path | None = None,
    progress: Callable[[str], None] = lambda phase: None,
) -> DeployResult:
    """Deploy ``new_version`` (already the ``alias`` target) locally and smoke-test it.

    Needs the registry at ``tracking_uri``; gives a :class:`DeployResult` and never
    raises for a failed deploy (it rolls back instead); ``server_args`` pass through to
    ``python -m serving``. ``passed`` false means ``ExitCode.DEPLOY_FAILED``. With
    ``pidfile``, the server is recorded there while it runs
    (``pipeline.deploy_server``), so a later run can reap it if this one is killed.
    ``progress`` hears each phase (server start, smoke test, rollback)."""
    from mlflow.tracking import MlflowClient

    new_version = str(new_version)
    log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="deploy-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"serve-{model_name}-v{new_version}.log"
    checks: list[SmokeCheck] = []
    url = None
    start_error: str | None = None
    smoke: tuple[SmokeCheck, ...] = ()
    if pidfile is not None:
        from pipeline.deploy_server import tracked_server

        launcher = tracked_server(
            f"models:/{model_name}@{alias}", pidfile=pidfile, tracking_uri=tracking_uri,
            log_path=log_path, extra_args=server_args, startup_timeout_s=startup_timeout_s,
        )
    else:
        launcher = running_server(
            f"models:/{model_name}@{alias}", tracking_uri=tracking_uri, extra_args=list(server_args),
            log_path=log_path, startup_timeout_s=startup_timeout_s,
        )
    # The offline score is computed while the server process starts, on the core it
    # leaves idle: the two are independent, and the server's start is the longer.
    with ThreadPoolExecutor(1, thread_name_prefix="known-input") as pool:
        offline = pool.submit(known_prediction, tracking_uri, model_name, new_version)
        progress(f"starting the model server on models:/{model_name}@{alias}, waiting for /ping")
        try:
            with launcher as server:
                url = server.url
                expected = _scored(offline, checks)
                if expected is not None:
                    progress(f"smoke test against {server.url}: health, a known prediction, the version")
                    smoke = run_smoke_test(server.url, expected, model_name, new_version).checks
        except ServerStartError as exc:
            start_error = str(exc).splitlines()[0]
        if not checks:
            _scored(offline, checks)
    checks.append(SmokeCheck("server_start", False, start_error) if start_error
                  else SmokeCheck("server_start", True, f"healthy at {url}"))
    checks.extend(smoke)
    passed = all(check.passed for check in checks)
    MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri).set_model_version_tag(
        model_name, new_version, SMOKE_TAG, "passed" if passed else "failed"
    )
    if passed:
        message = f"{model_name} version {new_version} deployed locally and passed {len(checks)} smoke checks"
        return DeployResult(True, model_name, new_version, tuple(checks), None, False, url, log_path, message)
    failed = ", ".join(check.name for check in checks if not check.passed)
    progress(f"smoke test failed ({failed}); rolling '{alias}' back")
    target, deleted, note = _roll_back(tracking_uri, model_name, alias, new_version, previous_version)
    message = f"{model_name} version {new_version} failed the smoke test ({failed}); rolled back: {note}"
    log.error(message)
    return DeployResult(False, model_name, new_version, tuple(checks), target, deleted, url, log_path, message)
