"""The CodeBuild buildspecs: valid YAML, version 0.2, and every command one our CLI accepts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.cli import build_parser
from pipeline.schema import REPO_ROOT

BUILDSPECS = REPO_ROOT / "buildspecs"
NAMES = ("test.yml", "build_images.yml", "train.yml", "deploy.yml", "smoke_test.yml")
STAGE_OF = {"build_images.yml": "build-images", "train.yml": "train", "deploy.yml": "deploy", "smoke_test.yml": "smoke-test"}


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((BUILDSPECS / name).read_text())


def build_commands(spec: dict[str, Any]) -> list[str]:
    return list(spec["phases"]["build"]["commands"])


def expand(command: str) -> list[str]:
    """Shell words with variables and command substitutions replaced by sample values."""
    command = re.sub(r"\$\(for a in \$SERVING_ALARMS.*?done\)", "--alarm mlops-dev-serving-5xx", command)
    command = re.sub(r"\$\{?([A-Z_]+)\}?", lambda m: f"sample-{m.group(1).lower()}", command)
    return shlex.split(command)


@pytest.mark.parametrize("name", NAMES)
def test_buildspec_shape(name: str) -> None:
    spec = load(name)
    assert str(spec["version"]) == "0.2", name
    assert spec["phases"]["install"]["runtime-versions"]["python"] == 3.11
    assert len(build_commands(spec)) == 1, f"{name}: one stage, one command"


@pytest.mark.parametrize("name", list(STAGE_OF))
def test_stage_runs_our_cli_and_it_parses(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGEMAKER_PIPELINE_NAME", "mlops-dev-training")
    (command,) = build_commands(load(name))
    words = expand(command)
    assert words[:5] == [".venv/bin/python", "-m", "pipeline", "deliver", STAGE_OF[name]], command
    args = build_parser().parse_args(words[3:])
    assert args.command == "deliver" and args.stage == STAGE_OF[name]
    assert callable(args.func)


def test_test_stage_is_make_test() -> None:
    assert build_commands(load("test.yml")) == ["make test"]
    assert re.search(r"^test:", (REPO_ROOT / "Makefile").read_text(), re.M)


def test_build_stage_refuses_critical_and_publishes_digests() -> None:
    spec = load("build_images.yml")
    words = expand(build_commands(spec)[0])
    assert words[words.index("--fail-on") + 1] == "CRITICAL"
    assert spec["artifacts"]["files"] == ["images.json"]
    args = build_parser().parse_args(words[3:])
    assert args.fail_on == "CRITICAL" and not args.skip_build


def test_unknown_stage_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["deliver", "ship-it"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_every_buildspec_is_listed() -> None:
    assert sorted(p.name for p in Path(BUILDSPECS).glob("*.yml")) == sorted(NAMES)


def test_train_stage_passes_the_build_stages_images() -> None:
    words = expand(build_commands(load("train.yml"))[0])
    assert words[words.index("--images") + 1] == "sample-codebuild_src_dir_images/images.json"


def test_deploy_writes_the_record_smoke_test_reads() -> None:
    """Deploy's output artifact is the file smoke-test restores from (DeliveryPipeline wires
    the ``deployment`` artifact from one to the other)."""
    deploy = load("deploy.yml")
    words = expand(build_commands(deploy)[0])
    record = words[words.index("--record") + 1]
    assert deploy["artifacts"]["files"] == [record] == ["deployment.json"]
    smoke = load("smoke_test.yml")
    words = expand(build_commands(smoke)[0])
    assert words[words.index("--deployment-record") + 1] == f"sample-codebuild_src_dir_deployment/{record}"
    # smoke-test patches the Rollout on failure, so it needs cluster credentials first.
    assert any("update-kubeconfig" in c for c in smoke["phases"]["pre_build"]["commands"])


def test_every_stage_after_train_acts_on_the_release_train_wrote() -> None:
    """Train's release.json is the "release" artifact; Deploy and SmokeTest read exactly it,
    and Train exports RELEASE_VERSION for the approval request."""
    train = load("train.yml")
    words = expand(build_commands(train)[0])
    assert words[words.index("--release-out") + 1] == "release.json" == train["artifacts"]["files"][0]
    assert train["env"]["exported-variables"] == ["RELEASE_VERSION"]
    assert any(c.startswith("export RELEASE_VERSION=") and "release.json" in c for c in train["phases"]["post_build"]["commands"])
    for name in ("deploy.yml", "smoke_test.yml"):
        words = expand(build_commands(load(name))[0])
        assert words[words.index("--release") + 1] == "sample-codebuild_src_dir_release/release.json", name
