"""Two releases interleaved step by step, in every order: never a race, never a lost model.

Release A ships v2, release B ships v3; both were gated against v1, the champion that
serves. Each release is three steps as its CodePipeline execution runs them: Train
(register sets ``candidate``), Deploy (canary under the lease), SmokeTest (promote by
compare-and-set, give the lease back). Every interleaving that keeps each release's
own order is run (20 of them) against one registry and one Rollout (the Argo double).
A stage that fails stops its release, as CodePipeline does. After each schedule:

- at most one release succeeded (both were gated against v1; the second must be
  re-gated against the new champion, never promoted over it);
- ``champion`` names the version of the release that succeeded (v1 when none did), and
  that is exactly what the stable Service serves, with no canary left running;
- every failure is a refusal that changed nothing (``RELEASE_CONFLICT``), and the lease
  is free;
- a release that reported success was serving and was champion at that moment.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from pipeline.delivery import registry
from pipeline.delivery.deploy_cluster import DeployResult, deploy_release, finish_release
from pipeline.delivery.errors import StageFailed
from pipeline.delivery.lease import ReleaseLease
from pipeline.exit_codes import ExitCode

from .argo_double import MODEL
from .release_harness import make_world
from .test_release_faults import URL

STEPS = ("train", "deploy", "smoke")


def schedules() -> list[tuple[str, ...]]:
    """Every merge of A's three steps with B's that keeps each release's own order."""
    found = set()
    for slots in itertools.combinations(range(6), 3):
        order = ["B"] * 6
        for slot in slots:
            order[slot] = "A"
        found.add(tuple(order))
    return sorted(found)


@pytest.mark.parametrize("schedule", schedules(), ids=["".join(s) for s in schedules()])
def test_two_releases_never_race(schedule: tuple[str, ...], tmp_path: Path, release_registry: Path) -> None:
    world = make_world(tmp_path, release_registry)
    versions = {"A": "2", "B": "3"}
    progress = {"A": 0, "B": 0}
    stopped: dict[str, ExitCode] = {}
    deployed: dict[str, DeployResult] = {}
    succeeded: list[tuple[str, dict[str, Any]]] = []
    for name in schedule:
        step = STEPS[progress[name]]
        progress[name] += 1
        if name in stopped:
            continue
        release = world.release(versions[name])
        try:
            if step == "train":
                world.register_candidate(release.version)
            elif step == "deploy":
                deployed[name] = deploy_release(release, tracking_uri=world.tracking_uri, cluster=world.driver(), timeout_s=600)
            else:
                finish_release(release, deployed[name].record, tracking_uri=world.tracking_uri, url=URL,
                               smoke_check=world.smoke, cluster=world.driver())
                succeeded.append((name, world.state()))
        except StageFailed as failed:
            stopped[name] = failed.exit_code
        world.cluster.settle()
    assert len(succeeded) <= 1, succeeded
    assert set(stopped.values()) <= {ExitCode.RELEASE_CONFLICT}, stopped
    assert len(succeeded) + len(stopped) == 2, (succeeded, stopped)
    final = world.state()
    winner = versions[succeeded[0][0]] if succeeded else "1"
    assert final["champion"] == winner and final["serves"] == winner and final["canary"] is None, (schedule, final, world.lines)
    for name, at_success in succeeded:
        assert at_success["champion"] == at_success["serves"] == versions[name]
    assert ReleaseLease(world.tracking_uri, MODEL, "probe").holder() is None
    for name in stopped:
        # The loser's version never served and never became champion.
        assert registry.alias_version(world.tracking_uri, MODEL, "champion") != versions[name]


def test_a_waiting_release_proceeds_once_the_lease_is_free(tmp_path: Path, release_registry: Path) -> None:
    """With a wait, B's deploy queues behind A's release instead of being refused, then
    finds champion moved and refuses with RELEASE_CONFLICT: never a canary over A's model."""
    world = make_world(tmp_path, release_registry)
    a, b = world.release("2"), world.release("3")
    world.register_candidate("2")
    first = deploy_release(a, tracking_uri=world.tracking_uri, cluster=world.driver(), timeout_s=600)
    world.register_candidate("3")
    waits: list[str] = []

    def finish_a_while_waiting(seconds: float) -> None:
        waits.append("waited")
        if len(waits) == 2:
            finish_release(a, first.record, tracking_uri=world.tracking_uri, url=URL, smoke_check=world.smoke, cluster=world.driver())
        world.wait(seconds)

    lease = ReleaseLease(world.tracking_uri, MODEL, b.release_id, sleep=finish_a_while_waiting)
    with pytest.raises(StageFailed) as failed:
        deploy_release(b, tracking_uri=world.tracking_uri, cluster=world.driver(), timeout_s=600, lease=lease, lease_wait_s=3600)
    assert failed.value.exit_code == ExitCode.RELEASE_CONFLICT and "another release promoted in between" in failed.value.reason
    assert any("waiting for the release lease" in line for line in world.lines)
    assert world.state() == {"champion": "2", "candidate": None, "serves": "2", "canary": None}
