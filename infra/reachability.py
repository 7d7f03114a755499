"""Network reachability of the offline plan: the flows the platform needs are open, the
ones that must stay closed are closed.

Computed from what the plan declares (security groups and their standalone rules, the
route tables the S3 gateway endpoint serves, the cluster's endpoint access, the
Kubernetes NetworkPolicies and load-balancer Services), with the one group the plan
cannot show added in AWS's documented default: the cluster security group EKS creates
admits itself and sends anywhere. NACLs are not modelled (the platform creates none;
the VPC's default NACL allows all). A flow is a named question; each failed answer is
a ``Finding`` judged against ``infra/network-skips.yaml`` like the checkov skips.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.checks import Finding
from infra.naming import subnet_cidrs

SKIP_FILE = Path(__file__).resolve().parent / "network-skips.yaml"
INTERNET = ("0.0.0.0/0", "::/0")


@dataclass(frozen=True)
class Rule:
    """One security-group rule, ingress or egress, normalised."""

    protocol: str
    from_port: int
    to_port: int
    cidrs: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    prefix_lists: tuple[str, ...] = ()

    def covers_port(self, protocol: str, port: int) -> bool:
        return self.protocol in ("-1", "all", protocol) and (
            self.protocol in ("-1", "all") or self.from_port <= port <= self.to_port)


@dataclass
class Group:
    """A security group's rules."""

    ingress: list[Rule] = field(default_factory=list)
    egress: list[Rule] = field(default_factory=list)


def _rule(raw: dict[str, Any]) -> Rule:
    return Rule(str(raw.get("protocol", raw.get("ipProtocol", "-1"))), int(raw.get("fromPort", 0)),
                int(raw.get("toPort", 65535)),
                tuple(raw.get("cidrBlocks") or ([raw["cidrIpv4"]] if raw.get("cidrIpv4") else [])),
                tuple(raw.get("securityGroups") or ([raw["referencedSecurityGroupId"]]
                                                    if raw.get("referencedSecurityGroupId") else [])),
                tuple(raw.get("prefixListIds") or ([raw["prefixListId"]] if raw.get("prefixListId") else [])))


def groups_from_capture(capture: Any) -> dict[str, Group]:
    """Every security group by id, with standalone rules merged in and EKS's cluster
    security group added with its documented defaults."""
    groups: dict[str, Group] = {}
    for sg in capture.of_type("aws:ec2/securityGroup:SecurityGroup"):
        groups[sg.id] = Group([_rule(r) for r in sg.inputs.get("ingress", [])],
                              [_rule(r) for r in sg.inputs.get("egress", [])])
    cluster = capture.one("aws:eks/cluster:Cluster")
    cluster_sg = cluster.outputs["vpcConfig"]["clusterSecurityGroupId"]
    groups[cluster_sg] = Group([Rule("-1", 0, 65535, groups=(cluster_sg,))],
                               [Rule("-1", 0, 65535, cidrs=("0.0.0.0/0",))])
    for rule in capture.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"):
        groups.setdefault(rule.inputs["securityGroupId"], Group()).ingress.append(_rule(rule.inputs))
    for rule in capture.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"):
        groups.setdefault(rule.inputs["securityGroupId"], Group()).egress.append(_rule(rule.inputs))
    return groups


def _in(cidr: str, within: tuple[str, ...]) -> bool:
    net = ipaddress.ip_network(cidr)
    return any(net.version == ipaddress.ip_network(w).version and net.subnet_of(ipaddress.ip_network(w))  # type: ignore[arg-type]
               for w in within)


def sg_flow(groups: dict[str, Group], src: str, dst: str, port: int, *, src_cidr: str,
            dst_cidr: str, protocol: str = "tcp") -> bool:
    """Whether ``src`` (a group, its members at ``src_cidr``) reaches ``dst`` (a group, its
    members at ``dst_cidr``) on ``port``: the source's egress and the destination's
    ingress must both allow it (security groups are stateful: replies need no rule)."""
    out = any(r.covers_port(protocol, port) and (dst in r.groups or _in(dst_cidr, r.cidrs))
              for r in groups[src].egress)
    into = any(r.covers_port(protocol, port) and (src in r.groups or _in(src_cidr, r.cidrs))
               for r in groups[dst].ingress)
    return out and into


def open_to_internet(groups: dict[str, Group], dst: str) -> list[Rule]:
    """Ingress rules of ``dst`` that admit any internet address."""
    return [r for r in groups[dst].ingress if any(c in INTERNET for c in r.cidrs)]


def _netpol(capture: Any, name: str) -> dict[str, Any]:
    return next(r.inputs["spec"] for r in capture.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
                if r.inputs["metadata"]["name"] == name)


def _service(capture: Any, name: str) -> dict[str, Any]:
    return next(r.inputs for r in capture.of_type("kubernetes:core/v1:Service")
                if r.inputs["metadata"]["name"] == name)


def _netpol_admits(rules: list[dict[str, Any]], port: int, *, cidr: str | None = None,
                   namespace: str | None = None) -> bool:
    """Whether NetworkPolicy ``rules`` (ingress ``from`` or egress ``to``) admit a peer
    given by address or by namespace, on ``port``."""
    for rule in rules:
        ports = rule.get("ports")
        if ports and not any(p.get("port") == port for p in ports):
            continue
        peers = rule.get("from", rule.get("to"))
        if not peers:
            return True
        for peer in peers:
            block = (peer.get("ipBlock") or {}).get("cidr")
            if cidr and block and _in(cidr, (block,)):
                return True
            selector = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
            if namespace and selector.get("kubernetes.io/metadata.name") == namespace:
                return True
    return False


def flows(capture: Any) -> dict[str, tuple[bool, str]]:
    """Each flow the platform needs open (or must keep closed): (as expected?, detail)."""
    groups = groups_from_capture(capture)
    vpc_cidr = capture.one("aws:ec2/vpc:Vpc").inputs["cidrBlock"]
    private = [s for s in capture.of_type("aws:ec2/subnet:Subnet") if "-private-" in s.name]
    # Nodes, build jobs and SageMaker ENIs all sit in the private subnets: one of them
    # stands for every source address there.
    node_cidr = subnet_cidrs(vpc_cidr, len(private))[0][0]
    cluster = capture.one("aws:eks/cluster:Cluster")
    cluster_sg = cluster.outputs["vpcConfig"]["clusterSecurityGroupId"]
    build_sg = capture.one("aws:ec2/securityGroup:SecurityGroup", "-build-sg").id
    jobs_sg = capture.one("aws:ec2/securityGroup:SecurityGroup", "-jobs-sg").id
    endpoint_sg = capture.one("aws:ec2/securityGroup:SecurityGroup", "-endpoints-sg").id
    db_sg = capture.one("aws:ec2/securityGroup:SecurityGroup", "-db-sg").id
    s3 = next(e for e in capture.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
              if e.inputs.get("vpcEndpointType") == "Gateway")
    private_rts = {a.inputs["routeTableId"] for a in capture.of_type(
        "aws:ec2/routeTableAssociation:RouteTableAssociation")
        if any(a.inputs["subnetId"] == s.id for s in private)}
    prod = capture.settings.is_prod if capture.settings else False
    serving_ns = capture.settings.serving.namespace if capture.settings else "serving"
    result: dict[str, tuple[bool, str]] = {}

    clients_sg = capture.one("aws:ec2/securityGroup:SecurityGroup", "-api-clients-sg").id
    result["operators-to-eks-api"] = (
        sg_flow(groups, clients_sg, cluster_sg, 443, src_cidr=node_cidr, dst_cidr=node_cidr),
        "where `pulumi up` runs (the API clients' group) to the private API endpoint on 443")
    result["build-to-eks-api"] = (
        sg_flow(groups, build_sg, cluster_sg, 443, src_cidr=node_cidr, dst_cidr=node_cidr),
        "CodeBuild's VPC builds to the private API endpoint (cluster security group) on 443")
    s3_egress = any(r.covers_port("tcp", 443) and (s3.outputs.get("prefixListId") in r.prefix_lists
                                                   or any(c in INTERNET for c in r.cidrs))
                    for r in groups[jobs_sg].egress)
    result["sagemaker-to-s3"] = (
        s3_egress and private_rts <= set(s3.inputs.get("routeTableIds", [])),
        "SageMaker jobs to S3: egress to the gateway endpoint's prefix list, and every "
        "private subnet's route table served by the endpoint")
    result["sagemaker-to-aws-apis"] = (
        sg_flow(groups, jobs_sg, endpoint_sg, 443, src_cidr=node_cidr, dst_cidr=node_cidr),
        "SageMaker jobs to the interface endpoints (STS, ECR, logs, Secrets Manager) on 443")
    mlflow = _service(capture, "mlflow")
    result["sagemaker-to-mlflow"] = (
        any(r.covers_port("tcp", 80) and _in(node_cidr, r.cidrs) for r in groups[jobs_sg].egress)
        and _in(node_cidr, tuple(mlflow["spec"]["loadBalancerSourceRanges"]))
        and _netpol_admits(_netpol(capture, "mlflow")["ingress"], 5000, cidr=node_cidr),
        "SageMaker jobs to MLflow's internal NLB on 80 (source ranges admit the subnets; "
        "MLflow's NetworkPolicy admits the nodes that forward it)")
    result["serving-to-mlflow"] = (
        _netpol_admits(_netpol(capture, "model-server")["egress"], 5000, namespace="mlflow")
        and _netpol_admits(_netpol(capture, "mlflow")["ingress"], 5000, cidr=node_cidr),
        "serving pods to the MLflow pods (Service DNS, port 5000 after translation)")
    internal = _service(capture, "model-server-internal")
    result["lb-to-serving"] = (
        _in(node_cidr, tuple(internal["spec"]["loadBalancerSourceRanges"]))
        and _netpol_admits(_netpol(capture, "model-server")["ingress"], 8080, cidr=node_cidr),
        f"the internal NLB (through the nodes) to the serving pods in {serving_ns} on 8080")
    result["nodes-to-database"] = (
        sg_flow(groups, cluster_sg, db_sg, 5432, src_cidr=node_cidr, dst_cidr=node_cidr),
        "MLflow pods (cluster security group) to PostgreSQL on 5432")
    db = capture.one("aws:rds/instance:Instance")
    result["internet-to-database-closed"] = (
        not open_to_internet(groups, db_sg) and db.inputs["publiclyAccessible"] is False,
        "nothing from 0.0.0.0/0 to the database")
    annotations = mlflow["metadata"].get("annotations") or {}
    result["internet-to-mlflow-closed"] = (
        annotations.get("service.beta.kubernetes.io/aws-load-balancer-scheme") == "internal"
        and not any(c in INTERNET for c in mlflow["spec"]["loadBalancerSourceRanges"]),
        "MLflow's load balancer is internal and admits no internet range")
    public = cluster.inputs["vpcConfig"]["endpointPublicAccess"]
    cidrs = cluster.inputs["vpcConfig"].get("publicAccessCidrs") or []
    result["internet-to-eks-api-closed"] = (
        not open_to_internet(groups, cluster_sg) and not (public and (prod or not cidrs or
                                                                      any(c in INTERNET for c in cidrs))),
        "no 0.0.0.0/0 to the Kubernetes API (and no public endpoint at all in prod)")
    return result


def network_findings(capture: Any) -> list[Finding]:
    """Flows not as the platform needs them, as skip-file findings (check id = flow)."""
    return [Finding(flow, capture.stack, detail) for flow, (ok, detail) in flows(capture).items() if not ok]
