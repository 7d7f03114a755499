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
from pipeline.delivery.rollout import RolloutTarget, Serving, apply_serving, get_template_owner, kubectl, pod_hash, serving_of, watch_rollout
from pipeline.exit_codes import ExitCode


@dataclass(frozen=True)
class DeployResult:
    """``nothing-to-do`` or ``promoted``, with the versions involved (a rollback raises)."""

    action: str
    message: str
    version: str
    previous_version: str | None


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
        return DeployResult("nothing-to-do", f"{model_name} v{champion.version} is already serving; champion did not move", champion.version, before.model_version)
    new_image = image or champion.image_digest
    if not new_image:
        raise StageFailed("deploy", f"{model_name} v{champion.version} has no image_digest tag and no --image was given")
    old_hash = pod_hash(target, run)
    apply_serving(target, Serving(model_name, champion.version, new_image), run)
    outcome = watch_rollout(target, previous_pod_hash=old_hash, timeout_s=timeout_s, poll_s=poll_s, run=run, check_alarms=check_alarms, sleep=sleep, clock=clock)
    if outcome.state == "healthy":
        return DeployResult("promoted", f"{model_name} v{champion.version} is serving ({new_image})", champion.version, before.model_version)
    # Restored pinned to what served, so a later pod restart cannot pick up the new alias.
    apply_serving(target, before, run)
    previous = before.model_version if before.model_name == model_name else None
    restored = registry.restore_champion(tracking_uri, model_name, previous)
    raise StageFailed(
        "deploy",
        f"canary of v{champion.version} {outcome.state}: {outcome.message}; rollout restored to v{before.model_version} ({before.image}); {restored}",
        ExitCode.DEPLOY_FAILED,
    )
