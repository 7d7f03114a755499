"""``deliver deploy`` and ``deliver smoke-test`` as the buildspecs run them: files in, exit codes out.

kubectl is the real subprocess call to ``fakes/kubectl`` on PATH, which persists the
Argo Rollouts double between calls (``argo_double``); the registry is real MLflow on
SQLite. The smoke check stands in for the HTTP one (tested in tests/pipeline): it asks
the double which version the stable Service answers with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.delivery import deploy_record, registry
from pipeline.exit_codes import ExitCode

from .argo_double import MODEL, ArgoDouble
from .conftest import put_fake_on_path
from .release_harness import IMAGES, Outcome, World, make_world



class Cli:
    """The double persisted where the fake kubectl finds it, and the stage commands."""

    def __init__(self, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.world, self.dir = world, tmp_path
        self.state = tmp_path / "kubectl-state.json"
        self.save(world.cluster)
        monkeypatch.setenv("FAKE_KUBECTL_STATE", str(self.state))
        put_fake_on_path("kubectl", tmp_path / "bin", monkeypatch)
        monkeypatch.delenv("KUBECTL", raising=False)
        self.smoke_fails: set[str] = set()
        monkeypatch.setattr("pipeline.delivery.rehearsal.default_smoke_test", lambda uri, name: self.smoke)
        self.release_file = tmp_path / "release.json"
        self.record = tmp_path / "deployment.json"

    def save(self, double: ArgoDouble) -> None:
        self.state.write_text(json.dumps(double.to_state()))

    def cluster(self) -> ArgoDouble:
        return ArgoDouble.from_state(json.loads(self.state.read_text()))

    def smoke(self, url: str, version: str) -> Outcome:
        answered = self.cluster().serves()["stable"]
        if version in self.smoke_fails or answered != version:
            return Outcome(False, f"version route answered v{answered}, expected v{version}" if answered != version else "known_prediction FAILED")
        return Outcome(True, f"version v{answered}")

    def deploy(self, *extra: str) -> int:
        return main(["deliver", "deploy", "--tracking-uri", self.world.tracking_uri, "--stack", "dev", "--poll-s", "0",
                     "--release", str(self.release_file), "--record", str(self.record), "--lease-wait-s", "0", *extra])

    def smoke_test(self, *extra: str) -> int:
        return main(["deliver", "smoke-test", "--url", "http://127.0.0.1:9", "--tracking-uri", self.world.tracking_uri,
                     "--poll-s", "0", "--release", str(self.release_file), "--deployment-record", str(self.record), *extra])


@pytest.fixture()
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release_registry: Path) -> Cli:
    world = make_world(tmp_path, release_registry)
    world.register_candidate("2")
    cli = Cli(world, tmp_path, monkeypatch)
    world.release("2").write(cli.release_file)
    return cli


def state(cli: Cli) -> dict[str, Any]:
    serves = cli.cluster().serves()
    uri = cli.world.tracking_uri
    return {"champion": registry.alias_version(uri, MODEL, "champion"), "candidate": registry.alias_version(uri, MODEL, "candidate"),
            "serves": serves["stable"], "canary": serves["canary"]}


def test_deploy_then_smoke_test_release_the_candidate(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.deploy() == ExitCode.OK
    record = deploy_record.read_record(cli.record)
    assert (record.action, record.deployed.model_version, record.deployed.image) == ("canaried", "2", IMAGES["2"])
    assert record.previous_container is not None and record.previous_container["image"] == IMAGES["1"]
    assert state(cli) == {"champion": "1", "candidate": "2", "serves": "2", "canary": None}, "the canary passed; champion waits for the smoke test"
    assert cli.smoke_test() == ExitCode.OK
    assert state(cli) == {"champion": "2", "candidate": None, "serves": "2", "canary": None}
    assert "adult-income@champion moved from version 1 to 2" in capsys.readouterr().out


def test_a_failed_smoke_test_puts_the_rollout_back_and_champion_never_moved(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.deploy() == ExitCode.OK
    cli.smoke_fails.add("2")
    assert cli.smoke_test() == ExitCode.DEPLOY_FAILED
    assert state(cli) == {"champion": "1", "candidate": None, "serves": "1", "canary": None}
    err = capsys.readouterr().err
    assert "smoke test of v2 failed" in err and "champion stays v1" in err
    # The restored revision was promoted in full only after the controller observed it.
    log = cli.cluster().log
    promote = next(i for i, argv in enumerate(log) if '{"status": {"promoteFull": true}}' in argv)
    restore = max(i for i, argv in enumerate(log) if "patch" in argv and "deployment" in argv)
    assert restore < promote and any(argv[3:4] == ["rollout"] for argv in log[restore + 1:promote])


def test_a_failed_canary_exits_5_with_everything_as_before(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    double = cli.cluster()
    double.failing_analysis.add("2")
    cli.save(double)
    assert cli.deploy() == ExitCode.DEPLOY_FAILED
    assert state(cli) == {"champion": "1", "candidate": None, "serves": "1", "canary": None}
    assert not cli.record.exists(), "no record: SmokeTest must not run on a failed deploy"
    assert "canary of v2 aborted" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda text: text.replace('"version": "2"', '"version": "latest"'), "version 'latest' is not a version number"),
        (lambda text: text.replace('"base_champion": "1"', '"base_champion": "2"'), "a release cannot replace itself"),
        (lambda text: "{", "is not JSON"),
    ],
)
def test_a_malformed_release_is_refused_before_anything_runs(cli: Cli, capsys: pytest.CaptureFixture[str], mangle: Any, message: str) -> None:
    cli.release_file.write_text(mangle(cli.release_file.read_text()))
    before = len(cli.cluster().log)
    assert cli.deploy() == ExitCode.USAGE
    assert message in capsys.readouterr().err
    assert len(cli.cluster().log) == before, "kubectl was called"


def test_the_smoke_test_refuses_a_record_of_another_release(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.deploy() == ExitCode.OK
    cli.world.release("3").write(cli.release_file)
    assert cli.smoke_test() == ExitCode.USAGE
    assert "deployment record is for release" in capsys.readouterr().err
    assert state(cli)["champion"] == "1"


def test_deploy_without_a_release_is_refused(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deliver", "deploy", "--tracking-uri", cli.world.tracking_uri, "--record", str(cli.record)]) == ExitCode.USAGE
    assert "--release (the train stage's release.json) is required" in capsys.readouterr().err


def test_a_failed_notification_does_not_fail_a_stage_that_succeeded(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    # An SNS endpoint that refuses every call (nothing listens on port 9).
    code = cli.deploy("--sns-topic", "arn:aws:sns:eu-west-1:123456789012:mlops-dev-alarms", "--endpoint-url", "http://127.0.0.1:9")
    assert code == ExitCode.OK
    assert "could not be published" in capsys.readouterr().err
