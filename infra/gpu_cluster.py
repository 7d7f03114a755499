"""GpuCluster: EKS with a CPU system pool and a GPU pool that scales to zero.

The control plane encrypts secrets with a customer key, sends all five log types to a
KMS-encrypted log group, and exposes its endpoint privately (publicly only from listed
CIDRs, dev only). OIDC backs IAM roles for service accounts (IRSA). The GPU pool runs
EKS's NVIDIA AL2023 AMI, is tainted ``nvidia.com/gpu=true:NoSchedule`` so only pods
that ask for a GPU land there, and starts at zero nodes: the cluster autoscaler adds a
node when such a pod is pending. The NVIDIA device plugin advertises the GPUs; the
CloudWatch observability add-on publishes Container Insights (including GPU
utilisation, which the idle-GPU alarm reads).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra import policies
from infra.common import kms_key, log_group, prop, role
from infra.config import ClusterSettings
from infra.eks_versions import version as eks_version
from infra.kube import GPU_TAINT_KEY, POOL_LABEL, kubeconfig
from infra.naming import aws_name

CONTROL_PLANE_LOGS: tuple[str, ...] = ("api", "audit", "authenticator", "controllerManager",
                                       "scheduler")
NVIDIA_DEVICE_PLUGIN_CHART = ("https://nvidia.github.io/k8s-device-plugin", "nvidia-device-plugin",
                              "0.17.1")
CLUSTER_AUTOSCALER_CHART = ("https://kubernetes.github.io/autoscaler", "cluster-autoscaler",
                            "9.46.6")
MANAGED = "arn:aws:iam::aws:policy/"
CLOUDWATCH_OBSERVABILITY_VERSION = "v4.10.3-eksbuild.1"
"""Pinned: v5.3.0 dropped the agent ClusterRole's configmap ``get`` and broke its EKS
resource detection (aws-observability/application-signals-demo#334 pins this build)."""
EBS_CSI_POLICY = MANAGED + "service-role/AmazonEBSCSIDriverPolicy"
EBS_CSI_SERVICE_ACCOUNT = "ebs-csi-controller-sa"
STORAGE_CLASS = "gp3"
"""The cluster's default StorageClass: EKS 1.30+ marks none default and ships no EBS
driver, so a claim naming no class (Prometheus's) would stay Pending forever."""
CLOUDWATCH_NAMESPACE = "amazon-cloudwatch"
CLOUDWATCH_AGENT = "cloudwatch-agent"
EMF_PORT = 25888


def emf_log_group_name(prefix: str) -> str:
    """Where the agent writes the serving EMF records (CloudWatch extracts the metrics)."""
    return f"/mlops/{prefix}/serving-metrics"


def emf_endpoint() -> str:
    """The agent's EMF listener as pods reach it (the add-on's ``cloudwatch-agent`` Service)."""
    return f"tcp://{CLOUDWATCH_AGENT}.{CLOUDWATCH_NAMESPACE}:{EMF_PORT}"


def cloudwatch_agent_config() -> dict[str, Any]:
    """The add-on's ``agent.config``: enhanced Container Insights with GPU metrics (the
    idle-GPU alarm reads them) plus the EMF listener on tcp/udp 25888 (the serving
    metrics). Giving a config replaces the add-on's default, which also turns on
    Application Signals; it is left off, so the agent needs no X-Ray rights."""
    return {"agent": {"config": {"logs": {"metrics_collected": {
        "kubernetes": {"enhanced_container_insights": True, "accelerated_compute_metrics": True},
        "emf": {}}}}}}


@dataclass
class GpuClusterArgs:
    """Cluster settings and where it lives."""

    settings: ClusterSettings
    prefix: str
    region: str
    account_id: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    private_subnet_ids: list[pulumi.Input[str]]
    log_retention_days: int
    tags: dict[str, str]


def storage_class_spec() -> dict[str, Any]:
    """The default StorageClass: encrypted gp3 through the EBS CSI driver, bound where the
    pod lands (WaitForFirstConsumer: an EBS volume lives in one zone, the pod's)."""
    return {"metadata": {"name": STORAGE_CLASS, "annotations": {
                "storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "ebs.csi.aws.com", "volume_binding_mode": "WaitForFirstConsumer",
            "reclaim_policy": "Delete", "allow_volume_expansion": True,
            "parameters": {"type": "gp3", "encrypted": "true", "fsType": "ext4"}}


def autoscaler_values(cluster_name: pulumi.Input[str], region: str, cluster_version: str,
                      role_arn: pulumi.Input[str]) -> dict[str, Any]:
    """Helm values of the cluster autoscaler. Its image is pinned to the cluster's minor
    (the autoscaler only supports the Kubernetes minor it was built for; the chart's
    default image follows the chart, not the cluster)."""
    return {"cloudProvider": "aws", "awsRegion": region,
            "image": {"tag": eks_version(cluster_version).autoscaler_tag},
            "autoDiscovery": {"clusterName": cluster_name},
            "rbac": {"serviceAccount": {"name": "cluster-autoscaler", "annotations": {
                "eks.amazonaws.com/role-arn": role_arn}}},
            "nodeSelector": {POOL_LABEL: "system"},
            "resources": {"requests": {"cpu": "100m", "memory": "300Mi"},
                          "limits": {"memory": "600Mi"}},
            "extraArgs": {"balance-similar-node-groups": True,
                          "skip-nodes-with-system-pods": False,
                          "scale-down-unneeded-time": "10m"}}


def autoscaler_policy(cluster_name: str, account_id: str, region: str) -> dict[str, Any]:
    """Cluster autoscaler: read anything it must list; resize only this cluster's groups.

    EKS managed node groups name their Auto Scaling groups ``eks-<nodegroup>-<uuid>``;
    the write actions are scoped to those names and to the cluster's ownership tag.
    """
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": [
            "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
            "autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeScalingActivities",
            "autoscaling:DescribeTags", "ec2:DescribeInstanceTypes",
            "ec2:DescribeLaunchTemplateVersions", "ec2:DescribeImages",
            "ec2:GetInstanceTypesFromInstanceRequirements"],
         "Resource": "*"},
        {"Effect": "Allow", "Action": ["eks:DescribeNodegroup"],
         "Resource": f"arn:aws:eks:{region}:{account_id}:nodegroup/{cluster_name}/*"},
        {"Effect": "Allow", "Action": ["autoscaling:SetDesiredCapacity",
                                       "autoscaling:TerminateInstanceInAutoScalingGroup"],
         "Resource": f"arn:aws:autoscaling:{region}:{account_id}:autoScalingGroup:*:autoScalingGroupName/eks-*",
         "Condition": {"StringEquals": {
             f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"}}},
    ]}


class GpuCluster(pulumi.ComponentResource):
    """EKS control plane, OIDC, node pools, add-ons and a Kubernetes provider."""

    cluster_name: pulumi.Output[str]
    cluster_arn: pulumi.Output[str]
    emf_endpoint: str
    emf_log_group_name: pulumi.Output[str]
    private_subnet_count: int
    cluster_security_group_id: pulumi.Output[str]
    api_client_security_group_id: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(self, name: str, args: GpuClusterArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:gpu_cluster:GpuCluster", name, None, opts)
        s = args.settings
        tags = args.tags
        here = pulumi.ResourceOptions(parent=self)
        cluster_name = aws_name("eks", name)

        key = kms_key(f"{name}-key", description=f"{cluster_name} secrets and control-plane logs",
                      account_id=args.account_id, region=args.region,
                      services=[f"logs.{args.region}.amazonaws.com"], tags=tags, opts=here)
        # EKS writes to this exact group name; creating it first sets retention and KMS
        # (otherwise EKS creates it unencrypted with no expiry).
        logs = log_group(f"{name}-control-plane-logs",
                         log_group_name=f"/aws/eks/{cluster_name}/cluster",
                         retention_days=args.log_retention_days, kms_key_arn=key.arn,
                         tags=tags, opts=here)
        cluster_role = role(f"{name}-cluster-role", trust=policies.service_trust("eks.amazonaws.com"),
                            managed_policy_arns=[MANAGED + "AmazonEKSClusterPolicy"],
                            tags=tags, opts=here)
        vpc_config: dict[str, Any] = {
            "subnet_ids": args.private_subnet_ids,
            "endpoint_private_access": True,
            "endpoint_public_access": s.endpoint_public,
        }
        if s.endpoint_public:
            vpc_config["public_access_cidrs"] = list(s.public_access_cidrs)
        cluster = aws.eks.Cluster(
            name, name=cluster_name, version=s.version, role_arn=cluster_role.arn,
            vpc_config=vpc_config,
            encryption_config={"provider": {"key_arn": key.arn}, "resources": ["secrets"]},
            enabled_cluster_log_types=list(CONTROL_PLANE_LOGS),
            access_config={"authentication_mode": "API",
                           "bootstrap_cluster_creator_admin_permissions": True},
            tags=tags, opts=pulumi.ResourceOptions(parent=self, depends_on=[logs]))

        issuer = cluster.identities.apply(lambda ids: prop(prop(ids[0], "oidcs")[0], "issuer"))
        oidc = aws.iam.OpenIdConnectProvider(f"{name}-oidc", url=issuer,
                                             client_id_lists=["sts.amazonaws.com"], tags=tags,
                                             opts=here)

        node_role = role(f"{name}-node-role", trust=policies.service_trust("ec2.amazonaws.com"),
                         managed_policy_arns=[MANAGED + "AmazonEKSWorkerNodePolicy",
                                              MANAGED + "AmazonEC2ContainerRegistryPullOnly",
                                              MANAGED + "AmazonEKS_CNI_Policy"],
                         tags=tags, opts=here)
        ng_tags = {**tags, f"k8s.io/cluster-autoscaler/{cluster_name}": "owned",
                   "k8s.io/cluster-autoscaler/enabled": "true"}
        system = aws.eks.NodeGroup(
            f"{name}-system", cluster_name=cluster.name, node_role_arn=node_role.arn,
            subnet_ids=args.private_subnet_ids, ami_type="AL2023_x86_64_STANDARD",
            instance_types=[s.system_instance_type], capacity_type="ON_DEMAND",
            scaling_config={"min_size": s.system_min, "max_size": s.system_max,
                            "desired_size": s.system_min},
            update_config={"max_unavailable": 1}, labels={POOL_LABEL: "system"},
            tags=ng_tags, opts=pulumi.ResourceOptions(parent=self, ignore_changes=["scalingConfig.desiredSize"]))
        gpu = aws.eks.NodeGroup(
            f"{name}-gpu", cluster_name=cluster.name, node_role_arn=node_role.arn,
            subnet_ids=args.private_subnet_ids, ami_type="AL2023_x86_64_NVIDIA",
            instance_types=list(s.gpu_instance_types), capacity_type=s.gpu_capacity_type,
            disk_size=100,
            scaling_config={"min_size": s.gpu_min, "max_size": s.gpu_max, "desired_size": s.gpu_min},
            update_config={"max_unavailable": 1},
            labels={POOL_LABEL: "gpu", "nvidia.com/gpu.present": "true"},
            taints=[{"key": GPU_TAINT_KEY, "value": "true", "effect": "NO_SCHEDULE"}],
            tags={**ng_tags,
                  # Scale-from-zero: the autoscaler reads the pool's label and taint from
                  # these tags when the pool has no node to look at.
                  f"k8s.io/cluster-autoscaler/node-template/label/{POOL_LABEL}": "gpu",
                  f"k8s.io/cluster-autoscaler/node-template/taint/{GPU_TAINT_KEY}": "true:NoSchedule"},
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["scalingConfig.desiredSize"]))

        # The VPC CNI enforces NetworkPolicy only when told to; without this the serving
        # NetworkPolicy would be accepted and ignored.
        # EKS bootstraps its own vpc-cni, kube-proxy and coredns before these exist, so
        # creating the managed add-ons over them conflicts unless told to take over
        # (resolve_conflicts_on_create); every add-on here is created and updated so.
        conflicts = {"resolve_conflicts_on_create": "OVERWRITE",
                     "resolve_conflicts_on_update": "OVERWRITE"}
        aws.eks.Addon(f"{name}-vpc-cni", cluster_name=cluster.name, addon_name="vpc-cni",
                      configuration_values=json.dumps({"enableNetworkPolicy": "true"}),
                      tags=tags, opts=here, **conflicts)
        # metrics-server (an EKS community add-on): the serving HPA scales on CPU from the
        # resource metrics API, which EKS does not serve without it.
        for addon in ("kube-proxy", "coredns", "metrics-server"):
            aws.eks.Addon(f"{name}-{addon}", cluster_name=cluster.name, addon_name=addon,
                          tags=tags, opts=pulumi.ResourceOptions(parent=self, depends_on=[system]),
                          **conflicts)

        def irsa(suffix: str, namespace: str, account: str, **kw: Any) -> aws.iam.Role:
            trust = pulumi.Output.all(oidc.arn, issuer).apply(
                lambda v: policies.irsa_trust(v[0], v[1], namespace, account))
            return role(f"{name}-{suffix}-role", trust=trust, tags=tags, opts=here, **kw)

        # The agent writes the serving EMF records here; created first for retention + KMS.
        emf_group = log_group(f"{name}-serving-metrics-logs",
                              log_group_name=emf_log_group_name(args.prefix),
                              retention_days=args.log_retention_days, kms_key_arn=key.arn,
                              tags=tags, opts=here)
        cw_role = irsa("cloudwatch-agent", CLOUDWATCH_NAMESPACE, CLOUDWATCH_AGENT,
                       policy_inputs=[cluster.name, args.account_id, emf_group.name],
                       policy=lambda cname, acct, group: policies.cloudwatch_agent_policy(
                           cluster_name=cname, account_id=acct, region=args.region,
                           emf_log_group_name=group))
        aws.eks.Addon(f"{name}-cloudwatch-observability", cluster_name=cluster.name,
                      addon_name="amazon-cloudwatch-observability",
                      addon_version=CLOUDWATCH_OBSERVABILITY_VERSION,
                      configuration_values=json.dumps(cloudwatch_agent_config()),
                      service_account_role_arn=cw_role.arn, tags=tags,
                      opts=pulumi.ResourceOptions(parent=self, depends_on=[system]), **conflicts)
        # Persistent volumes (Prometheus's) need the EBS CSI driver: EKS installs none.
        ebs_role = irsa("ebs-csi", "kube-system", EBS_CSI_SERVICE_ACCOUNT,
                        managed_policy_arns=[EBS_CSI_POLICY])
        ebs_csi = aws.eks.Addon(f"{name}-ebs-csi", cluster_name=cluster.name,
                                addon_name="aws-ebs-csi-driver",
                                service_account_role_arn=ebs_role.arn, tags=tags,
                                opts=pulumi.ResourceOptions(parent=self, depends_on=[system]),
                                **conflicts)
        self.emf_endpoint = emf_endpoint()
        self.emf_log_group_name = emf_group.name
        self.private_subnet_count = len(args.private_subnet_ids)
        """The control plane's ENIs sit in these subnets (vpc_config.subnet_ids)."""

        self.kubeconfig = pulumi.Output.all(cluster.name, cluster.endpoint,
                                            cluster.certificate_authority).apply(
            lambda v: kubeconfig(v[0], v[1], prop(v[2], "data"), args.region))
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=self.kubeconfig,
                                     enable_server_side_apply=True,
                                     opts=pulumi.ResourceOptions(parent=self, depends_on=[system]))
        on_cluster = pulumi.ResourceOptions(parent=self, provider=self.provider)

        self.storage_class = k8s.storage.v1.StorageClass(
            f"{name}-{STORAGE_CLASS}", **storage_class_spec(),
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=[ebs_csi]))
        self.storage_class_name = STORAGE_CLASS

        repo, chart, version = NVIDIA_DEVICE_PLUGIN_CHART
        k8s.helm.v3.Release(
            f"{name}-nvidia-device-plugin", name="nvidia-device-plugin", chart=chart,
            version=version, repository_opts={"repo": repo}, namespace="kube-system",
            values={"nodeSelector": {POOL_LABEL: "gpu"},
                    "tolerations": [{"key": GPU_TAINT_KEY, "operator": "Exists",
                                     "effect": "NoSchedule"}]},
            opts=on_cluster)

        ca_role = irsa("cluster-autoscaler", "kube-system", "cluster-autoscaler",
                       policy_inputs=[cluster.name, args.account_id],
                       policy=lambda cname, acct: autoscaler_policy(cname, acct, args.region))
        repo, chart, version = CLUSTER_AUTOSCALER_CHART
        k8s.helm.v3.Release(
            f"{name}-cluster-autoscaler", name="cluster-autoscaler", chart=chart, version=version,
            repository_opts={"repo": repo}, namespace="kube-system",
            values=autoscaler_values(cluster.name, args.region, s.version, ca_role.arn),
            opts=on_cluster)

        self.cluster_name = cluster.name
        self.cluster_arn = cluster.arn
        self.cluster_security_group_id = cluster.vpc_config.apply(
            lambda c: prop(c, "cluster_security_group_id"))
        # Where `pulumi up` and operators' kubectl run from: a host in a private subnet
        # (CloudShell VPC environment, a CodeBuild project, an SSM-managed instance)
        # wearing this group reaches the private endpoint; the endpoint is never public
        # in prod and, as shipped, not in dev either (docs/infra.md).
        api_clients = aws.ec2.SecurityGroup(
            f"{name}-api-clients-sg", vpc_id=args.vpc_id,
            description="Operators and pulumi up: HTTPS to the private EKS API and AWS endpoints",
            egress=[{"protocol": "tcp", "from_port": 443, "to_port": 443,
                     "cidr_blocks": ["0.0.0.0/0"],
                     "description": "HTTPS: EKS API, AWS APIs, package registries"}],
            tags=tags, opts=here)
        self.api_client_security_group_id = api_clients.id
        self.allow_api_from(f"{name}-api-from-clients", security_group_id=api_clients.id,
                            description="Kubernetes API from the operators' security group",
                            tags=tags)
        self.oidc_provider_arn = oidc.arn
        self.oidc_issuer = issuer
        self.gpu_node_group = gpu
        self.register_outputs({"cluster_name": cluster.name, "cluster_arn": cluster.arn,
                               "oidc_provider_arn": oidc.arn})

    def allow_api_from(self, name: str, *, security_group_id: pulumi.Input[str],
                       description: str,
                       tags: dict[str, str]) -> aws.vpc.SecurityGroupIngressRule:
        """Admit one security group to the private API endpoint (HTTPS on the cluster
        security group, which EKS puts on the endpoint's ENIs; by default it admits only
        itself, so a VPC build job could resolve the endpoint and never connect)."""
        return aws.vpc.SecurityGroupIngressRule(
            name, security_group_id=self.cluster_security_group_id,
            referenced_security_group_id=security_group_id, ip_protocol="tcp",
            from_port=443, to_port=443, description=description, tags=tags,
            opts=pulumi.ResourceOptions(parent=self))

    def service_account_role(self, name: str, *, namespace: str, service_account: str,
                             tags: dict[str, str], policy_inputs: list[pulumi.Input[Any]],
                             policy: Any, parent: pulumi.Resource) -> aws.iam.Role:
        """An IRSA role for ``namespace/service_account`` on this cluster, parented by the caller."""
        trust = pulumi.Output.all(self.oidc_provider_arn, self.oidc_issuer).apply(
            lambda v: policies.irsa_trust(v[0], v[1], namespace, service_account))
        return role(name, trust=trust, policy_inputs=policy_inputs, policy=policy, tags=tags,
                    opts=pulumi.ResourceOptions(parent=parent))
