"""One release world for the release tests: a real MLflow registry, the Argo double, a smoke check.

The registry is real (SQLite through MLflow): v1 serves and is ``champion``; v2 and v3
passed the gate against v1 (``gate_champion=1``), each with its own serving image. The
cluster is :class:`ArgoDouble` (the controller's documented behaviour, not a settle-at-
once fake); the smoke check asks the double which version the stable Service answers
with, and fails for versions listed in ``smoke_fails``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.delivery import registry
from pipeline.delivery.deploy_cluster import Cluster
from pipeline.delivery.release import Release
from pipeline.delivery.rollout import RolloutTarget

from .argo_double import MODEL, ArgoDouble

IMAGES = {v: f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops-serving@sha256:{v * 64}" for v in ("1", "2", "3", "4")}


def build_registry(path: Path) -> Path:
    """v1 champion (serving), v2..v4 gated against v1; built once per session (migrations ~10 s)."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{path}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(MODEL)
    for version, image in IMAGES.items():
        client.create_model_version(MODEL, source=str(path.parent), tags={
            "image_digest": image, "gate_passed": "true", "gate_champion": "none" if version == "1" else "1"})
    client.set_registered_model_alias(MODEL, "champion", "1")
    return path


@dataclass
class Outcome:
    passed: bool
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass
class World:
    """The registry, the cluster double and the smoke test's script."""

    tracking_uri: str
    cluster: ArgoDouble
    smoke_fails: set[str] = field(default_factory=set)
    smoke_calls: list[tuple[str, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    now: float = 0.0
    """The driver's clock: advanced only by its own waits, which let the controller run."""

    def release(self, version: str, base: str | None = "1") -> Release:
        return Release(f"arn:aws:sagemaker:eu-west-1:123456789012:pipeline/p/execution/exec-v{version}", MODEL, version, base, IMAGES[version], "c0ffee")

    def register_candidate(self, version: str) -> None:
        """What the register step does when the gate passed (the delivery path)."""
        self._client().set_registered_model_alias(MODEL, registry.CANDIDATE, version)

    def driver(self, **overrides: Any) -> Cluster:
        options: dict[str, Any] = {"run": self.cluster, "poll_s": 1.0, "sleep": self.wait, "clock": lambda: self.now, "log": self.lines.append}
        options.update(overrides)
        return Cluster(RolloutTarget(), **options)

    def wait(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)
        self.cluster.reconcile()

    def smoke(self, url: str, version: str) -> Outcome:
        self.smoke_calls.append((url, version))
        answered = self.cluster.serves()["stable"]
        if version in self.smoke_fails:
            return Outcome(False, f"known_prediction FAILED for v{version}")
        if answered != version:
            return Outcome(False, f"version route answered v{answered}, expected v{version}")
        return Outcome(True, f"health ok; known_prediction ok; version v{answered}")

    def state(self) -> dict[str, Any]:
        """What the fault matrix compares: champion, candidate, what serves."""
        serves = self.cluster.serves()
        return {"champion": registry.alias_version(self.tracking_uri, MODEL, "champion"),
                "candidate": registry.alias_version(self.tracking_uri, MODEL, "candidate"),
                "serves": serves["stable"], "canary": serves["canary"]}

    def outcome_tag(self, version: str) -> str | None:
        return (self._client().get_model_version(MODEL, version).tags or {}).get(registry.OUTCOME_TAG)

    def _client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)


def make_world(tmp_path: Path, template: Path, *, serving_version: str | None = "1", **double: Any) -> World:
    shutil.copy(template, tmp_path / "mlflow.db")
    return World(f"sqlite:///{tmp_path / 'mlflow.db'}", ArgoDouble(serving_version, IMAGES["1"], **double))
