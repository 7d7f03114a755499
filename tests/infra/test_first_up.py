"""The first `pulumi up` converges: each defect issue 12 found by reading the program
against the AWS, EKS and chart documentation, asserted on both stacks' captured graphs.

A mock accepts whatever it is sent, so each test pins the property the real service
needs (a rule AWS requires, a field the controller reads, a capacity the scheduler
needs), not merely that a call was made.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import capacity
from infra.eks_versions import version as eks_version
from infra.mlflow_server import in_cluster_tracking_uri
from infra.mocks import Capture, Recorded
from infra.model_service import (PRE_STOP_SLEEP_SECONDS, SERVER_DRAIN_SECONDS, SERVING_PORT)

STACKS = ["dev", "prod"]
REPO_ROOT = Path(__file__).resolve().parents[2]


def _by_name(cap: Capture, token: str, name: str) -> Recorded:
    found = [r for r in cap.of_type(token) if (r.inputs.get("metadata") or {}).get("name") == name]
    assert len(found) == 1, f"expected one {token} named {name}, found {[r.urn for r in found]}"
    return found[0]


def _container(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    containers = manifest["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


@pytest.mark.parametrize("stack", STACKS)
def test_delivery_builds_reach_the_private_api_endpoint(captured: dict[str, Capture], stack: str) -> None:
    """The endpoint is private in both stacks; the VPC builds that run kubectl, and the
    operators' group that `pulumi up` runs in, are admitted on 443 by the cluster
    security group (EKS's default admits only itself)."""
    cap = captured[stack]
    cluster = cap.one("aws:eks/cluster:Cluster")
    assert cluster.inputs["vpcConfig"]["endpointPrivateAccess"] is True, cluster.urn
    assert cluster.inputs["vpcConfig"]["endpointPublicAccess"] is False, cluster.urn
    cluster_sg = cluster.outputs["vpcConfig"]["clusterSecurityGroupId"]
    build_sg = cap.one("aws:ec2/securityGroup:SecurityGroup", "-build-sg").id
    rules = [r for r in cap.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
             if r.inputs["securityGroupId"] == cluster_sg]
    clients_sg = cap.one("aws:ec2/securityGroup:SecurityGroup", "-api-clients-sg").id
    assert cap.outputs["clusterApiClientSecurityGroupId"] == clients_sg
    assert sorted((r.inputs["referencedSecurityGroupId"], r.inputs["fromPort"], r.inputs["toPort"],
                   r.inputs["ipProtocol"]) for r in rules) == \
        sorted([(build_sg, 443, 443, "tcp"), (clients_sg, 443, 443, "tcp")]), [r.urn for r in rules]
    for project in cap.of_type("aws:codebuild/project:Project"):
        if "deploy" in project.name or "smoketest" in project.name:
            assert project.inputs["vpcConfig"]["securityGroupIds"] == [build_sg], project.urn


@pytest.mark.parametrize("stack", STACKS)
def test_prometheus_claim_binds_through_the_ebs_driver(captured: dict[str, Capture], stack: str) -> None:
    """EKS 1.30+ has no default StorageClass and no EBS driver: both are installed, and
    Prometheus's claim names the class and waits for it."""
    cap = captured[stack]
    addon = next(r for r in cap.of_type("aws:eks/addon:Addon")
                 if r.inputs["addonName"] == "aws-ebs-csi-driver")
    role = next(r for r in cap.of_type("aws:iam/role:Role") if r.outputs["arn"] == addon.inputs["serviceAccountRoleArn"])
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert any(v == "system:serviceaccount:kube-system:ebs-csi-controller-sa"
               for v in trust["Statement"][0]["Condition"]["StringEquals"].values()), role.urn
    attached = [a.inputs["policyArn"] for a in cap.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                if a.inputs["role"] == role.outputs["name"]]
    assert attached == ["arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"], role.urn
    storage = cap.one("kubernetes:storage.k8s.io/v1:StorageClass")
    assert storage.inputs["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert storage.inputs["provisioner"] == "ebs.csi.aws.com", storage.urn
    assert storage.inputs["volumeBindingMode"] == "WaitForFirstConsumer", storage.urn
    assert storage.inputs["parameters"]["encrypted"] == "true", storage.urn
    prometheus = next(r for r in cap.of_type("kubernetes:helm.sh/v3:Release")
                      if r.inputs["name"] == "prometheus")
    volume = prometheus.inputs["values"]["server"]["persistentVolume"]
    assert volume["storageClass"] == storage.inputs["metadata"]["name"], prometheus.urn


@pytest.mark.parametrize("stack", STACKS)
def test_every_addon_takes_over_what_eks_bootstrapped(captured: dict[str, Capture], stack: str) -> None:
    addons = captured[stack].of_type("aws:eks/addon:Addon")
    assert {"vpc-cni", "kube-proxy", "coredns"} <= {a.inputs["addonName"] for a in addons}
    for addon in addons:
        assert addon.inputs.get("resolveConflictsOnCreate") == "OVERWRITE", addon.urn
        assert addon.inputs.get("resolveConflictsOnUpdate") == "OVERWRITE", addon.urn


@pytest.mark.parametrize("stack", STACKS)
def test_serving_waits_for_its_first_model_without_crash_looping(captured: dict[str, Capture],
                                                                  stack: str) -> None:
    """No champion at the first `up`: /ping is 503 (not ready), /livez 200 (alive). The
    pod drains on SIGTERM: preStop sleep, then the server's drain, inside the grace."""
    cap = captured[stack]
    deployment = _by_name(cap, "kubernetes:apps/v1:Deployment", "model-server")
    server = _container(deployment.inputs, "server")
    assert server["livenessProbe"]["httpGet"] == {"path": "/livez", "port": SERVING_PORT}, deployment.urn
    assert server["readinessProbe"]["httpGet"] == {"path": "/ping", "port": SERVING_PORT}, deployment.urn
    assert server["lifecycle"]["preStop"] == {"sleep": {"seconds": PRE_STOP_SLEEP_SECONDS}}, deployment.urn
    assert 4 <= PRE_STOP_SLEEP_SECONDS <= 10
    grace = deployment.inputs["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > PRE_STOP_SLEEP_SECONDS + SERVER_DRAIN_SECONDS, deployment.urn


@pytest.mark.parametrize("stack", STACKS)
def test_no_service_await_depends_on_pod_readiness(captured: dict[str, Capture], stack: str) -> None:
    """Pulumi's default Service await wants ready endpoints; serving pods are unready
    until a champion exists and MLflow's Deployment needs its Service's NLB name first.
    Every Service either skips the await or waits for its load balancer's name only."""
    for service in captured[stack].of_type("kubernetes:core/v1:Service"):
        annotations = service.inputs["metadata"].get("annotations") or {}
        if service.inputs["spec"].get("type") == "LoadBalancer":
            assert annotations.get("pulumi.com/waitFor") == \
                "jsonpath={.status.loadBalancer.ingress[0].hostname}", service.urn
        else:
            assert annotations.get("pulumi.com/skipAwait") == "true", service.urn


@pytest.mark.parametrize("stack", STACKS)
def test_every_pod_fits_the_pools_at_peak(captured: dict[str, Capture], stack: str) -> None:
    assert capacity.check_capture(captured[stack]) == []


def test_the_old_dev_pool_is_refused_by_the_capacity_check(captured: dict[str, Capture]) -> None:
    """Dev's former system pool (m6i.large, at most 3 nodes) leaves the canary Pending."""
    cap = captured["dev"]
    pools = [capacity.NodePool("system", ("m6i.large",), 3) if p.name == "system" else p
             for p in capacity.pools_from_capture(cap)]
    _, problems = capacity.place(capacity.demands_from_capture(cap), pools)
    assert any(p.startswith("model-server (canary surge): no room on the system pool") for p in problems), problems
    assert any(p.startswith("mlflow") for p in problems), problems


@pytest.mark.parametrize("stack", STACKS)
def test_autoscaler_runs_the_clusters_minor(captured: dict[str, Capture], stack: str) -> None:
    cap = captured[stack]
    minor = cap.one("aws:eks/cluster:Cluster").inputs["version"]
    release = next(r for r in cap.of_type("kubernetes:helm.sh/v3:Release")
                   if r.inputs["name"] == "cluster-autoscaler")
    tag = release.inputs["values"]["image"]["tag"]
    assert tag == eks_version(minor).autoscaler_tag and tag.startswith(f"v{minor}."), release.urn


@pytest.mark.parametrize("stack", STACKS)
def test_mlflow_survives_its_first_boot_and_is_reached_by_service_dns(captured: dict[str, Capture],
                                                                      stack: str) -> None:
    cap = captured[stack]
    mlflow = _by_name(cap, "kubernetes:apps/v1:Deployment", "mlflow")
    server = _container(mlflow.inputs, "mlflow")
    startup = server["startupProbe"]
    # A first-boot schema migration gets minutes before liveness may restart the pod.
    assert startup["httpGet"]["path"] == "/health"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, mlflow.urn
    uri = in_cluster_tracking_uri()
    assert uri == "http://mlflow.mlflow.svc.cluster.local"
    serving = _container(_by_name(cap, "kubernetes:apps/v1:Deployment", "model-server").inputs, "server")
    assert _env(serving)["MLFLOW_TRACKING_URI"] == uri
    job = _by_name(cap, "kubernetes:batch/v1:CronJob", "model-server-monitor")
    monitor = job.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert _env(monitor)["MLFLOW_TRACKING_URI"] == uri, job.urn
    # Their NetworkPolicies let them reach the MLflow pods' port behind the Service.
    for name in ("model-server", "model-server-monitor"):
        policy = _by_name(cap, "kubernetes:networking.k8s.io/v1:NetworkPolicy", name)
        assert {"ports": [{"protocol": "TCP", "port": 5000}],
                "to": [{"namespaceSelector": {"matchLabels": {
                    "kubernetes.io/metadata.name": "mlflow"}}}]} in policy.inputs["spec"]["egress"], policy.urn


@pytest.mark.parametrize("stack", STACKS)
def test_ecr_lifecycle_never_expires_a_tagged_image(captured: dict[str, Capture], stack: str) -> None:
    """The champion's image is old and tagged; only untagged leftovers may expire."""
    policies = captured[stack].of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    assert len(policies) == 3
    for policy in policies:
        rules = json.loads(policy.inputs["policy"])["rules"]
        assert rules and all(r["selection"]["tagStatus"] == "untagged" for r in rules), policy.urn


def test_test_stage_writes_the_junit_report_it_publishes() -> None:
    spec = yaml.safe_load((REPO_ROOT / "buildspecs" / "test.yml").read_text())
    report = spec["reports"]["pytest"]
    assert report["file-format"] == "JUNITXML"
    published = [f"{report.get('base-directory', '.')}/{pattern}" for pattern in report["files"]]
    assert spec["phases"]["build"]["commands"] == ["make test"]
    # `make test` hands PYTEST_ARGS (from the environment, `?=`) to pytest.
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "PYTEST_ARGS ?=" in makefile and "-m pytest $(PYTEST_ARGS)" in makefile
    args = spec["env"]["variables"]["PYTEST_ARGS"].split()
    written = [arg.split("=", 1)[1] for arg in args if arg.startswith("--junitxml=")]
    assert written and written[0] in published, (written, published)


@pytest.mark.parametrize("stack", STACKS)
def test_the_hpa_has_a_resource_metrics_source(captured: dict[str, Capture], stack: str) -> None:
    """A CPU-utilisation HPA reads the resource metrics API; EKS serves it only once
    metrics-server is installed (otherwise the HPA never scales past its minimum)."""
    cap = captured[stack]
    hpa = cap.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
    assert any(m["type"] == "Resource" for m in hpa.inputs["spec"]["metrics"]), hpa.urn
    addons = {a.inputs["addonName"] for a in cap.of_type("aws:eks/addon:Addon")}
    assert "metrics-server" in addons, addons


@pytest.mark.parametrize("stack", STACKS)
def test_pulumi_leaves_the_scale_to_the_hpa(captured: dict[str, Capture], stack: str) -> None:
    """Under server-side apply, a field Pulumi sets is a field it owns: the Rollout's
    replicas belong to the HPA, the template's image and model env to the Deploy stage."""
    cap = captured[stack]
    rollout = cap.one("kubernetes:argoproj.io/v1alpha1:Rollout")
    assert "replicas" not in rollout.inputs["spec"], rollout.urn
    hpa = cap.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
    assert hpa.inputs["spec"]["scaleTargetRef"]["kind"] == "Rollout", hpa.urn
    assert hpa.inputs["spec"]["minReplicas"] == cap.settings.serving.min_replicas, hpa.urn
    deployment = _by_name(cap, "kubernetes:apps/v1:Deployment", "model-server")
    assert "spec.template.spec.containers[0].image" in deployment.ignore_changes, deployment.urn
