"""A failed smoke test puts the workload back, then the alias: deploy record, fake kubectl, real registry.

``deliver deploy`` writes what it replaced (deployment.json); ``deliver smoke-test
--deployment-record`` reads it and, on failure, patches the Rollout's template back,
promotes that known-good revision in full, waits for it, then moves ``champion`` back.
The fake kubectl records every argv, so the exact commands are asserted; it proves the
calls are well-formed, not that a cluster or Argo accepts them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.delivery import deploy_record, registry
from pipeline.delivery.rollout import RolloutTarget, Serving
from pipeline.exit_codes import ExitCode

from .conftest import NEW_IMAGE, OLD_IMAGE
from .test_rollout import HEALTHY_NEW, PROGRESSING, make_state, server_container

HEALTHY_OLD = {"phase": "Healthy", "stableRS": "old", "currentPodHash": "old"}
GET_DEPLOYMENT = ["-n", "serving", "get", "deployment", "model-server", "-o", "json"]
GET_ROLLOUT = ["-n", "serving", "get", "rollout", "model-server", "-o", "json"]


class Outcome:
    """What ``default_smoke_test``'s check returns: ``passed`` and a printable report."""

    def __init__(self, passed: bool) -> None:
        self.passed = passed

    def __str__(self) -> str:
        return "health ok; known_prediction FAILED (probability 0.91 != 0.12)" if not self.passed else "health ok; known_prediction ok; version ok"


class SmokeScript:
    """Stands in for the HTTP smoke check (tested in tests/pipeline): a scripted verdict, every call recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.passed = False

    def factory(self, uri: str, name: str) -> Any:
        def check(url: str, version: str) -> Outcome:
            self.calls.append((url, version))
            return Outcome(self.passed)

        return check


@pytest.fixture()
def smoke(monkeypatch: pytest.MonkeyPatch) -> SmokeScript:
    script = SmokeScript()
    monkeypatch.setattr("pipeline.delivery.rehearsal.default_smoke_test", script.factory)
    return script


def deploy_cli(uri: str, record: Path) -> int:
    return main(["deliver", "deploy", "--tracking-uri", uri, "--stack", "dev", "--poll-s", "0.01", "--timeout-s", "30", "--record", str(record)])


def smoke_cli(uri: str, record: Path | None, *extra: str) -> int:
    argv = ["deliver", "smoke-test", "--url", "http://127.0.0.1:9", "--tracking-uri", uri, "--poll-s", "0.01", "--restore-timeout-s", "5", *extra]
    return main([*argv, "--deployment-record", str(record)] if record else argv)


def kubectl_log(state: Path) -> list[list[str]]:
    return list(json.loads(state.read_text()).get("log", []))


def champion(uri: str) -> str:
    return registry.current_champion(uri, "adult-income").version  # type: ignore[union-attr]


def test_deploy_writes_what_it_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str) -> None:
    make_state(tmp_path, monkeypatch, [PROGRESSING, HEALTHY_NEW])
    record = tmp_path / "out" / "deployment.json"
    assert deploy_cli(tracking_uri, record) == ExitCode.OK
    data = json.loads(record.read_text())
    assert data == {
        "schema": 1, "action": "promoted", "model_name": "adult-income",
        "rollout": {"name": "model-server", "namespace": "serving", "container": "server", "template_kind": "deployment", "port": 8080},
        "deployed": {"model_name": "adult-income", "model_version": "2", "image": NEW_IMAGE},
        "previous": {"model_name": "adult-income", "model_version": "1", "image": OLD_IMAGE},
    }
    assert deploy_record.read_record(record).previous.model_version == "1"  # type: ignore[union-attr]


def test_failed_smoke_test_restores_rollout_then_alias(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str, smoke: SmokeScript, capsys: pytest.CaptureFixture[str]) -> None:
    state = make_state(tmp_path, monkeypatch, [PROGRESSING, HEALTHY_NEW])
    record = tmp_path / "deployment.json"
    assert deploy_cli(tracking_uri, record) == ExitCode.OK
    assert server_container(state)["image"] == NEW_IMAGE and champion(tracking_uri) == "2"
    deployed_log = len(kubectl_log(state))
    capsys.readouterr()

    assert smoke_cli(tracking_uri, record) == ExitCode.DEPLOY_FAILED
    assert smoke.calls == [("http://127.0.0.1:9", "2")]
    restore = kubectl_log(state)[deployed_log:]
    patch = restore[3]
    assert restore == [
        GET_DEPLOYMENT,  # what serves now: must be what the deploy set
        GET_ROLLOUT,  # the failing revision's pod hash
        GET_DEPLOYMENT,  # the template the patch is computed against
        ["-n", "serving", "patch", "deployment", "model-server", "--type", "json", "-p", patch[-1]],
        ["-n", "serving", "patch", "rollout", "model-server", "--subresource", "status", "--type", "merge", "-p", '{"status": {"promoteFull": true}}'],
        GET_ROLLOUT,  # healthy on the restored hash
    ]
    assert json.loads(patch[-1]) == [
        {"op": "test", "path": "/spec/template/spec/containers/1/name", "value": "server"},
        {"op": "replace", "path": "/spec/template/spec/containers/1/image", "value": OLD_IMAGE},
        {"op": "replace", "path": "/spec/template/spec/containers/1/env/0/value", "value": "models:/adult-income/1"},
        {"op": "replace", "path": "/spec/template/spec/containers/1/env/2/value", "value": "1"},
    ]
    container = server_container(state)
    assert container["image"] == OLD_IMAGE
    assert {e["name"]: e["value"] for e in container["env"]}["MODEL_URI"] == "models:/adult-income/1"
    assert champion(tracking_uri) == "1"
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("  restore ")]
    assert [line.split(":")[0] for line in lines] == ["  restore rollout", "  restore rollout", "  restore alias"]
    assert "healthy" in lines[1] and "moved back to version 1" in lines[2]


def test_restore_that_does_not_become_healthy_still_moves_the_alias_and_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str, smoke: SmokeScript, capsys: pytest.CaptureFixture[str]) -> None:
    state = make_state(tmp_path, monkeypatch, [PROGRESSING, HEALTHY_NEW])
    record = tmp_path / "deployment.json"
    assert deploy_cli(tracking_uri, record) == ExitCode.OK
    data = json.loads(state.read_text())
    data["after_patch"] = [PROGRESSING] * 1000  # Argo never settles on the restored revision
    state.write_text(json.dumps(data))
    assert smoke_cli(tracking_uri, record, "--restore-timeout-s", "0") == ExitCode.ERROR
    assert server_container(state)["image"] == OLD_IMAGE
    assert champion(tracking_uri) == "1"
    assert "timeout" in capsys.readouterr().err


def test_passing_smoke_test_restores_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str, smoke: SmokeScript) -> None:
    state = make_state(tmp_path, monkeypatch, [PROGRESSING, HEALTHY_NEW])
    record = tmp_path / "deployment.json"
    assert deploy_cli(tracking_uri, record) == ExitCode.OK
    before = len(kubectl_log(state))
    smoke.passed = True
    assert smoke_cli(tracking_uri, record) == ExitCode.OK
    assert len(kubectl_log(state)) == before and champion(tracking_uri) == "2"


def test_nothing_to_do_record_restores_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str, smoke: SmokeScript, capsys: pytest.CaptureFixture[str]) -> None:
    state = make_state(tmp_path, monkeypatch, [HEALTHY_NEW], version="2")
    record = tmp_path / "deployment.json"
    assert deploy_cli(tracking_uri, record) == ExitCode.OK
    assert json.loads(record.read_text())["action"] == "nothing-to-do"
    before = len(kubectl_log(state))
    assert smoke_cli(tracking_uri, record) == ExitCode.DEPLOY_FAILED
    assert len(kubectl_log(state)) == before and champion(tracking_uri) == "2"
    assert "nothing to restore" in capsys.readouterr().err


def good_record() -> dict[str, Any]:
    record = deploy_record.DeploymentRecord("promoted", "adult-income", RolloutTarget(), Serving("adult-income", "2", NEW_IMAGE), Serving("adult-income", "1", OLD_IMAGE))
    return dict(json.loads(record.to_json()))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (None, "cannot read deployment record"),
        (lambda d: "not json {", "is not JSON"),
        (lambda d: [d], "must be a JSON object"),
        (lambda d: {**d, "schema": 2}, "schema 2 is not 1"),
        (lambda d: {**d, "previous": {**d["previous"], "image": "mlops-serving:v1"}}, "previous.image 'mlops-serving:v1' is not referenced by digest"),
        (lambda d: {**d, "previous": None}, "previous must be an object"),
        (lambda d: {**d, "rollout": {**d["rollout"], "namespace": "Serving!"}}, "rollout.namespace 'Serving!' is not a Kubernetes name"),
        (lambda d: {**d, "deployed": {**d["deployed"], "model_version": "two"}}, "deployed.model_version 'two' is not a version number"),
        (lambda d: {**d, "model_name": "other-model"}, "the record is for 'other-model'"),
    ],
)
def test_missing_or_malformed_record_refuses_with_nothing_touched(mutate: Any, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str, smoke: SmokeScript, capsys: pytest.CaptureFixture[str]) -> None:
    state = make_state(tmp_path, monkeypatch, [HEALTHY_NEW], version="2")
    record = tmp_path / "deployment.json"
    if mutate is not None:
        changed = mutate(good_record())
        record.write_text(changed if isinstance(changed, str) else json.dumps(changed))
    assert smoke_cli(tracking_uri, record) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert message in err and "nothing was smoke-tested or restored" in err
    assert smoke.calls == [] and kubectl_log(state) == [] and champion(tracking_uri) == "2"


def test_previous_version_disagreeing_with_the_record_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str, smoke: SmokeScript, capsys: pytest.CaptureFixture[str]) -> None:
    state = make_state(tmp_path, monkeypatch, [HEALTHY_NEW], version="2")
    record = tmp_path / "deployment.json"
    record.write_text(json.dumps(good_record()))
    assert smoke_cli(tracking_uri, record, "--previous-version", "7") == ExitCode.USAGE
    assert "disagrees with the record's v1" in capsys.readouterr().err
    assert smoke.calls == [] and kubectl_log(state) == [] and champion(tracking_uri) == "2"


def test_rollout_changed_by_someone_else_is_not_touched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str, smoke: SmokeScript, capsys: pytest.CaptureFixture[str]) -> None:
    state = make_state(tmp_path, monkeypatch, [HEALTHY_NEW], version="3")  # serves v3: neither v2 (deployed) nor v1 (previous)
    record = tmp_path / "deployment.json"
    record.write_text(json.dumps(good_record()))
    assert smoke_cli(tracking_uri, record) == ExitCode.ERROR
    assert "someone else changed it; nothing restored" in capsys.readouterr().err
    assert kubectl_log(state) == [GET_DEPLOYMENT]  # read, never patched
    assert champion(tracking_uri) == "2"


def test_rerun_after_the_rollout_was_restored_only_moves_the_alias(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str, smoke: SmokeScript, capsys: pytest.CaptureFixture[str]) -> None:
    state = make_state(tmp_path, monkeypatch, [HEALTHY_NEW], version="1")  # already back on v1 (OLD_IMAGE)
    record = tmp_path / "deployment.json"
    record.write_text(json.dumps(good_record()))
    assert smoke_cli(tracking_uri, record) == ExitCode.DEPLOY_FAILED
    assert not any("patch" in argv for argv in kubectl_log(state))
    assert champion(tracking_uri) == "1"
    assert "already serves v1" in capsys.readouterr().err
