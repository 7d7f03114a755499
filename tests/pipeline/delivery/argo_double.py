"""A test double of the API server and the Argo Rollouts controller for one canary Rollout.

It answers the kubectl calls the delivery code makes (``get``, JSON ``patch`` of the
workloadRef Deployment, merge ``patch --subresource status`` of the Rollout, ``get --raw``
through the Service proxy) and, between calls, reconciles the way the real controller
does (argo-rollouts ``rollout/canary.go`` ``syncRolloutStatusCanary`` and
``rollout/sync.go`` ``resetRolloutStatus``), because a double that settles at once
hid every race the release had:

- a template change is observed ``observe_lag`` reconciles later; until then the status
  (``currentPodHash``, ``abort``, ``phase``) still describes the previous revision;
- observing a new template resets the status: ``abort`` and ``promoteFull`` cleared,
  step index back to 0; a template whose hash is the stable ReplicaSet's skips every
  step ("Rollback to stable ReplicaSets");
- ``promoteFull`` on an observed revision promotes it at the next reconcile;
- ``abort`` sends all traffic to stable and degrades the Rollout;
- otherwise each reconcile advances one canary step (setWeight, pause, analysis);
  the analysis asks ``analysis(version)``; a failure aborts.

Pod template hashes are computed from the template, so restoring the exact previous
container yields the previous hash, as in Kubernetes. Faults are injected per call
(:meth:`fail`), so a test can time out exactly the third ``get rollout``. What this
proves: the driver's calls and its reactions to the controller's documented behaviour;
not that a cluster or Argo accepted them.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.delivery.rollout import KubectlError

MODEL = "adult-income"
STEPS: tuple[dict[str, Any], ...] = ({"setWeight": 25}, {"pause": {"duration": "5m"}}, {"analysis": {"templates": [{"templateName": "model-server"}]}})


@dataclass
class Fault:
    """Fail ``times`` calls whose argv contains every word of ``match``, after ``after`` pass."""

    match: tuple[str, ...]
    message: str
    times: int = 1
    after: int = 0


def pod_hash(template: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def model_env(version: str | None) -> list[dict[str, str]]:
    """The server's model env: pinned ``MODEL_URI``, or (None) following ``champion``."""
    if version is None:
        return [{"name": "MODEL_NAME", "value": MODEL}, {"name": "MODEL_ALIAS", "value": "champion"}]
    return [{"name": "MODEL_URI", "value": f"models:/{MODEL}/{version}"}, {"name": "MODEL_VERSION", "value": version}]


@dataclass
class ArgoDouble:
    """One Rollout (workloadRef to a Deployment), its controller, and its stable Service."""

    serving_version: str | None
    image: str
    failing_analysis: set[str] = field(default_factory=set)
    """Versions whose canary analysis fails (the AnalysisTemplate's metrics breach)."""
    observe_lag: int = 1
    pause_reconciles: int = 4
    steps: Sequence[dict[str, Any]] = STEPS
    alias_version: str = "1"
    """What pods following ``champion`` (no MODEL_URI) loaded when they started."""
    faults: list[Fault] = field(default_factory=list)
    log: list[list[str]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        container = {"name": "server", "image": self.image,
                     "env": [*model_env(self.serving_version), {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow"}]}
        self.deployment: dict[str, Any] = {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "model-server", "namespace": "serving", "generation": 1},
            "spec": {"replicas": 0, "template": {"metadata": {"labels": {"app": "model-server"}}, "spec": {"containers": [
                {"name": "log-shipper", "image": "fluent-bit@sha256:" + "9" * 64}, container]}}}}
        first = pod_hash(self.template)
        self.replicasets: dict[str, dict[str, Any]] = {first: copy.deepcopy(self.template)}
        self.rollout: dict[str, Any] = {
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "model-server", "namespace": "serving", "generation": 1},
            "spec": {"workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "model-server"},
                     "strategy": {"canary": {"steps": list(self.steps)}}},
            "status": {"phase": "Healthy", "stableRS": first, "currentPodHash": first, "currentStepIndex": len(self.steps),
                       "abort": False, "promoteFull": False, "message": ""}}
        self.canary_weight = 0
        self._lag = 0
        self._paused = 0
        self.frozen = False
        """True: the controller is down (nothing reconciles)."""

    # --- what a test asserts -------------------------------------------------------

    @property
    def template(self) -> dict[str, Any]:
        return self.deployment["spec"]["template"]

    @property
    def status(self) -> dict[str, Any]:
        return self.rollout["status"]

    def version_of(self, pod_hash_: str) -> str:
        container = next(c for c in self.replicasets[pod_hash_]["spec"]["containers"] if c["name"] == "server")
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        uri = env.get("MODEL_URI")
        return uri.rsplit("/", 1)[1] if uri else self.alias_version

    def serves(self) -> dict[str, Any]:
        """Which version takes traffic: the stable one, plus the canary's weight."""
        stable = self.version_of(self.status["stableRS"])
        current = self.status["currentPodHash"]
        canary = None if current == self.status["stableRS"] or self.status.get("abort") else self.version_of(current)
        return {"stable": stable, "canary": canary, "canary_weight": self.canary_weight if canary else 0}

    def settle(self, reconciles: int = 20) -> None:
        """Let the controller run on its own (time passes with no kubectl call)."""
        for _ in range(reconciles):
            self.reconcile()

    def fail(self, *match: str, message: str = "Unable to connect to the server: dial tcp 10.0.0.1:443: i/o timeout", times: int = 1, after: int = 0) -> None:
        self.faults.append(Fault(tuple(match), message, times, after))

    # --- persisted between processes (the kubectl script on PATH) ------------------

    def to_state(self) -> dict[str, Any]:
        return {"serving_version": self.serving_version, "image": self.image, "failing_analysis": sorted(self.failing_analysis),
                "observe_lag": self.observe_lag, "pause_reconciles": self.pause_reconciles, "paused": self._paused, "steps": list(self.steps), "alias_version": self.alias_version,
                "faults": [vars(f) for f in self.faults], "log": self.log, "events": self.events,
                "deployment": self.deployment, "rollout": self.rollout, "replicasets": self.replicasets,
                "canary_weight": self.canary_weight, "lag": self._lag, "frozen": self.frozen}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ArgoDouble:
        double = cls(state["serving_version"], state["image"], set(state["failing_analysis"]), state["observe_lag"],
                     state["pause_reconciles"], state["steps"], state["alias_version"], [Fault(tuple(f["match"]), f["message"], f["times"], f["after"]) for f in state["faults"]],
                     state["log"], state["events"])
        double.deployment, double.rollout, double.replicasets = state["deployment"], state["rollout"], state["replicasets"]
        double.canary_weight, double._lag, double.frozen = state["canary_weight"], state["lag"], state["frozen"]
        double._paused = state["paused"]
        return double

    # --- the controller ------------------------------------------------------------

    def reconcile(self) -> None:
        if self.frozen:
            return
        status, steps = self.status, len(self.steps)
        current = pod_hash(self.template)
        if current != status["currentPodHash"]:
            if self._lag > 0:
                self._lag -= 1
                return
            # resetRolloutStatus
            status.update(abort=False, promoteFull=False, currentStepIndex=0, currentPodHash=current, message="")
            self._paused = 0
            self.replicasets.setdefault(current, copy.deepcopy(self.template))
            self.canary_weight = 0
            if current == status["stableRS"]:
                self.events.append("SkipSteps: Rollback to stable ReplicaSets")
                status.update(currentStepIndex=steps, phase="Healthy")
            else:
                self.events.append(f"new revision {current} observed")
                status["phase"] = "Progressing"
            return
        if status["stableRS"] == current:
            status.update(phase="Healthy", abort=False, promoteFull=False)
            return
        if status.get("promoteFull"):
            self._promote("promoteFull")
            return
        if status.get("abort"):
            self.canary_weight = 0
            status.update(phase="Degraded", currentStepIndex=0, message=status.get("message") or "RolloutAborted: Rollout aborted update")
            return
        index = int(status.get("currentStepIndex") or 0)
        if index >= steps:
            self._promote("steps completed")
            return
        step = self.steps[index]
        if "pause" in step:
            # A bake: the pause lasts ``pause_reconciles`` reconciles, as its duration would.
            self._paused += 1
            if self._paused < self.pause_reconciles:
                status["phase"] = "Paused"
                return
            self._paused = 0
        if "setWeight" in step:
            self.canary_weight = int(step["setWeight"])
        elif "analysis" in step and self.version_of(current) in self.failing_analysis:
            self.canary_weight = 0
            status.update(abort=True, phase="Degraded", currentStepIndex=0,
                          message='RolloutAborted: Rollout aborted update to revision: Metric "error-rate" assessed Failed')
            self.events.append(f"analysis failed for {current}")
            return
        status.update(currentStepIndex=index + 1, phase="Progressing")

    def _promote(self, why: str) -> None:
        status = self.status
        status.update(stableRS=status["currentPodHash"], phase="Healthy", currentStepIndex=len(self.steps), promoteFull=False, message="")
        self.canary_weight = 0
        self.events.append(f"promoted {status['currentPodHash']} ({why})")

    # --- the API server (the ``run`` callable of pipeline.delivery.rollout) --------

    def __call__(self, argv: Sequence[str], *, stdin: str | None = None, timeout_s: float = 60.0) -> str:
        argv = list(argv)
        self.log.append(argv)
        self.reconcile()
        for fault in self.faults:
            if fault.times > 0 and all(word in argv for word in fault.match):
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.times -= 1
                raise KubectlError(f"kubectl {' '.join(argv[:5])} failed (1): {fault.message}")
        args = argv[2:] if argv[:1] == ["-n"] else argv
        if args[:2] == ["get", "--raw"]:
            return json.dumps({"model_name": MODEL, "model_version": self.version_of(self.status["stableRS"])})
        if args[0] == "get":
            return json.dumps(self.rollout if args[1] == "rollout" else self.deployment)
        if args[0] == "patch":
            body = json.loads(args[args.index("-p") + 1])
            if "--subresource" in args:
                self.status.update(body["status"])
                if body["status"].get("abort"):
                    self.canary_weight = 0
                return "rollout.argoproj.io/model-server patched"
            target = self.rollout if args[1] == "rollout" else self.deployment
            before = pod_hash(self.template)
            scratch = copy.deepcopy(target)
            for op in body:
                _apply(scratch, op)
            target.clear()
            target.update(scratch)
            if pod_hash(self.template) != before:
                self._lag = self.observe_lag
            return f"{args[1]}.apps/model-server patched"
        raise KubectlError(f"argo double: unsupported {argv}")


def _apply(doc: dict[str, Any], op: dict[str, Any]) -> None:
    parts = op["path"].lstrip("/").split("/")
    parent: Any = doc
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    key = parts[-1]
    if op["op"] == "test":
        current = parent[int(key)] if isinstance(parent, list) else parent[key]
        if current != op["value"]:
            raise KubectlError("The request is invalid: the test operation failed")
    elif op["op"] == "replace":
        if isinstance(parent, list):
            parent[int(key)] = op["value"]
        else:
            parent[key] = op["value"]
    elif op["op"] == "add":
        if isinstance(parent, list):
            parent.append(op["value"]) if key == "-" else parent.insert(int(key), op["value"])
        else:
            parent[key] = op["value"]
    else:
        raise KubectlError(f"unsupported JSON patch op {op['op']}")
