"""``python -m pipeline deliver deploy``: ship the registry's champion to the cluster's canary.

Deploys fire only when ``champion`` moved: if the Rollout already serves the alias's
version, nothing happens. Otherwise the Rollout is pointed at the new version and its
image digest (the version's ``image_digest`` lineage tag, or the build stage's image),
Argo runs the canary steps and analysis, and this waits for the verdict, also
watching the CloudWatch serving alarms. On abort, time-out or a firing alarm, both the
workload (the Rollout spec) and the registry alias go back to what was serving, and
the stage fails with ``DEPLOY_FAILED``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipeline.delivery import registry
from pipeline.delivery.errors import StageFailed
from pipeline.delivery.deploy_record import DeploymentRecord
from pipeline.delivery.rollout import (
    KubectlError,
    RolloutTarget,
    Serving,
    apply_serving,
    get_template_owner,
    kubectl,
    pod_hash,
    promote_full,
    serving_of,
    wait_healthy,
    watch_rollout,
)
from pipeline.exit_codes import ExitCode


@dataclass(frozen=True)
class DeployResult:
    """``nothing-to-do`` or ``promoted``, with the versions involved (a rollback raises)."""

    action: str
    message: str
    version: str
    previous_version: str | None
    record: DeploymentRecord | None = None
    """What was replaced, for the SmokeTest stage (``deliver deploy --record``)."""


def deploy_champion_to_cluster(
    *,
    tracking_uri: str,
    model_name: str,
    target: RolloutTarget,
    timeout_s: float,
    poll_s: float = 10.0,
    image: str | None = None,
    run: Callable[..., str] = kubectl,
    check_alarms: Callable[[], Sequence[str]] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> DeployResult:
    """Point the Rollout at the champion, wait for Argo's verdict, roll back on failure.

    Raises :class:`StageFailed` (``DEPLOY_FAILED``) after restoring the Rollout spec and
    the alias when the canary is aborted, times out or an alarm fires; ``ERROR`` when
    there is no champion or no image digest to deploy.
    """
    champion = registry.current_champion(tracking_uri, model_name)
    if champion is None:
        raise StageFailed("deploy", f"{model_name} has no champion alias: nothing was ever promoted")
    before = serving_of(get_template_owner(target, run), target, run)
    if (before.model_name, before.model_version) == (model_name, champion.version):
        record = DeploymentRecord("nothing-to-do", model_name, target, before, None)
        return DeployResult("nothing-to-do", f"{model_name} v{champion.version} is already serving; champion did not move", champion.version, before.model_version, record)
    new_image = image or champion.image_digest
    if not new_image:
        raise StageFailed("deploy", f"{model_name} v{champion.version} has no image_digest tag and no --image was given")
    old_hash = pod_hash(target, run)
    apply_serving(target, Serving(model_name, champion.version, new_image), run)
    outcome = watch_rollout(target, previous_pod_hash=old_hash, timeout_s=timeout_s, poll_s=poll_s, run=run, check_alarms=check_alarms, sleep=sleep, clock=clock)
    if outcome.state == "healthy":
        record = DeploymentRecord("promoted", model_name, target, Serving(model_name, champion.version, new_image), before)
        return DeployResult("promoted", f"{model_name} v{champion.version} is serving ({new_image})", champion.version, before.model_version, record)
    # Restored pinned to what served, so a later pod restart cannot pick up the new alias.
    apply_serving(target, before, run)
    previous = before.model_version if before.model_name == model_name else None
    restored = registry.restore_champion(tracking_uri, model_name, previous)
    raise StageFailed(
        "deploy",
        f"canary of v{champion.version} {outcome.state}: {outcome.message}; rollout restored to v{before.model_version} ({before.image}); {restored}",
        ExitCode.DEPLOY_FAILED,
    )


def restore_after_failed_smoke_test(
    record: DeploymentRecord,
    *,
    tracking_uri: str,
    timeout_s: float,
    poll_s: float = 10.0,
    run: Callable[..., str] = kubectl,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[bool, list[str]]:
    """Put the Rollout, then the alias, back to what the deploy replaced.

    Why a re-applied spec and not ``kubectl argo rollouts undo``: the ModelService's
    Rollout takes its template from a ``workloadRef`` Deployment, which ``undo`` does not
    change (Argo would resync the new template from it); ``undo`` goes to whatever
    revision came before, not necessarily the recorded one; and it needs the Argo
    plugin in the build image. Re-applying the recorded image and pinned ``MODEL_URI``
    through the same JSON patch as the deploy is exact, guarded by a ``test`` op, and
    idempotent. The restored (known-good) revision is then promoted in full so it does
    not re-bake behind the failing one, and awaited without ever aborting it.

    The Rollout is checked first: if it serves neither what the deploy set nor what it
    replaced, someone else changed it and nothing is touched (``StageFailed``). Returns
    ``(workload_restored, steps)``: one line per step; the alias moves back in any case
    once the Rollout was ours, so the registry ends where the release began.
    """
    steps: list[str] = []
    if record.action != "promoted" or record.previous is None:
        steps.append(f"rollout: nothing to restore (the deploy changed nothing; {record.deployed.model_name} v{record.deployed.model_version} served before it)")
        steps.append(f"alias: {record.model_name}@champion left as is (the deploy did not move what serves)")
        return True, steps
    target, previous, deployed = record.target, record.previous, record.deployed
    try:
        now = serving_of(get_template_owner(target, run), target, run)
    except (KubectlError, LookupError, ValueError) as exc:
        raise StageFailed("smoke-test", f"cannot read {target.template_kind} {target.namespace}/{target.name} to restore it: {exc}; nothing restored") from exc
    workload_ok = True
    if now == previous:
        steps.append(f"rollout: already serves v{previous.model_version} ({previous.image})")
    elif now != deployed:
        raise StageFailed(
            "smoke-test",
            f"{target.namespace}/{target.name} serves {now.model_name} v{now.model_version} ({now.image}), neither what the deploy set "
            f"(v{deployed.model_version}) nor what it replaced (v{previous.model_version}): someone else changed it; nothing restored",
        )
    else:
        try:
            bad_hash = pod_hash(target, run)
            apply_serving(target, previous, run)
            steps.append(f"rollout: {target.template_kind} {target.namespace}/{target.name} patched back to {previous.model_name} v{previous.model_version} ({previous.image})")
            promote_full(target, run)
            outcome = wait_healthy(target, previous_pod_hash=bad_hash, timeout_s=timeout_s, poll_s=poll_s, run=run, sleep=sleep, clock=clock)
        except KubectlError as exc:
            workload_ok = False
            steps.append(f"rollout: restore FAILED ({exc}); restore it by hand")
        else:
            workload_ok = outcome.state == "healthy"
            steps.append(f"rollout: promoted in full, {outcome.state} after {outcome.polls} poll(s)" + ("" if workload_ok else f": {outcome.message}; check it by hand"))
    alias_version = previous.model_version if previous.model_name == record.model_name else None
    steps.append("alias: " + registry.restore_champion(tracking_uri, record.model_name, alias_version))
    return workload_ok, steps
