"""The serving metrics' path to CloudWatch, and the Deploy stage's footing, under mocks.

The CloudWatch observability add-on must be pinned and configured with the EMF listener,
its agent role least-privilege; ModelService must hand the server the agent endpoint,
log group and dimensions, keep ``pulumi up`` off the fields the Deploy stage patches, and
let the API server's service proxy reach the pods. Mocks prove what is asked for, not
that EKS or CloudWatch accept it.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from infra import policies
from infra.gpu_cluster import (CLOUDWATCH_OBSERVABILITY_VERSION, EMF_PORT, emf_endpoint, emf_log_group_name)
from infra.mocks import Capture
from infra.model_service import DEPLOY_OWNED_ENV, SERVING_PORT, control_plane_ingress, deploy_ignore_changes
from infra.naming import subnet_cidrs
from pipeline import metric_names as mn
from pipeline.delivery.rollout import RolloutTarget, Serving, patch_for
from tests.infra.test_components import _cluster, _run, _serving


@pytest.fixture(scope="module")
def serving_capture() -> Capture:
    return _serving("cpu")


def _env(capture: Capture) -> dict[str, Any]:
    deployment = capture.one("kubernetes:apps/v1:Deployment", "serving-deployment")
    return {e["name"]: e["value"] for e in deployment.inputs["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_addon_is_pinned_and_listens_for_emf() -> None:
    cap = _run(lambda: {"name": _cluster().cluster_name})
    addon = cap.one("aws:eks/addon:Addon", "cloudwatch-observability")
    assert addon.inputs["addonVersion"] == CLOUDWATCH_OBSERVABILITY_VERSION, addon.urn
    config = json.loads(addon.inputs["configurationValues"])
    collected = config["agent"]["config"]["logs"]["metrics_collected"]
    assert collected["emf"] == {} and collected["kubernetes"]["enhanced_container_insights"], addon.urn
    assert collected["kubernetes"]["accelerated_compute_metrics"], addon.urn  # the idle-GPU alarm
    assert "traces" not in config["agent"]["config"], addon.urn  # Application Signals off: no X-Ray
    group = cap.one("aws:cloudwatch/logGroup:LogGroup", "serving-metrics")
    assert group.inputs["name"] == emf_log_group_name("t"), group.urn
    assert group.inputs["kmsKeyId"] and group.inputs["retentionInDays"] == 365, group.urn


def test_agent_role_is_least_privilege() -> None:
    cap = _run(lambda: {"name": _cluster().cluster_name})
    role = cap.one("aws:iam/role:Role", "cloudwatch-agent")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    condition = trust["Statement"][0]["Condition"]["StringEquals"]
    assert "system:serviceaccount:amazon-cloudwatch:cloudwatch-agent" in condition.values(), role.urn
    assert not [a for a in cap.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                if "cloudwatch-agent" in a.name], "the broad managed policy is still attached"
    document = json.loads(cap.one("aws:iam/rolePolicy:RolePolicy", "cloudwatch-agent").inputs["policy"])
    assert policies.policy_violations(document) == []
    actions = {a for st in document["Statement"] for a in st["Action"]}
    assert not {a for a in actions if a.startswith(("xray:", "ssm:", "iam:"))}
    put = next(st for st in document["Statement"] if st["Action"] == ["cloudwatch:PutMetricData"])
    assert put["Condition"]["StringEquals"]["cloudwatch:namespace"] == "ContainerInsights"
    writes = next(st for st in document["Statement"] if "logs:PutLogEvents" in st["Action"])
    assert all(":log-group:/aws/containerinsights/" in r or ":log-group:/mlops/t/serving-metrics" in r
               for r in writes["Resource"]), writes["Resource"]


def test_policy_checker_would_refuse_the_managed_shape() -> None:
    broad = {"Statement": [{"Effect": "Allow", "Action": ["logs:PutLogEvents", "cloudwatch:PutMetricData"],
                            "Resource": "*"}]}
    assert policies.policy_violations(broad) == ["statement 0: 'logs:PutLogEvents' on resource '*'"]


def test_model_service_passes_the_emf_endpoint_and_dimensions(serving_capture: Capture) -> None:
    env = _env(serving_capture)
    assert env["AWS_EMF_AGENT_ENDPOINT"] == emf_endpoint() == f"tcp://cloudwatch-agent.amazon-cloudwatch:{EMF_PORT}"
    assert env["AWS_EMF_LOG_GROUP_NAME"] == emf_log_group_name("t")
    assert (env["METRICS_MODEL_NAME"], env["MLOPS_STACK"]) == ("adult-income", "test")
    netpol = serving_capture.one("kubernetes:networking.k8s.io/v1:NetworkPolicy", "serving-netpol")
    emf_rule = next(r for r in netpol.inputs["spec"]["egress"] if r["ports"][0]["port"] == EMF_PORT)
    assert emf_rule["ports"] == [{"protocol": "TCP", "port": EMF_PORT}], netpol.urn
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "amazon-cloudwatch"}}} in emf_rule["to"]


def test_server_reads_exactly_the_env_model_service_sets(serving_capture: Capture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from serving.server import add_server_arguments, options_from_args

    for key, value in _env(serving_capture).items():
        monkeypatch.setenv(key, str(value))
    parser = argparse.ArgumentParser()
    add_server_arguments(parser)
    options = options_from_args(parser.parse_args([]))
    assert options.model_uri == "models:/adult-income@champion"  # empty MODEL_URI: follow the alias
    assert options.emf is not None and options.emf.stack == "test"
    assert options.emf.model_name == "adult-income" and options.emf.log_group_name == emf_log_group_name("t")
    assert options.emf.endpoint.port == EMF_PORT


def test_pulumi_ignores_exactly_what_the_deploy_stage_patches(serving_capture: Capture) -> None:
    deployment = serving_capture.one("kubernetes:apps/v1:Deployment")
    assert deployment.ignore_changes == deploy_ignore_changes(), deployment.urn
    env = deployment.inputs["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e["name"] for e in env[:len(DEPLOY_OWNED_ENV)]] == list(DEPLOY_OWNED_ENV), deployment.urn
    # The real patch the Deploy stage would send to this template.
    ops = patch_for(deployment.inputs, RolloutTarget(), Serving("adult-income", "7", "r/s@sha256:" + "f" * 64))
    changed = {op["path"] for op in ops if op["op"] in ("replace", "add")}
    as_pulumi = {p.lstrip("/").replace("/containers/0", ".containers[0]").replace("/", ".")
                 .replace(".env.0.", ".env[0].").replace(".env.1.", ".env[1].") for p in changed}
    assert as_pulumi == set(deployment.ignore_changes), (changed, deployment.ignore_changes)
    assert all(op["op"] != "add" for op in ops), "the patch would append env entries Pulumi does not know"


def test_network_policy_admits_the_api_server_proxy(serving_capture: Capture) -> None:
    netpol = serving_capture.one("kubernetes:networking.k8s.io/v1:NetworkPolicy", "serving-netpol")
    rule = next(r for r in netpol.inputs["spec"]["ingress"] if any("ipBlock" in p for p in r["from"]))
    assert rule["ports"] == [{"protocol": "TCP", "port": SERVING_PORT}], netpol.urn
    private, _ = subnet_cidrs("10.40.0.0/16", 2)
    assert [p["ipBlock"]["cidr"] for p in rule["from"]] == private, netpol.urn
    vpc = ipaddress.ip_network("10.40.0.0/16")
    for peer in rule["from"]:
        net = ipaddress.ip_network(peer["ipBlock"]["cidr"])
        assert net.subnet_of(vpc) and net != vpc, f"{net} is wider than the control plane's subnets"
    # The proxy path names port 8080: the stable Service must expose it.
    stable = next(r for r in serving_capture.of_type("kubernetes:core/v1:Service")
                  if r.name.endswith("svc-model-server"))
    assert RolloutTarget().port in [p["port"] for p in stable.inputs["spec"]["ports"]], stable.urn


def test_control_plane_ingress_refuses_a_bad_vpc() -> None:
    with pytest.raises(ValueError):
        control_plane_ingress("not-a-cidr", 2)


def test_whole_stack_control_plane_cidrs_are_the_cluster_subnets(captured: dict[str, Capture]) -> None:
    for stack, cap in captured.items():
        subnets = {r.inputs["cidrBlock"] for r in cap.of_type("aws:ec2/subnet:Subnet") if "private" in r.name}
        netpol = cap.one("kubernetes:networking.k8s.io/v1:NetworkPolicy", "serving-netpol")
        rule = next(r for r in netpol.inputs["spec"]["ingress"] if any("ipBlock" in p for p in r["from"]))
        assert {p["ipBlock"]["cidr"] for p in rule["from"]} == subnets, (stack, netpol.urn)
        env = _env(cap)
        assert env["MLOPS_STACK"] == stack and env["METRICS_MODEL_NAME"] == cap.settings.model_name
        assert mn.SERVING_NAMESPACE == "MLOps/Serving"
