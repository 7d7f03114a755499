"""InfraPipeline: infra previews on pull requests and `pulumi up` after merge, both from
CodeBuild inside the VPC, state in an encrypted S3 backend, prod behind an approval."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from infra.infra_pipeline import APPLY_BUILDSPEC, PREVIEW_BUILDSPEC, deployer_role_name
from infra.mocks import Capture

STACKS = ["dev", "prod"]
REPO_ROOT = Path(__file__).resolve().parents[2]


def _projects(cap: Capture) -> dict[str, object]:
    return {p.name.rsplit("-infra-", 1)[1]: p for p in cap.of_type("aws:codebuild/project:Project")
            if "-infra-" in p.name}


@pytest.mark.parametrize("stack", STACKS)
def test_previews_on_pull_requests_and_applies_after_merge_from_the_vpc(
        captured: dict[str, Capture], stack: str) -> None:
    cap = captured[stack]
    projects = _projects(cap)
    assert set(projects) == {"preview", "apply", "merge-preview"}
    clients_sg = cap.one("aws:ec2/securityGroup:SecurityGroup", "-api-clients-sg").id
    for project in projects.values():
        # From inside the VPC, with the group the private API endpoint admits.
        assert project.inputs["vpcConfig"]["securityGroupIds"] == [clients_sg], project.urn
        env = {v["name"]: v["value"] for v in project.inputs["environment"]["environmentVariables"]}
        assert env["PULUMI_STACK"] == stack and env["SECRETS_PROVIDER"].startswith("awskms://"), project.urn
        assert env["DEPLOYER_ROLE_ARN"].endswith(f":role/{deployer_role_name(f'mlops-{stack}')}"), project.urn
    preview = projects["preview"]
    assert preview.inputs["source"]["type"] == "GITHUB" and preview.inputs["source"]["reportBuildStatus"]
    webhook = cap.one("aws:codebuild/webhook:Webhook")
    assert webhook.inputs["projectName"] == preview.outputs["name"], webhook.urn
    events = webhook.inputs["filterGroups"][0]["filters"][0]
    assert events["type"] == "EVENT" and "PULL_REQUEST_CREATED" in events["pattern"], webhook.urn
    pipeline = next(p for p in cap.of_type("aws:codepipeline/pipeline:Pipeline") if "-infra" in p.name)
    names = [s["name"] for s in pipeline.inputs["stages"]]
    expected = ["Source", "Preview", "Approval", "Apply"] if stack == "prod" else ["Source", "Preview", "Apply"]
    assert names == expected, pipeline.urn
    assert pipeline.inputs["executionMode"] == "QUEUED", pipeline.urn
    # The S3 backend: KMS-encrypted, versioned, protected in prod.
    state = cap.one("aws:s3/bucket:Bucket", "-infra-state")
    assert state.protect is (stack == "prod"), state.urn
    assert cap.outputs["infraStateBucket"] == state.outputs["bucket"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_build_role_only_uses_the_state_and_assumes_the_deployer(captured: dict[str, Capture],
                                                                     stack: str) -> None:
    cap = captured[stack]
    policy = json.loads(cap.one("aws:iam/rolePolicy:RolePolicy", "-infra-build-role").inputs["policy"])
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert "sts:AssumeRole" in actions
    assume = next(s for s in policy["Statement"] if s["Action"] == ["sts:AssumeRole"])
    assert assume["Resource"].endswith(f":role/mlops-{stack}-infra-deployer")
    # No service rights of its own beyond state, logs, artifacts, the connection and ENIs.
    assert {a.split(":")[0] for a in actions} <= {"logs", "s3", "kms", "codeconnections", "sts", "ec2"}


@pytest.mark.parametrize("name", [PREVIEW_BUILDSPEC, APPLY_BUILDSPEC])
def test_buildspecs_install_a_verified_pulumi_and_run_as_the_deployer(name: str) -> None:
    spec = yaml.safe_load((REPO_ROOT / name).read_text())
    install = " ".join(spec["phases"]["install"]["commands"])
    assert "pulumi-v${PULUMI_VERSION}-linux-x64.tar.gz" in install and "sha256sum -c" in install
    assert re.fullmatch(r"3\.\d+\.\d+", spec["env"]["variables"]["PULUMI_VERSION"])
    pre = " ".join(spec["phases"]["pre_build"]["commands"])
    assert 'pulumi login "s3://${STATE_BUCKET}' in pre and "credential_source EcsContainer" in pre
    (command,) = spec["phases"]["build"]["commands"]
    assert command.startswith("AWS_PROFILE=deployer pulumi ") and "--policy-pack infra/policy_pack" in command
    verb = "up" if name == APPLY_BUILDSPEC else "preview"
    assert f"pulumi {verb} --stack \"$PULUMI_STACK\"" in command and "--diff" in command
