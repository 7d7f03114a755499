"""The cluster's canary: point the Argo Rollout at the new champion and watch it.

The ModelService component runs the server as an Argo Rollouts ``Rollout`` whose canary
steps (first weight, bake pause, analysis) and ``AnalysisTemplate`` live on the
cluster; Argo does the traffic split and aborts on a failed analysis. This driver does
the parts that belong to delivery: it reads what the Rollout serves (the container's
``MODEL_URI`` env, always a pinned ``models:/NAME/VERSION``, and its image), updates
both to the new champion with one JSON patch, polls the Rollout's status until it is
Healthy on the new revision or aborted/degraded, and on abort patches the spec back to
what was serving so the workload and the registry alias end where they began.
kubectl is a subprocess (``kubectl`` on PATH, or ``$KUBECTL``), so the same calls run
from CodeBuild and from a laptop, and tests put a recording fake kubectl on PATH.
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
    """Which Rollout and container serve the model."""

    name: str = "model-server"
    namespace: str = "serving"
    container: str = "server"


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
    if done.returncode != 0:
        raise KubectlError(f"kubectl {' '.join(args[:3])} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def get_rollout(target: RolloutTarget, run: Callable[..., str] = kubectl) -> dict[str, Any]:
    """The Rollout object as JSON."""
    return json.loads(run(["-n", target.namespace, "get", "rollout", target.name, "-o", "json"]))


def _container(rollout: dict[str, Any], target: RolloutTarget) -> tuple[int, dict[str, Any]]:
    containers = rollout.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    for index, container in enumerate(containers):
        if container.get("name") == target.container:
            return index, container
    raise LookupError(f"rollout {target.namespace}/{target.name} has no container {target.container!r}")


def serving_of(rollout: dict[str, Any], target: RolloutTarget) -> Serving:
    """What the Rollout's spec serves, from the container's ``MODEL_URI`` and image."""
    _, container = _container(rollout, target)
    env = {e.get("name"): e.get("value") for e in container.get("env", [])}
    match = _MODEL_URI.match(str(env.get("MODEL_URI") or ""))
    if not match:
        raise ValueError(f"rollout {target.name}: MODEL_URI {env.get('MODEL_URI')!r} is not a pinned models:/NAME/VERSION")
    return Serving(match["name"], match["version"], str(container.get("image", "")))


def patch_for(rollout: dict[str, Any], target: RolloutTarget, serving: Serving) -> list[dict[str, Any]]:
    """The JSON patch that points the Rollout at ``serving``, and nothing else.

    A JSON patch (not a merge patch) because a merge patch on a custom resource
    replaces the whole ``containers`` list; the ``test`` op makes the patch fail if the
    container moved since we read it.
    """
    if not _DIGEST_IMAGE.match(serving.image):
        raise ValueError(f"image {serving.image!r} must be referenced by digest (repo@sha256:...)")
    index, container = _container(rollout, target)
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
    """Patch the Rollout to serve ``serving`` (starts Argo's canary steps)."""
    rollout = get_rollout(target, run)
    ops = patch_for(rollout, target, serving)
    run(["-n", target.namespace, "patch", "rollout", target.name, "--type", "json", "-p", json.dumps(ops)])


def rollout_state(rollout: dict[str, Any]) -> tuple[str, str]:
    """``(state, message)`` from a Rollout's status: healthy, aborted or progressing.

    Healthy only counts when the controller has observed the latest spec and the
    stable ReplicaSet is the current one: right after a patch the old status still
    says Healthy.
    """
    status = rollout.get("status", {}) or {}
    generation = str(rollout.get("metadata", {}).get("generation", ""))
    observed = str(status.get("observedGeneration", ""))
    message = str(status.get("message", "")) or str(status.get("phase", ""))
    if status.get("abort") or status.get("phase") == "Degraded":
        return "aborted", message or "rollout aborted"
    if status.get("phase") == "Healthy" and observed == generation and status.get("stableRS") and status.get("stableRS") == status.get("currentPodHash"):
        return "healthy", message
    return "progressing", message


def watch_rollout(
    target: RolloutTarget,
    *,
    timeout_s: float,
    poll_s: float = 10.0,
    run: Callable[..., str] = kubectl,
    check_alarms: Callable[[], Sequence[str]] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> RolloutOutcome:
    """Poll until the Rollout is healthy on the new revision, aborted, or out of time.

    ``check_alarms`` (CloudWatch alarm names in ALARM) is asked on every poll; a firing
    alarm aborts the Rollout through its status subresource, as ``kubectl argo rollouts
    abort`` does, so Argo shifts traffic back to the stable ReplicaSet at once.
    """
    start, polls = clock(), 0
    while True:
        polls += 1
        state, message = rollout_state(get_rollout(target, run))
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
    run(["-n", target.namespace, "patch", "rollout", target.name, "--subresource", "status", "--type", "merge", "-p", json.dumps({"status": {"abort": True}})])
