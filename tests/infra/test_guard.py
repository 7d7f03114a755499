"""The CrossGuard policy pack's validators (infra/guard.py) on the resources the mocks
capture: both stacks pass every rule, and each rule refuses a resource that breaks it.
A real `pulumi preview --policy-pack infra/policy_pack` runs the same functions."""

from __future__ import annotations

import copy
import json
import runpy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from infra import guard
from infra.mocks import Capture

STACKS = ["dev", "prod"]


def _violations(token: str, props: dict[str, Any], urn: str = "urn:test") -> list[str]:
    found: list[str] = []
    args = SimpleNamespace(resource_type=token, props=props, urn=urn, name=urn)
    for rule in guard.RULES:
        rule.validate(args, lambda message, urn=None, r=rule: found.append(f"{r.name}: {message}"))
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_every_captured_resource_passes_every_rule(captured: dict[str, Capture], stack: str) -> None:
    problems = [f"{r.urn}: {v}" for r in captured[stack].resources if r.custom
                for v in _violations(r.type, r.inputs, r.urn)]
    assert not problems, "\n".join(problems)


def _one(cap: Capture, token: str, name: str = "") -> dict[str, Any]:
    return copy.deepcopy(cap.one(token, name).inputs)


def test_each_rule_refuses_what_it_guards(captured: dict[str, Capture]) -> None:
    prod = captured["prod"]
    cases: list[tuple[str, dict[str, Any], str]] = []
    cluster = _one(prod, "aws:eks/cluster:Cluster")
    cluster["vpcConfig"].update(endpointPublicAccess=True, publicAccessCidrs=["203.0.113.0/24"])
    cluster["enabledClusterLogTypes"] = ["api"]
    cases.append(("aws:eks/cluster:Cluster", cluster, "eks-cluster: prod's API endpoint must be private"))
    cases.append(("aws:eks/cluster:Cluster", cluster, "documentation range"))
    cases.append(("aws:eks/cluster:Cluster", cluster, "control-plane log types missing"))
    repo = _one(prod, "aws:ecr/repository:Repository", "serving")
    repo["imageTagMutability"] = "MUTABLE"
    cases.append(("aws:ecr/repository:Repository", repo, "tags must be immutable"))
    lifecycle = _one(prod, "aws:ecr/lifecyclePolicy:LifecyclePolicy", "serving")
    lifecycle["policy"] = json.dumps({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any"}}]})
    cases.append(("aws:ecr/lifecyclePolicy:LifecyclePolicy", lifecycle, "can expire tagged images"))
    db = _one(prod, "aws:rds/instance:Instance")
    db.update(deletionProtection=False, publiclyAccessible=True)
    cases.append(("aws:rds/instance:Instance", db, "no deletion protection"))
    cases.append(("aws:rds/instance:Instance", db, "publicly accessible"))
    sg = _one(prod, "aws:ec2/securityGroup:SecurityGroup", "-db-sg")
    sg["ingress"][0]["cidrBlocks"] = ["0.0.0.0/0"]
    cases.append(("aws:ec2/securityGroup:SecurityGroup", sg, "ingress from the internet"))
    policy = _one(prod, "aws:iam/rolePolicy:RolePolicy", "deploy")
    policy["policy"] = json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
    cases.append(("aws:iam/rolePolicy:RolePolicy", policy, "wildcard action"))
    key = _one(prod, "aws:kms/key:Key", "mlflow")
    key["enableKeyRotation"] = False
    cases.append(("aws:kms/key:Key", key, "rotation is off"))
    workload = next(copy.deepcopy(r.inputs) for r in prod.of_type("kubernetes:apps/v1:Deployment")
                    if r.inputs["metadata"]["name"] == "model-server")
    container = workload["spec"]["template"]["spec"]["containers"][0]
    container["image"] = "repo/serving:latest"
    del container["livenessProbe"]
    cases.append(("kubernetes:apps/v1:Deployment", workload, "image not pinned by digest"))
    cases.append(("kubernetes:apps/v1:Deployment", workload, "liveness or readiness probe missing"))
    service = next(copy.deepcopy(r.inputs) for r in prod.of_type("kubernetes:core/v1:Service")
                   if r.inputs["metadata"]["name"] == "mlflow")
    service["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-scheme"] = "internet-facing"
    cases.append(("kubernetes:core/v1:Service", service, "load balancer is not internal"))
    for token, props, expected in cases:
        found = _violations(token, props)
        assert any(expected in v for v in found), f"{token}: expected {expected!r}, got {found}"


def test_the_pack_registers_every_rule_as_mandatory(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pack's entry point, run with PolicyPack replaced (the real one serves the
    engine over gRPC): one mandatory pack holding every rule."""
    import pulumi_policy

    made: dict[str, Any] = {}
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kw: made.update(kw))
    pack = Path(__file__).resolve().parents[2] / "infra" / "policy_pack"
    runpy.run_path(str(pack / "__main__.py"), run_name="__main__")
    assert made["enforcement_level"] == pulumi_policy.EnforcementLevel.MANDATORY
    assert [p.name for p in made["policies"]] == [r.name for r in guard.RULES]
    assert (pack / "PulumiPolicy.yaml").is_file() and "pulumi-policy==" in (pack / "requirements.txt").read_text()
