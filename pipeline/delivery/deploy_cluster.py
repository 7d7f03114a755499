"""One release on the cluster: canary the candidate (Deploy), then promote it (SmokeTest).

The release states, in order (docs/delivery.md, "Release states"):

1. **candidate** - Train's register step set ``candidate`` on a version that passed the
   gate and wrote ``release.json`` (``pipeline.delivery.release``). Nothing serves it.
2. **approved** - prod only: a person approved this execution (CodePipeline's manual
   approval). A rejection ends the execution; nothing below runs.
3. **canaried** - :func:`deploy_release` took the release lease, checked that
   ``champion`` still names the version the candidate was gated against, pointed the
   Rollout at exactly the release's version and image, and Argo's analysis passed
   (the CloudWatch alarms stayed quiet). ``champion`` has not moved.
4. **released** - :func:`finish_release` smoke-tested the endpoint, moved ``champion``
   by compare-and-set, closed the candidate and gave the lease back.

Every fault ends with ``champion`` and what serves as they were before the release:
transient kubectl and AWS errors are retried (``pipeline.delivery.retry``); any other
error during the bake aborts the Rollout, restores the exact previous container (each
step idempotent and retried), waits until the controller has observed the restored
revision before promoting it, and only then fails the stage. A restore that cannot
finish fails with ``ERROR`` and says what to check, never with a success.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.delivery import registry
from pipeline.delivery.deploy_record import DeploymentRecord
from pipeline.delivery.errors import StageFailed
from pipeline.delivery.lease import LeaseBusy, ReleaseLease
from pipeline.delivery.release import Release
from pipeline.delivery.retry import retrying
from pipeline.delivery.rollout import (
    KubectlError,
    RolloutOutcome,
    RolloutTarget,
    Serving,
    abort,
    apply_serving,
    container_of,
    get_rollout,
    get_template_owner,
    kubectl,
    promote_full,
    restore_container,
    serving_of,
    settled,
    wait_healthy,
    wait_observed,
    watch_rollout,
)
from pipeline.exit_codes import ExitCode


@dataclass(frozen=True)
class DeployResult:
    """``canaried`` or ``already-serving``, and the record SmokeTest reads (a fault raises)."""

    action: str
    message: str
    record: DeploymentRecord


@dataclass(frozen=True)
class Cluster:
    """How the release reaches the Rollout: kubectl, waits and clocks (tests inject doubles)."""

    target: RolloutTarget
    run: Callable[..., str] = kubectl
    poll_s: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    log: Callable[[str], None] = print

    def kube(self, args: Sequence[str], **kwargs: Any) -> str:
        """One kubectl call, retried while it fails transiently."""
        return retrying(lambda: self.run(list(args), **kwargs), sleep=self.sleep, on_retry=self.log)


def _conflict(stage: str, reason: str) -> StageFailed:
    return StageFailed(stage, reason, ExitCode.RELEASE_CONFLICT)


def _take_lease(lease: ReleaseLease, stage: str, wait_s: float, log: Callable[[str], None]) -> None:
    try:
        lease.acquire(stage, wait_s=wait_s, log=log)
    except LeaseBusy as exc:
        raise _conflict(stage, str(exc)) from exc


def deploy_release(
    release: Release,
    *,
    tracking_uri: str,
    cluster: Cluster,
    timeout_s: float,
    check_alarms: Callable[[], Sequence[str]] | None = None,
    lease: ReleaseLease | None = None,
    lease_wait_s: float = 0.0,
) -> DeployResult:
    """Canary exactly ``release.version`` on the Rollout; never moves ``champion``.

    Refuses (``RELEASE_CONFLICT``, nothing touched) when another release holds the
    lease or ``champion`` moved since the gate; refuses (``ERROR``) a Rollout that is
    not settled (an earlier release's restore did not finish: what it serves is not
    what its template says). On a failed canary, alarm, time-out or any error during the
    bake: abort, restore, then ``DEPLOY_FAILED`` (``ERROR`` if the restore could not
    finish). On success the lease stays held for :func:`finish_release`.
    """
    lease = lease or ReleaseLease(tracking_uri, release.model_name, release.release_id)
    _take_lease(lease, "deploy", lease_wait_s, cluster.log)
    keep_lease = False
    try:
        result = _deploy_under_lease(release, tracking_uri, cluster, timeout_s, check_alarms)
        keep_lease = True
        return result
    finally:
        if not keep_lease:
            cluster.log(lease.release())


def _deploy_under_lease(release: Release, tracking_uri: str, cluster: Cluster, timeout_s: float,
                        check_alarms: Callable[[], Sequence[str]] | None) -> DeployResult:
    model, version, target = release.model_name, release.version, cluster.target
    champion = retrying(lambda: registry.alias_version(tracking_uri, model, registry.CHAMPION), sleep=cluster.sleep)
    if champion not in (release.base_champion, version):
        note = registry.close_candidate(tracking_uri, model, version, f"superseded: champion moved to v{champion} before the canary")
        raise _conflict("deploy", f"{model}@champion is v{champion or 'nothing'}, but v{version} was gated against "
                                  f"v{release.base_champion or 'nothing'}: another release promoted in between; nothing deployed; {note}")
    image = release.image or _image_tag(tracking_uri, model, version)
    if not image:
        raise StageFailed("deploy", f"{model} v{version} has no image_digest tag and release.json names no image; nothing deployed")
    try:
        owner = _json_get(cluster, target.template_kind, target)
        live = _json_get(cluster, "rollout", target)
        before = serving_of(owner, target, cluster.kube)
    except (KubectlError, LookupError, ValueError) as exc:
        raise StageFailed("deploy", f"cannot read {target.template_kind} {target.namespace}/{target.name}: {exc}; nothing deployed") from exc
    wanted = Serving(model, version, image)
    if not settled(live):
        status = live.get("status", {}) or {}
        raise StageFailed("deploy", f"rollout {target.namespace}/{target.name} is not settled (phase {status.get('phase')}, "
                                    f"abort={bool(status.get('abort'))}, stable {status.get('stableRS')}, current {status.get('currentPodHash')}): "
                                    "an earlier release did not finish; what serves is not what its template says. Restore it "
                                    "(`kubectl argo rollouts undo` or the failed stage's deployment.json) and retry; nothing deployed")
    if before == wanted:
        record = DeploymentRecord("already-serving", model, target, wanted, None, release.release_id, None)
        return DeployResult("already-serving", f"{model} v{version} ({image}) already serves; the canary ran before", record)
    previous_container = container_of(owner, target)
    old_hash = (live.get("status", {}) or {}).get("currentPodHash")
    cluster.log(f"deploy: canary of {model} v{version} ({image}) replacing v{before.model_version} ({before.image})")
    try:
        apply_serving(target, wanted, cluster.kube)
    except (KubectlError, LookupError, ValueError) as exc:
        # Refused (a test op, a webhook): the template is as it was; nothing to restore.
        raise StageFailed("deploy", f"the Rollout refused the new template: {exc}; nothing deployed") from exc
    alarms = None if check_alarms is None else (lambda: retrying(lambda: list(check_alarms()), sleep=cluster.sleep, on_retry=cluster.log))
    try:
        outcome = watch_rollout(target, previous_pod_hash=old_hash, timeout_s=timeout_s, poll_s=cluster.poll_s, run=cluster.kube,
                                check_alarms=alarms, sleep=cluster.sleep, clock=cluster.clock)
    except Exception as exc:  # any error during the bake: abort and restore, then fail
        outcome = RolloutOutcome("error", f"{type(exc).__name__}: {exc}", 0)
    if outcome.state == "healthy":
        record = DeploymentRecord("canaried", model, target, wanted, before, release.release_id, previous_container)
        return DeployResult("canaried", f"{model} v{version} passed its canary and serves ({image}); champion moves after the smoke test", record)
    restored, steps = restore_workload(cluster, previous_container, abort_first=True)
    note = registry.close_candidate(tracking_uri, model, version, f"rejected: canary {outcome.state}: {outcome.message}"[:4900])
    detail = f"canary of v{version} {outcome.state}: {outcome.message}; " + "; ".join(steps) + f"; champion stays v{champion or 'unset'}; {note}"
    raise StageFailed("deploy", detail, ExitCode.DEPLOY_FAILED if restored else ExitCode.ERROR)


def _json_get(cluster: Cluster, kind: str, target: RolloutTarget) -> dict[str, Any]:
    if kind == "rollout":
        return get_rollout(target, cluster.kube)
    return get_template_owner(target, cluster.kube)


def _image_tag(tracking_uri: str, model: str, version: str) -> str | None:
    from mlflow import MlflowClient

    tags = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri).get_model_version(model, version).tags or {}
    return tags.get("image_digest")


def restore_workload(cluster: Cluster, container: dict[str, Any], *, abort_first: bool, timeout_s: float = 600.0) -> tuple[bool, list[str]]:
    """Put the Rollout's container back exactly as recorded and wait until it serves.

    Order matters against the real controller: abort first (traffic to stable at once,
    when a canary is running); restore the template (an exact copy hashes as before);
    wait until the controller observed it (``currentPodHash`` moved) before any
    ``promoteFull``, which it would otherwise clear; promote in full only when the
    restored revision is not already the stable one; wait until settled. Every call
    retries transient errors; each step is idempotent, so a retried stage may run it
    again. Returns ``(restored, steps)``; a step that cannot finish says so.
    """
    target, steps = cluster.target, []
    try:
        if abort_first:
            abort(target, cluster.kube)
            steps.append("rollout aborted (traffic back on the stable ReplicaSet)")
        bad_hash = (get_rollout(target, cluster.kube).get("status", {}) or {}).get("currentPodHash")
        changed = restore_container(target, container, cluster.kube)
        steps.append(f"template restored to {container.get('image')}" if changed else "template already holds the recorded container")
        if changed:
            wait_observed(target, previous_pod_hash=bad_hash, timeout_s=timeout_s, poll_s=cluster.poll_s, run=cluster.kube,
                          sleep=cluster.sleep, clock=cluster.clock)
        live = get_rollout(target, cluster.kube)
        if not settled(live):
            promote_full(target, cluster.kube)
            steps.append("restored revision promoted in full (it passed its own canary before)")
        outcome = wait_healthy(target, previous_pod_hash=bad_hash if changed else None, timeout_s=timeout_s, poll_s=cluster.poll_s,
                               run=cluster.kube, sleep=cluster.sleep, clock=cluster.clock)
    except Exception as exc:  # noqa: BLE001 - reported, and the stage fails with ERROR
        steps.append(f"restore FAILED ({type(exc).__name__}: {exc}); check {target.namespace}/{target.name} by hand")
        return False, steps
    if outcome.state != "healthy":
        steps.append(f"restored revision not healthy: {outcome.message}; check {target.namespace}/{target.name} by hand")
        return False, steps
    steps.append(f"rollout settled on the restored revision after {outcome.polls} poll(s)")
    return True, steps


SmokeCheck = Callable[[str, str], Any]
"""``check(url, version)`` -> an object with ``passed`` and a printable report."""


def finish_release(
    release: Release,
    record: DeploymentRecord,
    *,
    tracking_uri: str,
    url: str,
    smoke_check: SmokeCheck,
    cluster: Cluster,
    lease: ReleaseLease | None = None,
    restore_timeout_s: float = 600.0,
) -> str:
    """Smoke-test the canaried version; on success move ``champion`` by compare-and-set.

    Refuses (``USAGE``) a record of another release. On a failed smoke test, or when
    ``champion`` moved meanwhile (``RELEASE_CONFLICT``), the Rollout goes back to the
    recorded container and ``champion`` stays where it was; ``ERROR`` when the restore
    could not finish. Returns the line describing the promotion.
    """
    model, version = release.model_name, release.version
    if record.release_id != release.release_id or record.deployed.model_version != version or record.model_name != model:
        raise StageFailed("smoke-test", f"deployment record is for release {record.release_id} ({record.model_name} "
                                        f"v{record.deployed.model_version}), not {release.release_id} ({model} v{version}); nothing touched", ExitCode.USAGE)
    lease = lease or ReleaseLease(tracking_uri, model, release.release_id)
    _take_lease(lease, "smoke-test", 0.0, cluster.log)
    try:
        result = smoke_check(url, version)
        failure: tuple[str, ExitCode] | None = None
        if not getattr(result, "passed", False):
            failure = (f"smoke test of v{version} failed: {result}", ExitCode.DEPLOY_FAILED)
        else:
            try:
                promoted = retrying(lambda: registry.promote_if_unchanged(tracking_uri, model, expected=release.base_champion, version=version),
                                    sleep=cluster.sleep, on_retry=cluster.log)
            except registry.ChampionMoved as exc:
                failure = (str(exc), ExitCode.RELEASE_CONFLICT)
        if failure is None:
            note = registry.close_candidate(tracking_uri, model, version, f"released by {release.release_id}")
            return f"smoke test passed ({result}); {promoted}; {note}"
        reason, code = failure
        steps: list[str] = []
        restored = True
        if record.previous_container is not None:
            restored, steps = restore_workload(cluster, record.previous_container, abort_first=False, timeout_s=restore_timeout_s)
        else:
            steps.append(f"rollout: nothing to restore (v{version} already served before this release's deploy)")
        note = registry.close_candidate(tracking_uri, model, version, f"rejected: {reason}"[:4900])
        champion = registry.alias_version(tracking_uri, model, registry.CHAMPION)
        raise StageFailed("smoke-test", f"{reason}; " + "; ".join(steps) + f"; champion stays v{champion or 'unset'}; {note}",
                          code if restored else ExitCode.ERROR)
    finally:
        cluster.log(lease.release())
