"""The cluster deploy driver through a recorded fake kubectl on PATH and a real MLflow registry.

The fake holds one Rollout in a JSON file and answers get/patch like the API server
would; what it proves is that our kubectl calls and JSON patches are well-formed and
that the driver reacts to Argo's statuses, not that a cluster accepted them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.delivery import deploy_cluster, registry, rollout
from pipeline.delivery.errors import StageFailed
from pipeline.exit_codes import ExitCode

from .conftest import NEW_IMAGE, OLD_IMAGE

FAKES = Path(__file__).parent / "fakes"
TARGET = rollout.RolloutTarget(name="model-server", namespace="serving", container="server")
HEALTHY_NEW = {"phase": "Healthy", "stableRS": "new", "currentPodHash": "new"}
PROGRESSING = {"phase": "Paused", "stableRS": "old", "currentPodHash": "new", "message": "CanaryPauseStep"}
DEGRADED = {"phase": "Degraded", "abort": True, "stableRS": "old", "currentPodHash": "new", "message": "RolloutAborted: Metric \"error-rate\" assessed Failed"}


def make_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, after_patch: list[dict[str, Any]], version: str | None = "1") -> Path:
    """The ModelService's shape: a Rollout with workloadRef to a Deployment that holds
    the template. ``version`` None: the pods follow MODEL_ALIAS=champion (as created by
    ``pulumi up``, before the first automated deploy) and serve v1."""
    model_env = [{"name": "MODEL_URI", "value": f"models:/adult-income/{version}"}] if version else [{"name": "MODEL_NAME", "value": "adult-income"}, {"name": "MODEL_ALIAS", "value": "champion"}]
    state = {
        "rollout": {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "model-server", "namespace": "serving", "generation": 1},
            "spec": {"workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "model-server"}},
            "status": {"phase": "Healthy", "stableRS": "old", "currentPodHash": "old"},
        },
        "deployment": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "model-server", "namespace": "serving", "generation": 1},
            "spec": {"replicas": 0, "template": {"spec": {"containers": [
                {"name": "log-shipper", "image": "fluent-bit@sha256:" + "9" * 64},
                {"name": "server", "image": OLD_IMAGE, "env": [*model_env, {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow"}]},
            ]}}},
        },
        "served_version": version or "1",
        "after_patch": after_patch,
    }
    path = tmp_path / "kubectl-state.json"
    path.write_text(json.dumps(state))
    monkeypatch.setenv("FAKE_KUBECTL_STATE", str(path))
    monkeypatch.setenv("PATH", f"{FAKES}:" + __import__("os").environ["PATH"])
    monkeypatch.delenv("KUBECTL", raising=False)
    return path


def deploy(uri: str, **kwargs: Any) -> deploy_cluster.DeployResult:
    return deploy_cluster.deploy_champion_to_cluster(tracking_uri=uri, model_name="adult-income", target=TARGET, timeout_s=60, poll_s=10, sleep=lambda s: None, **kwargs)


def server_container(state_path: Path) -> dict[str, Any]:
    containers = json.loads(state_path.read_text())["deployment"]["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "server")


def test_promotes_when_argo_reports_healthy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str) -> None:
    state = make_state(tmp_path, monkeypatch, [PROGRESSING, PROGRESSING, HEALTHY_NEW])
    result = deploy(tracking_uri)
    assert result.action == "promoted" and result.version == "2" and result.previous_version == "1"
    container = server_container(state)
    assert container["image"] == NEW_IMAGE
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MODEL_URI"] == "models:/adult-income/2" and env["MODEL_VERSION"] == "2"
    log = json.loads(state.read_text())["log"]
    patch = next(a for a in log if "patch" in a)
    assert patch[:6] == ["-n", "serving", "patch", "deployment", "model-server", "--type"]
    ops = json.loads(patch[patch.index("-p") + 1])
    assert ops[0] == {"op": "test", "path": "/spec/template/spec/containers/1/name", "value": "server"}
    assert registry.current_champion(tracking_uri, "adult-income").version == "2"  # type: ignore[union-attr]


def test_nothing_to_do_when_champion_did_not_move(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str) -> None:
    state = make_state(tmp_path, monkeypatch, [HEALTHY_NEW], version="2")
    result = deploy(tracking_uri)
    assert result.action == "nothing-to-do"
    assert not any("patch" in a for a in json.loads(state.read_text())["log"])


def test_abort_restores_rollout_and_alias(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str) -> None:
    state = make_state(tmp_path, monkeypatch, [PROGRESSING, DEGRADED])
    with pytest.raises(StageFailed, match="error-rate") as info:
        deploy(tracking_uri)
    assert info.value.exit_code == ExitCode.DEPLOY_FAILED and info.value.stage == "deploy"
    container = server_container(state)
    assert container["image"] == OLD_IMAGE
    assert {e["name"]: e["value"] for e in container["env"]}["MODEL_URI"] == "models:/adult-income/1"
    assert registry.current_champion(tracking_uri, "adult-income").version == "1"  # type: ignore[union-attr]


def test_alarm_during_bake_aborts_and_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str) -> None:
    state = make_state(tmp_path, monkeypatch, [PROGRESSING, PROGRESSING, HEALTHY_NEW])
    with pytest.raises(StageFailed, match="mlops-dev-serving-5xx"):
        deploy(tracking_uri, check_alarms=lambda: ["mlops-dev-serving-5xx"])
    log = json.loads(state.read_text())["log"]
    abort = next(a for a in log if "--subresource" in a)
    assert json.loads(abort[abort.index("-p") + 1]) == {"status": {"abort": True}}
    assert server_container(state)["image"] == OLD_IMAGE
    assert registry.current_champion(tracking_uri, "adult-income").version == "1"  # type: ignore[union-attr]


def test_timeout_aborts_and_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str) -> None:
    make_state(tmp_path, monkeypatch, [PROGRESSING] * 20)
    clock = iter(range(0, 10_000, 10))
    with pytest.raises(StageFailed, match="timeout"):
        deploy(tracking_uri, clock=lambda: float(next(clock)))
    assert registry.current_champion(tracking_uri, "adult-income").version == "1"  # type: ignore[union-attr]


def test_refuses_a_tagged_image_and_a_missing_container(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str) -> None:
    make_state(tmp_path, monkeypatch, [HEALTHY_NEW])
    with pytest.raises(ValueError, match="by digest"):
        deploy(tracking_uri, image="mlops-serving:latest")
    assert registry.current_champion(tracking_uri, "adult-income").version == "2"  # type: ignore[union-attr]
    with pytest.raises(LookupError, match="no container 'model'"):
        deploy_cluster.deploy_champion_to_cluster(tracking_uri=tracking_uri, model_name="adult-income", target=rollout.RolloutTarget(container="model"), timeout_s=5)


def test_kubectl_errors_name_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_state(tmp_path, monkeypatch, [])
    with pytest.raises(rollout.KubectlError, match="NotFound"):
        rollout.get_rollout(rollout.RolloutTarget(name="missing"))
    monkeypatch.setenv("KUBECTL", str(tmp_path / "no-kubectl"))
    with pytest.raises(rollout.KubectlError, match="not found on PATH"):
        rollout.get_rollout(TARGET)


def test_first_deploy_of_an_alias_following_workload_pins_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str) -> None:
    state = make_state(tmp_path, monkeypatch, [PROGRESSING, DEGRADED], version=None)
    with pytest.raises(StageFailed, match="restored to v1"):
        deploy(tracking_uri)
    log = json.loads(state.read_text())["log"]
    assert ["get", "--raw", "/api/v1/namespaces/serving/services/model-server:8080/proxy/version"] in log
    # Rolled back pinned to v1: a pod restart can no longer pick up the refused alias.
    env = {e["name"]: e["value"] for e in server_container(state)["env"]}
    assert env["MODEL_URI"] == "models:/adult-income/1"
    assert registry.current_champion(tracking_uri, "adult-income").version == "1"  # type: ignore[union-attr]


def test_healthy_is_only_trusted_on_a_new_pod_hash() -> None:
    stale = {"status": {"phase": "Healthy", "stableRS": "old", "currentPodHash": "old"}}
    assert rollout.rollout_state(stale, "old")[0] == "progressing"
    assert rollout.rollout_state({"status": HEALTHY_NEW}, "old")[0] == "healthy"
    assert rollout.rollout_state({"status": DEGRADED}, "old")[0] == "aborted"
    with pytest.raises(ValueError, match="template_kind"):
        rollout.RolloutTarget(template_kind="statefulset")
