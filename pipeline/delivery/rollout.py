"""The cluster's canary: point the Argo Rollout at a release's version and watch it.

The ModelService component (infra/model_service.py) runs the server as an Argo Rollouts
``Rollout`` that adopts the pod template of a Deployment of the same name through
``workloadRef``; its canary steps (first weight, bake pause, analysis) and
``AnalysisTemplate`` live on the cluster, and Argo does the traffic split and aborts on
a failed analysis. This module holds the kubectl calls and the reading of the
Rollout's status; ``pipeline.delivery.deploy_cluster`` sequences them into a release.

What the driver must respect about the real controller (argo-rollouts,
``rollout/canary.go`` and ``rollout/sync.go``), because a test double that settles at
once hides all of it:
- a template change is observed on a later reconcile: until then ``status`` still
  describes the previous revision (``currentPodHash``; with ``workloadRef`` the
  Rollout's own generation does not even change), so a verdict is read only once
  ``currentPodHash`` has moved;
- observing a new template resets the status (``resetRolloutStatus``): ``abort`` and
  ``promoteFull`` are cleared and the steps start again, so ``promoteFull`` patched
  before the controller observed the template is lost, and a full canary runs;
- a template equal to the stable ReplicaSet's skips every step ("Rollback to stable
  ReplicaSets"): restoring the exact previous container after an aborted canary is an
  instant rollback, while restoring it after a promotion is a new revision that must be
  promoted in full once observed.
kubectl is a subprocess (``kubectl`` on PATH, or ``$KUBECTL``), so the same calls run
from CodeBuild and from a laptop.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")
_DIGEST_IMAGE = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message carries its stderr."""


@dataclass(frozen=True)
class RolloutTarget:
    """Which Rollout serves the model, which object holds its pod template, which container.

    ``template_kind`` is ``deployment`` when the Rollout uses ``workloadRef`` (the
    ModelService's shape: Deployment and Rollout share ``name``) or ``rollout`` when
    the template is inline. ``port`` is the stable Service's port for ``/version``.
    """

    name: str = "model-server"
    namespace: str = "serving"
    container: str = "server"
    template_kind: str = "deployment"
    port: int = 8080

    def __post_init__(self) -> None:
        if self.template_kind not in ("deployment", "rollout"):
            raise ValueError(f"template_kind must be deployment or rollout, got {self.template_kind!r}")


@dataclass(frozen=True)
class Serving:
    """What a Rollout's spec serves: model name, version and image."""

    model_name: str
    model_version: str
    image: str


@dataclass(frozen=True)
class RolloutOutcome:
    """How the watch ended: ``healthy``, ``aborted`` or ``timeout``, and why."""

    state: str
    message: str
    polls: int


def kubectl(args: Sequence[str], *, stdin: str | None = None, timeout_s: float = 60.0) -> str:
    """Run kubectl with ``args``; returns stdout, raises :class:`KubectlError` on failure."""
    binary = os.environ.get("KUBECTL", "kubectl")
    try:
        done = subprocess.run([binary, *args], input=stdin, capture_output=True, text=True, timeout=timeout_s, check=False)
    except FileNotFoundError as exc:
        raise KubectlError(f"{binary} not found on PATH: install kubectl and configure access to the cluster") from exc
    except subprocess.TimeoutExpired as exc:
        # Transient by its message (pipeline.delivery.retry): retried, never a verdict.
        raise KubectlError(f"kubectl {' '.join(args[:3])} timed out after {timeout_s:.0f} s") from exc
    if done.returncode != 0:
        raise KubectlError(f"kubectl {' '.join(args[:3])} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def get_rollout(target: RolloutTarget, run: Callable[..., str] = kubectl) -> dict[str, Any]:
    """The Rollout object as JSON."""
    return json.loads(run(["-n", target.namespace, "get", "rollout", target.name, "-o", "json"]))


def get_template_owner(target: RolloutTarget, run: Callable[..., str] = kubectl) -> dict[str, Any]:
    """The object holding the pod template (the workloadRef Deployment, or the Rollout)."""
    return json.loads(run(["-n", target.namespace, "get", target.template_kind, target.name, "-o", "json"]))


def served_version(target: RolloutTarget, run: Callable[..., str] = kubectl) -> str:
    """The model version the stable Service answers with, via the API server's proxy."""
    path = f"/api/v1/namespaces/{target.namespace}/services/{target.name}:{target.port}/proxy/version"
    version = json.loads(run(["get", "--raw", path])).get("model_version")
    if not version:
        raise ValueError(f"{path} did not report a model_version")
    return str(version)


def _container(rollout: dict[str, Any], target: RolloutTarget) -> tuple[int, dict[str, Any]]:
    containers = rollout.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    for index, container in enumerate(containers):
        if container.get("name") == target.container:
            return index, container
    raise LookupError(f"rollout {target.namespace}/{target.name} has no container {target.container!r}")


def serving_of(owner: dict[str, Any], target: RolloutTarget, run: Callable[..., str] = kubectl) -> Serving:
    """What the template serves: its pinned ``MODEL_URI``, else the live stable version.

    Pods that follow ``MODEL_NAME`` + ``MODEL_ALIAS`` (before the first automated
    deploy) load whatever the alias named when they started, so the spec cannot say;
    the stable Service's ``/version`` can.
    """
    _, container = _container(owner, target)
    env = {e.get("name"): e.get("value") for e in container.get("env", [])}
    match = _MODEL_URI.match(str(env.get("MODEL_URI") or ""))
    if match:
        return Serving(match["name"], match["version"], str(container.get("image", "")))
    if env.get("MODEL_URI"):
        raise ValueError(f"{target.template_kind} {target.name}: MODEL_URI {env['MODEL_URI']!r} is not models:/NAME/VERSION")
    if not env.get("MODEL_NAME"):
        raise ValueError(f"{target.template_kind} {target.name}: container {target.container!r} sets neither MODEL_URI nor MODEL_NAME")
    return Serving(str(env["MODEL_NAME"]), served_version(target, run), str(container.get("image", "")))


def patch_for(owner: dict[str, Any], target: RolloutTarget, serving: Serving) -> list[dict[str, Any]]:
    """The JSON patch that points the Rollout at ``serving``, and nothing else.

    A JSON patch (not a merge patch) because a merge patch on a custom resource
    replaces the whole ``containers`` list; the ``test`` op makes the patch fail if the
    container moved since we read it.
    """
    if not _DIGEST_IMAGE.match(serving.image):
        raise ValueError(f"image {serving.image!r} must be referenced by digest (repo@sha256:...)")
    index, container = _container(owner, target)
    base = f"/spec/template/spec/containers/{index}"
    ops: list[dict[str, Any]] = [{"op": "test", "path": f"{base}/name", "value": target.container}, {"op": "replace", "path": f"{base}/image", "value": serving.image}]
    uri = f"models:/{serving.model_name}/{serving.model_version}"
    names = [e.get("name") for e in container.get("env", [])]
    if "env" not in container:
        ops.append({"op": "add", "path": f"{base}/env", "value": []})
    for key, value in (("MODEL_URI", uri), ("MODEL_VERSION", serving.model_version)):
        if key in names:
            ops.append({"op": "replace", "path": f"{base}/env/{names.index(key)}/value", "value": value})
        else:
            ops.append({"op": "add", "path": f"{base}/env/-", "value": {"name": key, "value": value}})
    return ops


def apply_serving(target: RolloutTarget, serving: Serving, run: Callable[..., str] = kubectl) -> None:
    """Patch the pod template to serve ``serving`` (Argo starts its canary steps)."""
    ops = patch_for(get_template_owner(target, run), target, serving)
    run(["-n", target.namespace, "patch", target.template_kind, target.name, "--type", "json", "-p", json.dumps(ops)])


def rollout_state(rollout: dict[str, Any], previous_pod_hash: str | None) -> tuple[str, str]:
    """``(state, message)`` from a Rollout's status: healthy, aborted or progressing.

    Healthy only counts once the pod hash has moved off ``previous_pod_hash`` and the
    stable ReplicaSet is the new one: right after a patch (and with ``workloadRef`` the
    Rollout's own generation does not change) the old status still says Healthy.
    """
    status = rollout.get("status", {}) or {}
    message = str(status.get("message", "")) or str(status.get("phase", ""))
    current = status.get("currentPodHash")
    if status.get("abort") or status.get("phase") == "Degraded":
        return "aborted", message or "rollout aborted"
    if status.get("phase") == "Healthy" and current and current != previous_pod_hash and status.get("stableRS") == current:
        return "healthy", message
    return "progressing", message


def pod_hash(target: RolloutTarget, run: Callable[..., str] = kubectl) -> str | None:
    """The Rollout's current pod-template hash (read before patching)."""
    return (get_rollout(target, run).get("status", {}) or {}).get("currentPodHash")


def container_of(owner: dict[str, Any], target: RolloutTarget) -> dict[str, Any]:
    """A copy of the served container as the template holds it (the exact restore point)."""
    return json.loads(json.dumps(_container(owner, target)[1]))


def restore_patch_for(owner: dict[str, Any], target: RolloutTarget, container: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON patch that puts ``container`` back exactly as it was recorded.

    The whole container is replaced, not only image and env: the pod template then
    hashes as it did before the deploy, which Argo recognises as its stable (or an
    older) ReplicaSet. Guarded by a ``test`` op on the name; applying it twice is a no-op.
    """
    if container.get("name") != target.container:
        raise ValueError(f"recorded container is {container.get('name')!r}, not {target.container!r}")
    index, _ = _container(owner, target)
    base = f"/spec/template/spec/containers/{index}"
    return [{"op": "test", "path": f"{base}/name", "value": target.container}, {"op": "replace", "path": base, "value": container}]


def restore_container(target: RolloutTarget, container: dict[str, Any], run: Callable[..., str] = kubectl) -> bool:
    """Patch the template's container back to ``container``; False when it already is."""
    owner = get_template_owner(target, run)
    if _container(owner, target)[1] == container:
        return False
    ops = restore_patch_for(owner, target, container)
    run(["-n", target.namespace, "patch", target.template_kind, target.name, "--type", "json", "-p", json.dumps(ops)])
    return True


def settled(rollout: dict[str, Any]) -> bool:
    """True when the Rollout serves its template: Healthy, not aborted, stable == current."""
    status = rollout.get("status", {}) or {}
    return (status.get("phase") == "Healthy" and not status.get("abort")
            and bool(status.get("currentPodHash")) and status.get("currentPodHash") == status.get("stableRS"))


def wait_observed(
    target: RolloutTarget,
    *,
    previous_pod_hash: str | None,
    timeout_s: float,
    poll_s: float = 5.0,
    run: Callable[..., str] = kubectl,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Wait until the controller has observed a template change: ``currentPodHash`` moved.

    Returns the new pod hash. Until this returns, the Rollout's status (abort,
    promoteFull, phase) still belongs to the previous revision and means nothing about
    the new one. Raises :class:`TimeoutError` when the controller never observes it
    (controller down, webhook rejecting): a person must look.
    """
    start = clock()
    while True:
        current = (get_rollout(target, run).get("status", {}) or {}).get("currentPodHash")
        if current and current != previous_pod_hash:
            return str(current)
        if clock() - start >= timeout_s:
            raise TimeoutError(f"rollout {target.namespace}/{target.name}: the controller did not observe the new template "
                               f"within {timeout_s:.0f} s (currentPodHash still {previous_pod_hash}); is Argo Rollouts running?")
        sleep(poll_s)


def watch_rollout(
    target: RolloutTarget,
    *,
    previous_pod_hash: str | None,
    timeout_s: float,
    poll_s: float = 10.0,
    run: Callable[..., str] = kubectl,
    check_alarms: Callable[[], Sequence[str]] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> RolloutOutcome:
    """Poll until the Rollout is healthy on the new revision, aborted, or out of time.

    The verdict is read only after the controller observed the new template (see the
    module docstring). ``check_alarms`` (CloudWatch alarm names in ALARM) is asked on
    every poll; a firing alarm or the time-out aborts the Rollout through its status
    subresource, as ``kubectl argo rollouts abort`` does, so Argo shifts traffic back to
    the stable ReplicaSet at once. Errors (kubectl, AWS) propagate: the caller aborts
    and restores.
    """
    start, polls = clock(), 0
    wait_observed(target, previous_pod_hash=previous_pod_hash, timeout_s=timeout_s, poll_s=poll_s, run=run, sleep=sleep, clock=clock)
    while True:
        polls += 1
        state, message = rollout_state(get_rollout(target, run), previous_pod_hash)
        if state != "progressing":
            return RolloutOutcome(state, message, polls)
        fired = list(check_alarms()) if check_alarms else []
        if fired:
            abort(target, run)
            return RolloutOutcome("aborted", f"alarms fired during the bake: {', '.join(fired)}", polls)
        if clock() - start >= timeout_s:
            abort(target, run)
            return RolloutOutcome("timeout", f"not healthy after {timeout_s:.0f} s ({message}); aborted", polls)
        sleep(poll_s)


def abort(target: RolloutTarget, run: Callable[..., str] = kubectl) -> None:
    """Abort the Rollout (Argo moves all traffic back to the stable ReplicaSet)."""
    _patch_status(target, {"abort": True}, run)


def promote_full(target: RolloutTarget, run: Callable[..., str] = kubectl) -> None:
    """Skip the remaining canary steps, as ``kubectl argo rollouts promote --full`` does.

    Only after :func:`wait_observed`: the controller clears ``promoteFull`` when it
    observes a new template. Used only to restore a version that already passed its
    own canary: re-baking it would keep the failing model on most of the traffic.
    """
    _patch_status(target, {"promoteFull": True}, run)


def _patch_status(target: RolloutTarget, status: dict[str, Any], run: Callable[..., str]) -> None:
    """Merge-patch the Rollout's status subresource: how the Argo plugin's abort and
    promote commands act, without needing the plugin in the build image."""
    run(["-n", target.namespace, "patch", "rollout", target.name, "--subresource", "status",
         "--type", "merge", "-p", json.dumps({"status": status})])


def wait_healthy(
    target: RolloutTarget,
    *,
    previous_pod_hash: str | None,
    timeout_s: float,
    poll_s: float = 10.0,
    run: Callable[..., str] = kubectl,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> RolloutOutcome:
    """Poll until settled on a pod hash other than ``previous_pod_hash``; never aborts.

    Unlike :func:`watch_rollout` this is for a restore: aborting it would leave the
    failing revision serving, so a time-out is only reported.
    """
    start, polls = clock(), 0
    while True:
        polls += 1
        state, message = rollout_state(get_rollout(target, run), previous_pod_hash)
        if state == "healthy":
            return RolloutOutcome(state, message, polls)
        if clock() - start >= timeout_s:
            return RolloutOutcome("timeout", f"not healthy after {timeout_s:.0f} s ({message})", polls)
        sleep(poll_s)
