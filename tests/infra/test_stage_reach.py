"""The delivery stages can reach and act on what they deploy (issue 11's infra part):
Kubernetes rights through a group bound to a namespaced Role (EKS access policies have
no argoproj.io rules), KMS rights on the encrypted alarm topic they publish to, the
VPC-build condition in AWS's documented shape, and a kubectl within the supported skew.
The network half (build security group to the API on 443) is in test_first_up.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.kube import DEPLOYER_GROUP
from infra.mocks import Capture

STACKS = ["dev", "prod"]
REPO_ROOT = Path(__file__).resolve().parents[2]


def rbac_allows(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    """Whether RBAC ``rules`` grant ``verb`` on ``resource`` (``res`` or ``res/sub``) in ``group``."""
    return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"]
               for r in rules)


@pytest.mark.parametrize("stack", STACKS)
def test_cluster_stages_hold_the_kubernetes_rights_the_deploy_code_uses(
        captured: dict[str, Capture], stack: str) -> None:
    cap = captured[stack]
    namespace = cap.settings.serving.namespace
    role = cap.one("kubernetes:rbac.authorization.k8s.io/v1:Role", "deployer")
    assert role.inputs["metadata"]["namespace"] == namespace, role.urn
    rules = role.inputs["rules"]
    # What pipeline/delivery/rollout.py does: patch the template owner, patch the
    # Rollout's status (abort/promote), watch the Rollout, read /version by proxy.
    for group, resource, verb in (("apps", "deployments", "patch"), ("argoproj.io", "rollouts", "get"),
                                  ("argoproj.io", "rollouts", "patch"),
                                  ("argoproj.io", "rollouts/status", "patch"),
                                  ("argoproj.io", "analysisruns", "list"), ("", "services/proxy", "get")):
        assert rbac_allows(rules, group, resource, verb), f"{role.urn}: no {verb} on {group}/{resource}"
    # Least privilege: nothing cluster-wide, no secrets, no deletes, no wildcards.
    assert not rbac_allows(rules, "", "secrets", "get"), role.urn
    assert all("*" not in r["verbs"] + r["resources"] + r["apiGroups"] and "delete" not in r["verbs"]
               for r in rules), role.urn
    binding = cap.one("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "deployer")
    assert binding.inputs["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                         "name": role.inputs["metadata"]["name"]}, binding.urn
    assert binding.inputs["subjects"] == [{"kind": "Group", "name": DEPLOYER_GROUP,
                                           "apiGroup": "rbac.authorization.k8s.io"}], binding.urn
    projects = {p.inputs["serviceRole"]: p for p in cap.of_type("aws:codebuild/project:Project")}
    entries = cap.of_type("aws:eks/accessEntry:AccessEntry")
    assert {projects[e.inputs["principalArn"]].inputs["source"]["buildspec"] for e in entries} == \
        {"buildspecs/deploy.yml", "buildspecs/smoke_test.yml"}
    for entry in entries:
        assert entry.inputs["kubernetesGroups"] == [DEPLOYER_GROUP], entry.urn
    assert not cap.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")


def _role_documents(cap: Capture) -> list[tuple[str, dict[str, Any]]]:
    return [(p.urn, json.loads(p.inputs["policy"])) for p in cap.of_type("aws:iam/rolePolicy:RolePolicy")]


def _grants(document: dict[str, Any], action: str, resource: str) -> bool:
    for statement in document["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if statement["Effect"] == "Allow" and action in actions and resource in resources:
            return True
    return False


@pytest.mark.parametrize("stack", STACKS)
def test_every_publisher_to_the_encrypted_topic_may_use_its_key(captured: dict[str, Capture],
                                                                stack: str) -> None:
    cap = captured[stack]
    topic = cap.one("aws:sns/topic:Topic")
    key = next(k for k in cap.of_type("aws:kms/key:Key") if k.outputs["arn"] == topic.inputs["kmsMasterKeyId"])
    publishers = [(urn, doc) for urn, doc in _role_documents(cap)
                  if _grants(doc, "sns:Publish", topic.outputs["arn"])]
    assert len(publishers) == 4, [u for u, _ in publishers]  # BuildImages, Train, Deploy, SmokeTest
    for urn, doc in publishers:
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            assert _grants(doc, action, key.outputs["arn"]), f"{urn}: publishes without {action}"


@pytest.mark.parametrize("stack", STACKS)
def test_vpc_build_condition_is_in_awss_documented_shape(captured: dict[str, Capture], stack: str) -> None:
    """``ec2:AuthorizedService`` and ``ec2:Subnet`` exist only on
    CreateNetworkInterfacePermission; on CreateNetworkInterface the condition never
    matches and a VPC build cannot start."""
    cap = captured[stack]
    subnets = {f"arn:aws:ec2:{cap.settings.region}:123456789012:subnet/{s.id}"
               for s in cap.of_type("aws:ec2/subnet:Subnet") if "-private-" in s.name}
    found = 0
    for urn, doc in _role_documents(cap):
        for statement in doc["Statement"]:
            conditions = statement.get("Condition", {})
            if "ec2:AuthorizedService" in conditions.get("StringEquals", {}):
                found += 1
                assert statement["Action"] == ["ec2:CreateNetworkInterfacePermission"], urn
                assert conditions["StringEquals"]["ec2:AuthorizedService"] == "codebuild.amazonaws.com", urn
                assert set(conditions["ArnEquals"]["ec2:Subnet"]) == subnets, urn
            if "ec2:CreateNetworkInterface" in statement.get("Action", []):
                assert "Condition" not in statement, urn
    vpc_projects = [p for p in cap.of_type("aws:codebuild/project:Project") if p.inputs.get("vpcConfig")]
    # Train, Deploy, SmokeTest (one role each) and the infra builds (one shared role).
    assert len(vpc_projects) == 6 and found == 4


@pytest.mark.parametrize("stack", STACKS)
def test_cluster_stages_install_a_kubectl_of_the_clusters_minor(captured: dict[str, Capture],
                                                                stack: str) -> None:
    cap = captured[stack]
    minor = tuple(int(x) for x in cap.one("aws:eks/cluster:Cluster").inputs["version"].split("."))
    for project in cap.of_type("aws:codebuild/project:Project"):
        buildspec = project.inputs["source"]["buildspec"]
        env = {v["name"]: v["value"] for v in project.inputs["environment"]["environmentVariables"]}
        spec = yaml.safe_load((REPO_ROOT / buildspec).read_text())
        commands = " ".join(c for phase in spec["phases"].values() for c in phase.get("commands", []))
        if "update-kubeconfig" not in commands:
            continue
        kubectl = tuple(int(x) for x in env["KUBECTL_VERSION"].split("."))
        # Kubernetes' skew policy: kubectl within one minor of the API server.
        assert kubectl[0] == minor[0] and abs(kubectl[1] - minor[1]) <= 1, project.urn
        install = spec["phases"]["install"]["commands"]
        assert any(re.search(r"dl\.k8s\.io/release/v\$\{KUBECTL_VERSION\}/bin/linux/amd64/kubectl\"", c)
                   for c in install), buildspec
        assert any("sha256sum -c" in c for c in install), f"{buildspec}: kubectl is not verified"
        assert "/usr/local/bin/kubectl" in " ".join(install), buildspec
