"""One release at a time per model: a lease held in the MLflow registry itself.

The DeliveryPipeline runs in CodePipeline's QUEUED mode, so its executions enter each
stage one by one; but a release spans two stages (Deploy canaries, SmokeTest promotes),
a retrain can start another execution, and a person can run ``deliver deploy`` by hand.
The lease closes those gaps where every release path already meets: the registry.

Why a registered model and not a tag: creating a registered model is atomic in every
MLflow backend (the name is the table's primary key), so two releases cannot both
create ``<model>.release-lease``; a tag write has no compare-and-set. The lease model
carries who holds it, since when, and until when (tags). The holder is the release's id
(the SageMaker execution ARN, or the local run's id), so the Deploy and SmokeTest
stages of one release, or a retry of either, re-enter their own lease. A lease past its
expiry (a CodeBuild job killed mid-release) may be taken over; the expiry is generous
(the deploy's and smoke test's time-outs together), and taking over re-checks the
holder first, so only a holder that vanished loses it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SUFFIX = ".release-lease"
DEFAULT_TTL_S = 4 * 3600.0


class LeaseBusy(RuntimeError):
    """Another release holds the lease; the message names it."""


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds the lease, in which stage, and until when (epoch seconds)."""

    release_id: str
    stage: str
    acquired_at: float
    expires_at: float

    def describe(self, now: float) -> str:
        state = f"expires in {self.expires_at - now:.0f} s" if self.expires_at > now else f"EXPIRED {now - self.expires_at:.0f} s ago"
        return f"release {self.release_id} (stage {self.stage}, held since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(self.acquired_at))}, {state})"


def _is_code(exc: Exception, *codes: str) -> bool:
    return str(getattr(exc, "error_code", "")) in codes


class ReleaseLease:
    """Acquire, renew and release the lease of ``model_name`` on ``tracking_uri``."""

    def __init__(self, tracking_uri: str, model_name: str, release_id: str, *, ttl_s: float = DEFAULT_TTL_S,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        if not release_id:
            raise ValueError("a release lease needs the release's id")
        self.tracking_uri, self.model_name, self.release_id = tracking_uri, model_name, release_id
        self.name = model_name + SUFFIX
        self.ttl_s, self.clock, self.sleep = ttl_s, clock, sleep

    def _client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def holder(self) -> LeaseHolder | None:
        """The current holder, or None when the lease is free."""
        from mlflow.exceptions import MlflowException

        try:
            model = self._client().get_registered_model(self.name)
        except MlflowException as exc:
            if _is_code(exc, "RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
                return None
            raise
        tags = model.tags or {}
        try:
            return LeaseHolder(tags["release_id"], tags.get("stage", "?"), float(tags["acquired_at"]), float(tags["expires_at"]))
        except (KeyError, ValueError):
            # Half-written by a holder that died between create and tag: treat as expired.
            return LeaseHolder(tags.get("release_id", "unknown"), tags.get("stage", "?"), 0.0, 0.0)

    def _tags(self, stage: str, acquired_at: float) -> dict[str, str]:
        return {"release_id": self.release_id, "stage": stage, "acquired_at": f"{acquired_at:.0f}",
                "expires_at": f"{self.clock() + self.ttl_s:.0f}"}

    def try_acquire(self, stage: str) -> LeaseHolder | None:
        """Take (or re-enter, renewing) the lease; returns the other holder when busy."""
        from mlflow.exceptions import MlflowException

        client = self._client()
        now = self.clock()
        try:
            client.create_registered_model(
                self.name, tags=self._tags(stage, now),
                description=f"Release lease of {self.model_name}: while this model exists, one release holds it "
                            "(pipeline.delivery.lease). Not a model; delete it only when no release is running.")
            return None
        except MlflowException as exc:
            if not _is_code(exc, "RESOURCE_ALREADY_EXISTS"):
                raise
        held = self.holder()
        if held is None:  # released between our create and our read: try once more
            return self.try_acquire(stage)
        if held.release_id == self.release_id:
            for key, value in self._tags(stage, held.acquired_at).items():
                client.set_registered_model_tag(self.name, key, value)
            return None
        if held.expires_at <= now:
            # Take over an expired lease: delete only if it is still the same holder.
            again = self.holder()
            if again is not None and (again.release_id, again.acquired_at) == (held.release_id, held.acquired_at):
                client.delete_registered_model(self.name)
            return self.try_acquire(stage)
        return held

    def acquire(self, stage: str, *, wait_s: float = 0.0, poll_s: float = 15.0, log: Callable[[str], None] = print) -> None:
        """Take the lease for ``stage``, waiting up to ``wait_s`` for another release to end.

        Raises :class:`LeaseBusy` naming the holder when it is still held after ``wait_s``.
        """
        deadline = self.clock() + wait_s
        while True:
            other = self.try_acquire(stage)
            if other is None:
                return
            if self.clock() >= deadline:
                raise LeaseBusy(f"another release of {self.model_name} is in progress: {other.describe(self.clock())}; "
                                f"release {self.release_id} waited {wait_s:.0f} s and changed nothing")
            log(f"waiting for the release lease of {self.model_name}: held by {other.describe(self.clock())}")
            self.sleep(poll_s)

    def release(self) -> str:
        """Give the lease back if we hold it; says what it did."""
        held = self.holder()
        if held is None:
            return f"lease of {self.model_name} was already free"
        if held.release_id != self.release_id:
            return f"lease of {self.model_name} is held by {held.release_id}, not us: left alone"
        self._client().delete_registered_model(self.name)
        return f"lease of {self.model_name} released"
