"""The platform's safety rules as CrossGuard resource validators (Pulumi policy as code).

``pulumi preview --policy-pack infra/policy_pack`` runs these on the real engine's view of
every resource (after the provider has filled in its defaults, which the mocks cannot
show); the tests run the same functions on the resources the mocks capture. Each
validator is ``validate(args, report_violation)``: ``args.resource_type`` is the type
token, ``args.props`` the inputs in the engine's camelCase form, ``args.urn`` the URN.
Prod-only rules read the ``environment`` tag every AWS resource carries. Pure functions;
the pack itself (``infra/policy_pack/__main__.py``) only registers them.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infra import policies

Report = Callable[..., None]
INTERNET = ("0.0.0.0/0", "::/0")
IMAGE_BUILDING_BUILDSPECS = frozenset({"buildspecs/build_images.yml", "infra/buildspecs/apply.yml"})
"""The only builds that run Docker (image builds need a privileged CodeBuild project)."""
CONTROL_PLANE_LOGS = {"api", "audit", "authenticator", "controllerManager", "scheduler"}
_DIGEST = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
_DOCS = tuple(ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24",
                                                 "203.0.113.0/24", "2001:db8::/32"))


def _prod(props: dict[str, Any]) -> bool:
    return (props.get("tags") or {}).get("environment") == "prod"


def eks_cluster(args: Any, report: Report) -> None:
    """EKS: every control-plane log type, secrets encrypted, endpoint never open to the
    internet nor to documentation ranges, and private in prod."""
    if args.resource_type != "aws:eks/cluster:Cluster":
        return
    props = args.props
    missing = CONTROL_PLANE_LOGS - set(props.get("enabledClusterLogTypes") or [])
    if missing:
        report(f"control-plane log types missing: {sorted(missing)}")
    if not (props.get("encryptionConfig") or {}).get("provider", {}).get("keyArn"):
        report("Kubernetes secrets are not encrypted with a KMS key")
    vpc = props.get("vpcConfig") or {}
    if vpc.get("endpointPublicAccess"):
        cidrs = vpc.get("publicAccessCidrs") or []
        if _prod(props):
            report("prod's API endpoint must be private")
        if not cidrs or any(c in INTERNET for c in cidrs):
            report("public API endpoint open to the internet")
        for cidr in cidrs:
            net = ipaddress.ip_network(cidr, strict=False)
            if any(net.version == d.version and net.subnet_of(d) for d in _DOCS):  # type: ignore[arg-type]
                report(f"public access CIDR {cidr} is a documentation range: it admits nobody")


def ecr_repository(args: Any, report: Report) -> None:
    """ECR: immutable tags, scan on push, KMS."""
    if args.resource_type != "aws:ecr/repository:Repository":
        return
    props = args.props
    if props.get("imageTagMutability") != "IMMUTABLE":
        report("tags must be immutable")
    if not (props.get("imageScanningConfiguration") or {}).get("scanOnPush"):
        report("scan on push is off")
    if not any(e.get("encryptionType") == "KMS" for e in props.get("encryptionConfigurations") or []):
        report("not encrypted with KMS")


def ecr_lifecycle(args: Any, report: Report) -> None:
    """ECR lifecycle: only untagged images may expire (a tagged one may be serving)."""
    if args.resource_type != "aws:ecr/lifecyclePolicy:LifecyclePolicy":
        return
    for rule in json.loads(args.props.get("policy") or "{}").get("rules", []):
        if rule.get("selection", {}).get("tagStatus") != "untagged":
            report(f"lifecycle rule {rule.get('rulePriority')} can expire tagged images")


def rds_instance(args: Any, report: Report) -> None:
    """RDS: encrypted, private, backups kept, IAM auth; deletion protection and
    multi-AZ in prod."""
    if args.resource_type != "aws:rds/instance:Instance":
        return
    props = args.props
    for key, message in (("storageEncrypted", "storage is not encrypted"),
                         ("iamDatabaseAuthenticationEnabled", "IAM authentication is off")):
        if not props.get(key):
            report(message)
    if props.get("publiclyAccessible"):
        report("the database is publicly accessible")
    if int(props.get("backupRetentionPeriod") or 0) < 1:
        report("no automated backups")
    if _prod(props) and not props.get("deletionProtection"):
        report("prod's database has no deletion protection")
    if _prod(props) and not props.get("multiAz"):
        report("prod's database is single-AZ")


def kms_key(args: Any, report: Report) -> None:
    """KMS: rotation on."""
    if args.resource_type == "aws:kms/key:Key" and not args.props.get("enableKeyRotation"):
        report("key rotation is off")


def log_group(args: Any, report: Report) -> None:
    """CloudWatch Logs: retention and KMS."""
    if args.resource_type != "aws:cloudwatch/logGroup:LogGroup":
        return
    if not args.props.get("retentionInDays"):
        report("log group keeps logs forever (no retention)")
    if not args.props.get("kmsKeyId"):
        report("log group is not encrypted with KMS")


def sns_topic(args: Any, report: Report) -> None:
    """SNS: encrypted topics."""
    if args.resource_type == "aws:sns/topic:Topic" and not args.props.get("kmsMasterKeyId"):
        report("topic is not encrypted with KMS")


def security_group(args: Any, report: Report) -> None:
    """VPC: no ingress from the internet."""
    if args.resource_type == "aws:ec2/securityGroup:SecurityGroup":
        rules = args.props.get("ingress") or []
    elif args.resource_type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        rules = [{"cidrBlocks": [args.props.get("cidrIpv4") or ""],
                  "ipv6CidrBlocks": [args.props.get("cidrIpv6") or ""]}]
    else:
        return
    for rule in rules:
        if any(c in INTERNET for c in (rule.get("cidrBlocks") or []) + (rule.get("ipv6CidrBlocks") or [])):
            report("ingress from the internet")


def iam_role_policy(args: Any, report: Report) -> None:
    """IAM: no wildcard actions, no unscoped writes (``policies.policy_violations``)."""
    if args.resource_type != "aws:iam/rolePolicy:RolePolicy":
        return
    document = args.props.get("policy")
    for problem in policies.policy_violations(json.loads(document) if isinstance(document, str) else document or {}):
        report(problem)


def codebuild_project(args: Any, report: Report) -> None:
    """CodeBuild: customer key, logs on; privileged only where images are built."""
    if args.resource_type != "aws:codebuild/project:Project":
        return
    props = args.props
    if not props.get("encryptionKey"):
        report("artifacts are not encrypted with a customer KMS key")
    if (props.get("logsConfig") or {}).get("cloudwatchLogs", {}).get("status") != "ENABLED":
        report("build logs are off")
    if (props.get("environment") or {}).get("privilegedMode") and \
            str((props.get("source") or {}).get("buildspec")) not in IMAGE_BUILDING_BUILDSPECS:
        report("privileged mode outside the image-building projects")


def _pod_specs(kind: str, props: dict[str, Any]) -> list[dict[str, Any]]:
    spec = props.get("spec") or {}
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = (spec.get("template") or {}).get("spec")
    return [template] if template else []


def kubernetes_workload(args: Any, report: Report) -> None:
    """Kubernetes workloads: not in default, images by digest, requests and limits,
    non-root, read-only root, no escalation, all capabilities dropped; long-running
    containers have liveness and readiness probes."""
    token = args.resource_type
    kind = token.rsplit(":", 1)[-1]
    if kind not in ("Deployment", "CronJob", "Job", "StatefulSet", "DaemonSet") or not token.startswith("kubernetes:"):
        return
    if (args.props.get("metadata") or {}).get("namespace") in (None, "", "default"):
        report("workload in the default namespace")
    for pod in _pod_specs(kind, args.props):
        for container in pod.get("containers") or []:
            name = container.get("name")
            if not _DIGEST.match(str(container.get("image", ""))):
                report(f"container {name}: image not pinned by digest")
            res = container.get("resources") or {}
            if not (res.get("requests") or {}).get("cpu") or not (res.get("limits") or {}).get("memory"):
                report(f"container {name}: CPU request or memory limit missing")
            sc = container.get("securityContext") or {}
            if not sc.get("runAsNonRoot") or not sc.get("readOnlyRootFilesystem") or \
                    sc.get("allowPrivilegeEscalation", True) or "ALL" not in (sc.get("capabilities") or {}).get("drop", []):
                report(f"container {name}: not hardened (non-root, read-only root, no escalation, drop ALL)")
            if kind != "CronJob" and kind != "Job" and not (container.get("livenessProbe") and container.get("readinessProbe")):
                report(f"container {name}: liveness or readiness probe missing")


def kubernetes_service(args: Any, report: Report) -> None:
    """Kubernetes Services: no internet-facing load balancer."""
    if args.resource_type != "kubernetes:core/v1:Service":
        return
    spec = args.props.get("spec") or {}
    if spec.get("type") != "LoadBalancer":
        return
    annotations = (args.props.get("metadata") or {}).get("annotations") or {}
    if annotations.get("service.beta.kubernetes.io/aws-load-balancer-scheme") != "internal":
        report("load balancer is not internal")
    if any(c in INTERNET for c in spec.get("loadBalancerSourceRanges") or []) or \
            not spec.get("loadBalancerSourceRanges"):
        report("load balancer admits the internet")


@dataclass(frozen=True)
class Rule:
    """One policy of the pack: its name, what it says, and its validator."""

    name: str
    description: str
    validate: Callable[[Any, Report], None]


RULES: tuple[Rule, ...] = tuple(Rule(f.__name__.replace("_", "-"), (f.__doc__ or "").split("\n")[0], f)
                                for f in (eks_cluster, ecr_repository, ecr_lifecycle, rds_instance,
                                          kms_key, log_group, sns_topic, security_group,
                                          iam_role_policy, codebuild_project, kubernetes_workload,
                                          kubernetes_service))
"""Every validator the policy pack registers, in the order it reports them."""
