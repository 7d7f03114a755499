"""The fault matrix: every fault, at each stage where it can occur, ends in a stated state.

Each row starts from the same world (``release_harness``): v1 is ``champion`` and serves,
v2 passed the gate against v1 and is ``candidate``. The row injects one fault, runs the
release's stages as CodePipeline would (Train's outcome, Approval, Deploy, SmokeTest;
a stage that fails stops the rest), and asserts ``champion``, ``candidate``, what the
stable Service serves, whether a canary still takes traffic, and each stage's exit code.
The cluster is the Argo Rollouts double (``argo_double``): template changes are observed
late, status resets on observation, abort/promoteFull behave as in argo-rollouts. The
registry is real MLflow on SQLite. What this proves: the driver's decisions and calls
against the controller's documented behaviour, not that a cluster accepted them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pipeline.delivery import registry
from pipeline.delivery.deploy_cluster import deploy_release, finish_release
from pipeline.delivery.errors import StageFailed
from pipeline.delivery.lease import ReleaseLease
from pipeline.delivery.release import ReleaseFileError, registered_version
from pipeline.exit_codes import ExitCode

from .argo_double import MODEL
from .release_harness import World, make_world

URL = "http://model-server.serving.svc:8080"
OK, FAILED, CONFLICT, ERROR = ExitCode.OK, ExitCode.DEPLOY_FAILED, ExitCode.RELEASE_CONFLICT, ExitCode.ERROR


def throttled(times: int) -> Callable[[], list[str]]:
    """A CloudWatch alarm check that is throttled ``times`` times, then reads all clear."""
    from botocore.exceptions import ClientError

    calls = {"n": 0}

    def check() -> list[str]:
        calls["n"] += 1
        if calls["n"] <= times:
            raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "DescribeAlarms")
        return []

    return check


def alarm_after(polls: int) -> Callable[[], list[str]]:
    calls = {"n": 0}

    def check() -> list[str]:
        calls["n"] += 1
        return ["mlops-dev-serving-5xx"] if calls["n"] > polls else []

    return check


@dataclass
class Row:
    """One fault at one stage and the state it must leave."""

    stage: str
    fault: str
    expect: dict[str, Any]
    codes: dict[str, ExitCode]
    setup: Callable[[World], None] = lambda world: None
    alarms: Callable[[], Callable[[], list[str]]] | None = None
    train_ok: bool = True
    approved: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.stage}/{self.fault}"


RELEASED = {"champion": "2", "candidate": None, "serves": "2", "canary": None}
UNCHANGED = {"champion": "1", "candidate": None, "serves": "1", "canary": None}

ROWS = [
    Row("none", "healthy release", RELEASED, {"deploy": OK, "smoke-test": OK}),
    Row("build-images", "critical scan finding", {**UNCHANGED}, {}, train_ok=False, extra={"candidate": False}),
    Row("train", "gate refusal", {**UNCHANGED}, {}, train_ok=False, extra={"candidate": False}),
    Row("train", "execution failed or timed out", {**UNCHANGED}, {}, train_ok=False, extra={"candidate": False}),
    Row("approval", "rejected", {**UNCHANGED, "candidate": "2"}, {}, approved=False),
    Row("deploy", "canary analysis failed", UNCHANGED, {"deploy": FAILED},
        setup=lambda w: w.cluster.failing_analysis.add("2")),
    Row("deploy", "alarm fires during the bake", UNCHANGED, {"deploy": FAILED}, alarms=lambda: alarm_after(1)),
    Row("deploy", "kubectl timeout (transient)", RELEASED, {"deploy": OK, "smoke-test": OK},
        setup=lambda w: w.cluster.fail("get", "rollout", times=2, after=3)),
    Row("deploy", "kubectl unreachable through the bake", UNCHANGED, {"deploy": FAILED},
        setup=lambda w: w.cluster.fail("get", "rollout", times=5, after=3)),
    Row("deploy", "kubectl unreachable before the patch", {**UNCHANGED, "candidate": "2"}, {"deploy": ERROR},
        setup=lambda w: w.cluster.fail("get", times=5)),
    Row("deploy", "AWS throttling (transient)", RELEASED, {"deploy": OK, "smoke-test": OK}, alarms=lambda: throttled(2)),
    Row("deploy", "AWS throttling (persistent)", UNCHANGED, {"deploy": FAILED}, alarms=lambda: throttled(50)),
    Row("deploy", "controller slow to observe", RELEASED, {"deploy": OK, "smoke-test": OK},
        setup=lambda w: setattr(w.cluster, "observe_lag", 4)),
    Row("deploy", "canary fails, restore patch fails transiently", UNCHANGED, {"deploy": FAILED},
        setup=lambda w: (w.cluster.failing_analysis.add("2"), w.cluster.fail("patch", "deployment", times=2, after=1))),
    Row("deploy", "canary fails, restore patch refused", {**UNCHANGED}, {"deploy": ERROR},
        setup=lambda w: w.cluster.failing_analysis.add("2"), extra={"refuse_restore": True}),
    Row("deploy", "second release holds the lease", {"champion": "1", "candidate": "2", "serves": "1", "canary": None}, {"deploy": CONFLICT},
        setup=lambda w: ReleaseLease(w.tracking_uri, MODEL, "another-release").acquire("deploy")),
    Row("deploy", "champion moved since the gate", {"champion": "3", "candidate": None, "serves": "1", "canary": None}, {"deploy": CONFLICT},
        setup=lambda w: w._client().set_registered_model_alias(MODEL, "champion", "3")),
    Row("smoke-test", "smoke test fails", UNCHANGED, {"deploy": OK, "smoke-test": FAILED},
        setup=lambda w: w.smoke_fails.add("2")),
    Row("smoke-test", "smoke fails, controller slow to observe the restore", UNCHANGED, {"deploy": OK, "smoke-test": FAILED},
        setup=lambda w: w.smoke_fails.add("2"), extra={"slow_restore": True}),
    Row("smoke-test", "smoke fails, restore kubectl transient", UNCHANGED, {"deploy": OK, "smoke-test": FAILED},
        setup=lambda w: w.smoke_fails.add("2"), extra={"flaky_restore": True}),
    Row("smoke-test", "champion moved during the canary", {"champion": "3", "candidate": None, "serves": "1", "canary": None},
        {"deploy": OK, "smoke-test": CONFLICT}, extra={"move_champion_to": "3"}),
]


def run_row(world: World, row: Row) -> dict[str, ExitCode]:
    """Drive the stages as CodePipeline would; returns each stage's exit code."""
    codes: dict[str, ExitCode] = {}
    if not row.train_ok:
        # BuildImages/Train failed: the register step never set a candidate, and the
        # Train stage cannot name a release (registration.json absent or refused).
        with pytest.raises(ReleaseFileError):
            registered_version('{"version": "2", "promoted": false}', "registration.json")
        return codes
    world.register_candidate("2")
    row.setup(world)
    if not row.approved:
        return codes
    release = world.release("2")
    try:
        result = deploy_release(release, tracking_uri=world.tracking_uri, cluster=world.driver(), timeout_s=600,
                                check_alarms=row.alarms() if row.alarms else None)
        codes["deploy"] = OK
    except StageFailed as failed:
        codes["deploy"] = failed.exit_code
        return codes
    world.cluster.settle()
    if row.extra.get("move_champion_to"):
        world._client().set_registered_model_alias(MODEL, "champion", row.extra["move_champion_to"])
    if row.extra.get("slow_restore"):
        world.cluster.observe_lag = 5
    if row.extra.get("flaky_restore"):
        world.cluster.fail("patch", "deployment", times=2)
    try:
        finish_release(release, result.record, tracking_uri=world.tracking_uri, url=URL, smoke_check=world.smoke, cluster=world.driver())
        codes["smoke-test"] = OK
    except StageFailed as failed:
        codes["smoke-test"] = failed.exit_code
    return codes


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_fault_matrix(row: Row, tmp_path: Path, release_registry: Path) -> None:
    world = make_world(tmp_path, release_registry)
    if row.extra.get("refuse_restore"):
        # The deploy's own patch goes through; every later template patch is refused.
        world.refuse_template_patches_after = 1
    codes = run_row(world, row)
    world.cluster.settle()
    assert codes == row.codes, world.lines
    assert world.state() == row.expect, world.lines
    assert ReleaseLease(world.tracking_uri, MODEL, "probe").holder() is None or row.fault == "second release holds the lease"
    tag = world.outcome_tag("2") or ""
    if row.codes.get("smoke-test") == OK:
        assert tag.startswith("released by "), tag
    elif any(code != OK for code in codes.values()) and row.expect["candidate"] is None:
        # The release ended: the candidate is closed with the reason on the version.
        assert tag.startswith(("rejected", "superseded")), tag
    else:
        assert tag == "", tag


def test_a_restore_that_cannot_finish_says_so_and_leaves_traffic_on_stable(tmp_path: Path, release_registry: Path) -> None:
    """The refused-restore row in detail: exit 1 names the Rollout to check; the abort
    already put all traffic back on v1, although the template still names v2."""
    world = make_world(tmp_path, release_registry)
    world.cluster.failing_analysis.add("2")
    world.register_candidate("2")
    world.refuse_template_patches_after = 1
    with pytest.raises(StageFailed) as failed:
        deploy_release(world.release("2"), tracking_uri=world.tracking_uri, cluster=world.driver(), timeout_s=600)
    assert failed.value.exit_code == ExitCode.ERROR
    assert "restore FAILED" in failed.value.reason and "check serving/model-server by hand" in failed.value.reason
    assert world.cluster.serves() == {"stable": "1", "canary": None, "canary_weight": 0}
    assert registry.alias_version(world.tracking_uri, MODEL, "champion") == "1"


def test_the_restore_waits_for_the_controller_before_promoting_in_full(tmp_path: Path, release_registry: Path) -> None:
    """After a promotion the previous version is no longer stable: restoring it is a new
    revision. promoteFull patched before the controller observed it would be cleared by
    resetRolloutStatus and the failing v2 would keep traffic through a whole canary."""
    world = make_world(tmp_path, release_registry)
    world.register_candidate("2")
    world.smoke_fails.add("2")
    release = world.release("2")
    result = deploy_release(release, tracking_uri=world.tracking_uri, cluster=world.driver(), timeout_s=600)
    world.cluster.settle()
    world.cluster.observe_lag = 6
    world.cluster.events.clear()
    with pytest.raises(StageFailed):
        finish_release(release, result.record, tracking_uri=world.tracking_uri, url=URL, smoke_check=world.smoke, cluster=world.driver())
    promoted = [e for e in world.cluster.events if e.startswith("promoted")]
    assert promoted and promoted[0].endswith("(promoteFull)"), world.cluster.events
    assert world.cluster.serves()["stable"] == "1"


def test_the_old_restore_order_runs_a_full_canary_on_the_double() -> None:
    """The double models the race the old code lost: promoteFull before observation is lost."""
    from pipeline.delivery.rollout import RolloutTarget, promote_full, restore_container

    from .argo_double import ArgoDouble
    from .release_harness import IMAGES

    double = ArgoDouble("2", IMAGES["2"], observe_lag=2)
    before = dict(double.template["spec"]["containers"][1])
    double.template["spec"]["containers"][1] = {**before, "env": [{"name": "MODEL_URI", "value": "models:/adult-income/1"}], "image": IMAGES["1"]}
    restored_container = double.template["spec"]["containers"][1]
    double.template["spec"]["containers"][1] = before
    restore_container(RolloutTarget(), restored_container, double)
    promote_full(RolloutTarget(), double)  # too early: the controller has not observed the template
    double.settle(3)
    assert double.status["promoteFull"] is False and double.status["stableRS"] != double.status["currentPodHash"]
    assert double.serves()["stable"] == "2", "the failing version still takes the stable traffic during a full canary"


def test_the_first_deploy_restores_a_rollout_that_follows_the_alias(tmp_path: Path, release_registry: Path) -> None:
    """Before the first automated deploy the pods follow MODEL_ALIAS=champion: the exact
    container (alias env, no MODEL_URI) comes back, which Argo treats as its stable RS."""
    world = make_world(tmp_path, release_registry, serving_version=None)
    world.cluster.failing_analysis.add("2")
    world.register_candidate("2")
    with pytest.raises(StageFailed) as failed:
        deploy_release(world.release("2"), tracking_uri=world.tracking_uri, cluster=world.driver(), timeout_s=600)
    assert failed.value.exit_code == ExitCode.DEPLOY_FAILED
    env = {e["name"] for e in world.cluster.template["spec"]["containers"][1]["env"]}
    assert "MODEL_ALIAS" in env and "MODEL_URI" not in env
    assert "SkipSteps: Rollback to stable ReplicaSets" in world.cluster.events
    assert world.state() == UNCHANGED


def test_a_rollout_left_aborted_is_refused_not_reported_as_serving(tmp_path: Path, release_registry: Path) -> None:
    """An earlier release's restore did not finish: the template names v2 but v1 serves.
    A retry must not read the template and call v2 "already serving"."""
    world = make_world(tmp_path, release_registry)
    world.register_candidate("2")
    from pipeline.delivery.rollout import RolloutTarget, Serving, abort, apply_serving

    apply_serving(RolloutTarget(), Serving(MODEL, "2", world.release("2").image or ""), world.cluster)
    world.cluster.settle(3)
    abort(RolloutTarget(), world.cluster)
    world.cluster.settle(2)
    with pytest.raises(StageFailed) as failed:
        deploy_release(world.release("2"), tracking_uri=world.tracking_uri, cluster=world.driver(), timeout_s=600)
    assert failed.value.exit_code == ExitCode.ERROR and "not settled" in failed.value.reason
    assert world.state()["serves"] == "1" and world.state()["champion"] == "1"


def test_a_retried_deploy_after_success_does_not_canary_again(tmp_path: Path, release_registry: Path) -> None:
    world = make_world(tmp_path, release_registry)
    world.register_candidate("2")
    release = world.release("2")
    first = deploy_release(release, tracking_uri=world.tracking_uri, cluster=world.driver(), timeout_s=600)
    world.cluster.settle()
    again = deploy_release(release, tracking_uri=world.tracking_uri, cluster=world.driver(), timeout_s=600)
    assert (first.action, again.action) == ("canaried", "already-serving")
    finish_release(release, first.record, tracking_uri=world.tracking_uri, url=URL, smoke_check=world.smoke, cluster=world.driver())
    assert world.state() == RELEASED
