"""BuildImages can be retried: a commit's images are built and pushed once.

The ECR repositories are tag-immutable and the stage tags with the commit, so a retried
stage (or the drift-retrain trigger re-running the same commit) used to rebuild and
push to a tag that exists, which ECR refuses forever. ECR is moto's server on
127.0.0.1; ``docker`` is ``fakes/docker``, whose push lands in moto and fails on an
existing tag as ECR does. What this proves: the stage's decisions and ECR calls, not
that CodeBuild's docker built anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.exit_codes import ExitCode

from .conftest import put_fake_on_path

REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
REPOSITORIES = ("mlops-training", "mlops-serving")


@pytest.fixture()
def docker_log(aws: Any, moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in REPOSITORIES:
        aws("ecr").create_repository(repositoryName=name, imageScanningConfiguration={"scanOnPush": True}, imageTagMutability="IMMUTABLE")
    log = tmp_path / "docker.log"
    put_fake_on_path("docker", tmp_path / "bin", monkeypatch)
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    monkeypatch.setenv("FAKE_DOCKER_ECR_ENDPOINT", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return log


def build(moto_endpoint: str, out: Path, tag: str = "abc123") -> int:
    return main(["deliver", "build-images", "--registry", REGISTRY, "--endpoint-url", moto_endpoint, "--tag", tag,
                 "--scan-timeout-s", "30", "--out", str(out)])


def docker_calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_a_retried_build_of_the_same_commit_reuses_the_pushed_images(docker_log: Path, moto_endpoint: str, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert build(moto_endpoint, tmp_path / "first.json") == ExitCode.OK, capsys.readouterr()
    first = json.loads((tmp_path / "first.json").read_text())
    assert [c.split()[0] for c in docker_calls(docker_log)] == ["build", "push", "build", "push"]
    assert set(first) == {"training", "serving"} and all(ref.startswith(f"{REGISTRY}/mlops-") and "@sha256:" in ref for ref in first.values())

    docker_log.unlink()
    assert build(moto_endpoint, tmp_path / "retry.json") == ExitCode.OK, capsys.readouterr()
    assert docker_calls(docker_log) == [], "a retry builds nothing and pushes nothing"
    assert json.loads((tmp_path / "retry.json").read_text()) == first, "a retry hands later stages the same digests"
    assert "already in ECR" in capsys.readouterr().out


def test_a_retry_after_a_half_finished_attempt_builds_only_what_is_missing(docker_log: Path, aws: Any, moto_endpoint: str,
                                                                          tmp_path: Path) -> None:
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "layers": [],
                "config": {"digest": "sha256:" + "e" * 64, "size": 1, "mediaType": "application/vnd.docker.container.image.v1+json"}}
    pushed = aws("ecr").put_image(repositoryName="mlops-training", imageManifest=json.dumps(manifest), imageTag="abc123")
    digest = pushed["image"]["imageId"]["imageDigest"]
    aws("ecr").start_image_scan(repositoryName="mlops-training", imageId={"imageDigest": digest})
    assert build(moto_endpoint, tmp_path / "images.json") == ExitCode.OK
    assert docker_calls(docker_log) == [f"build --pull -f serving/Dockerfile -t {REGISTRY}/mlops-serving:abc123 .",
                                        f"push {REGISTRY}/mlops-serving:abc123"]
    assert json.loads((tmp_path / "images.json").read_text())["training"] == f"{REGISTRY}/mlops-training@{digest}"


def test_a_new_commit_is_built_and_a_failed_push_fails_the_stage(docker_log: Path, moto_endpoint: str, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert build(moto_endpoint, tmp_path / "a.json", tag="aaa111") == ExitCode.OK
    assert build(moto_endpoint, tmp_path / "b.json", tag="bbb222") == ExitCode.OK
    assert len([c for c in docker_calls(docker_log) if c.startswith("push")]) == 4, "each commit is built once"
    assert json.loads((tmp_path / "a.json").read_text()) != json.loads((tmp_path / "b.json").read_text())
    capsys.readouterr()
    # ECR unreachable from docker: the push fails, the stage says which and writes nothing.
    monkeypatch.setenv("FAKE_DOCKER_ECR_ENDPOINT", "http://127.0.0.1:9")
    assert build(moto_endpoint, tmp_path / "c.json", tag="ccc333") == ExitCode.ERROR
    assert "docker push of" in capsys.readouterr().err and not (tmp_path / "c.json").exists()
