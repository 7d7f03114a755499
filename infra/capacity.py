"""Capacity: do the stack's pods fit on its node pools as configured?

A mock accepts any replica count, and a cluster whose pools are too small still
converges: the pods it cannot place stay Pending (the canary's surge pod first, so a
release waits forever). This module places every pod the platform runs, at its peak
(HPA maximum plus the rollout's surge pod, every Deployment's rolling-update surge, the
monitor Job), onto each pool at its maximum size, after what each node loses to
system reservation and DaemonSets, and names every pod that does not fit.

Node allocatable follows EKS's AL2023 bootstrap: CPU reserved on a sliding scale per
core, memory reserved as 255 MiB + 11 MiB per schedulable pod, plus the kubelet's
100 MiB hard-eviction threshold; pods per node are the VPC CNI's ENI x (IPs-1) + 2.
Requests of what the add-ons and charts run (DaemonSets, CoreDNS, the EBS controller)
are those their default manifests declare; ours are read from the captured plan.
Pure functions over plain data; ``demands_from_capture`` reads a ``Capture``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.checks import Finding
from infra.kube import POOL_LABEL

SKIP_FILE = Path(__file__).resolve().parent / "capacity-skips.yaml"


@dataclass(frozen=True)
class InstanceType:
    """What EC2 sells: vCPUs, memory, GPUs, and the pods the VPC CNI can address."""

    vcpus: int
    memory_mib: int
    gpus: int
    enis: int
    ips_per_eni: int

    @property
    def max_pods(self) -> int:
        return self.enis * (self.ips_per_eni - 1) + 2


INSTANCE_TYPES: dict[str, InstanceType] = {
    "m6i.large": InstanceType(2, 8192, 0, 3, 10),
    "m6i.xlarge": InstanceType(4, 16384, 0, 4, 15),
    "m6i.2xlarge": InstanceType(8, 32768, 0, 4, 15),
    "m6i.4xlarge": InstanceType(16, 65536, 0, 8, 30),
    "g4dn.xlarge": InstanceType(4, 16384, 1, 3, 10),
    "g4dn.2xlarge": InstanceType(8, 32768, 1, 3, 10),
    "g5.xlarge": InstanceType(4, 16384, 1, 4, 15),
    "g5.2xlarge": InstanceType(8, 32768, 1, 4, 15),
    "g5.4xlarge": InstanceType(16, 65536, 1, 8, 30),
    "g6.xlarge": InstanceType(4, 16384, 1, 4, 15),
    "g6.2xlarge": InstanceType(8, 32768, 1, 4, 15),
    "g6.4xlarge": InstanceType(16, 65536, 1, 8, 30),
}
"""EC2's published figures for the types the stacks use; a type not listed is refused
by name (add it here with its figures) rather than guessed."""


@dataclass(frozen=True)
class Pod:
    """One pod's scheduling demand."""

    name: str
    pool: str
    cpu_m: int
    memory_mib: int
    gpus: int = 0


@dataclass(frozen=True)
class NodePool:
    """One managed node group at its maximum size."""

    name: str
    instance_types: tuple[str, ...]
    max_nodes: int


@dataclass
class Node:
    """A node being filled: what is still free on it."""

    pool: str
    cpu_m: int
    memory_mib: int
    gpus: int
    pods: int
    placed: list[str] = field(default_factory=list)


DAEMONSETS: dict[str, tuple[int, int, str]] = {
    # name: (cpu m, memory MiB, pools it runs on: "all" or "gpu")
    "aws-node (vpc-cni)": (25, 0, "all"),
    "kube-proxy": (100, 0, "all"),
    "ebs-csi-node": (30, 120, "all"),
    "cloudwatch-agent": (250, 128, "all"),
    "fluent-bit": (50, 25, "all"),
    "dcgm-exporter": (250, 128, "gpu"),
}
"""Per-node requests of the DaemonSets the add-ons install (their default manifests)."""

ADDON_PODS: tuple[Pod, ...] = (
    Pod("coredns", "system", 100, 70), Pod("coredns", "system", 100, 70),
    Pod("ebs-csi-controller", "system", 60, 240), Pod("ebs-csi-controller", "system", 60, 240),
    Pod("amazon-cloudwatch-observability-controller", "system", 100, 128),
    Pod("metrics-server", "system", 100, 200), Pod("metrics-server", "system", 100, 200),
)
"""Add-on pods outside the captured plan, with their default requests; they tolerate no
taint, so they land on the system pool."""


def allocatable(itype: InstanceType) -> tuple[int, int]:
    """(CPU millicores, memory MiB) the kubelet offers pods on an EKS AL2023 node."""
    reserved_cpu = 0.0
    for core in range(1, itype.vcpus + 1):
        reserved_cpu += 60 if core == 1 else 10 if core == 2 else 5 if core <= 4 else 2.5
    reserved_mem = 255 + 11 * itype.max_pods + 100
    return itype.vcpus * 1000 - math.ceil(reserved_cpu), itype.memory_mib - reserved_mem


def smallest(types: tuple[str, ...]) -> InstanceType:
    """The smallest type of a pool: the autoscaler may bring up any of them."""
    unknown = [t for t in types if t not in INSTANCE_TYPES]
    if unknown:
        raise KeyError(f"instance types {unknown} are not in infra/capacity.py INSTANCE_TYPES")
    return min((INSTANCE_TYPES[t] for t in types), key=lambda t: (t.vcpus, t.memory_mib))


def empty_node(pool: NodePool) -> Node:
    """A node of the pool after system reservation and its DaemonSets."""
    itype = smallest(pool.instance_types)
    cpu, mem = allocatable(itype)
    pods = itype.max_pods
    for ds_cpu, ds_mem, where in DAEMONSETS.values():
        if where == "all" or where == pool.name:
            cpu, mem, pods = cpu - ds_cpu, mem - ds_mem, pods - 1
    return Node(pool.name, cpu, mem, itype.gpus, pods)


def place(pods: list[Pod], pools: list[NodePool]) -> tuple[list[Node], list[str]]:
    """First-fit-decreasing placement of ``pods`` on the pools at their maximum size.

    Returns the nodes used and one line per pod that did not fit (empty: it all fits).
    """
    by_name = {p.name: p for p in pools}
    nodes: list[Node] = []
    problems: list[str] = []
    for pod in sorted(pods, key=lambda p: (p.gpus, p.cpu_m, p.memory_mib), reverse=True):
        pool = by_name.get(pod.pool)
        if pool is None:
            problems.append(f"{pod.name}: selects pool {pod.pool!r}, which does not exist")
            continue
        fits = [n for n in nodes if n.pool == pod.pool and n.cpu_m >= pod.cpu_m
                and n.memory_mib >= pod.memory_mib and n.gpus >= pod.gpus and n.pods >= 1]
        if fits:
            node = fits[0]
        elif sum(1 for n in nodes if n.pool == pod.pool) < pool.max_nodes:
            node = empty_node(pool)
            if node.cpu_m < pod.cpu_m or node.memory_mib < pod.memory_mib or node.gpus < pod.gpus:
                problems.append(f"{pod.name}: requests {pod.cpu_m}m CPU, {pod.memory_mib} MiB, "
                                f"{pod.gpus} GPU; an empty {pool.name} node offers {node.cpu_m}m, "
                                f"{node.memory_mib} MiB, {node.gpus} GPU")
                continue
            nodes.append(node)
        else:
            problems.append(f"{pod.name}: no room on the {pool.name} pool at its maximum of "
                            f"{pool.max_nodes} nodes")
            continue
        node.cpu_m -= pod.cpu_m
        node.memory_mib -= pod.memory_mib
        node.gpus -= pod.gpus
        node.pods -= 1
        node.placed.append(pod.name)
    return nodes, problems


_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
_MEM = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti)?$")


def cpu_millicores(quantity: str) -> int:
    """Kubernetes CPU quantity to millicores ("2" -> 2000, "250m" -> 250)."""
    match = _CPU.match(str(quantity))
    if not match:
        raise ValueError(f"{quantity!r} is not a CPU quantity")
    value = float(match.group(1))
    return math.ceil(value if match.group(2) else value * 1000)


def memory_mib(quantity: str) -> int:
    """Kubernetes memory quantity to MiB ("4Gi" -> 4096)."""
    match = _MEM.match(str(quantity))
    if not match:
        raise ValueError(f"{quantity!r} is not a memory quantity")
    scale = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024, None: 1 / 1024 / 1024}
    return math.ceil(float(match.group(1)) * scale[match.group(2)])


def _pod_demand(name: str, spec: dict[str, Any]) -> Pod:
    cpu = mem = gpus = 0
    for container in spec.get("containers") or []:
        res = container.get("resources") or {}
        requests, limits = res.get("requests") or {}, res.get("limits") or {}
        cpu += cpu_millicores(requests.get("cpu", "0"))
        mem += memory_mib(requests.get("memory", "0"))
        gpus += int(limits.get("nvidia.com/gpu", 0))
    pool = (spec.get("nodeSelector") or {}).get(POOL_LABEL, "")
    return Pod(name, pool, cpu, mem, gpus)


def _helm_pods(values: dict[str, Any], release: str) -> list[Pod]:
    """Our Helm releases' pods, from the values the program sets (replicas, requests)."""
    def part(name: str, node: dict[str, Any], replicas: int) -> list[Pod]:
        requests = (node.get("resources") or {}).get("requests") or {}
        pool = (node.get("nodeSelector") or {}).get(POOL_LABEL, "system")
        return [Pod(name, pool, cpu_millicores(requests.get("cpu", "0")),
                    memory_mib(requests.get("memory", "0")))] * replicas

    if release == "argo-rollouts":
        controller = values.get("controller") or {}
        return part("argo-rollouts", controller, int(controller.get("replicas", 1)))
    if release == "prometheus":
        return part("prometheus-server", values.get("server") or {}, 1)
    if release == "cluster-autoscaler":
        return part("cluster-autoscaler", values, int(values.get("replicaCount", 1)))
    return []


def demands_from_capture(capture: Any) -> list[Pod]:
    """Every pod the captured stack runs at its peak, plus the add-ons' pods.

    A Rollout's pods come from its ``workloadRef`` Deployment's template, counted at the
    HPA's maximum plus the canary's ``maxSurge``; other Deployments at their replicas
    plus their rolling-update surge; a CronJob as one Job pod (``Forbid``).
    """
    pods: list[Pod] = list(ADDON_PODS)
    deployments = {r.inputs["metadata"]["name"]: r.inputs
                   for r in capture.of_type("kubernetes:apps/v1:Deployment")}
    hpa_max = {r.inputs["spec"]["scaleTargetRef"]["name"]: int(r.inputs["spec"]["maxReplicas"])
               for r in capture.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")}
    rollout_owned: set[str] = set()
    for rollout in capture.of_type("kubernetes:argoproj.io/v1alpha1:Rollout"):
        spec = rollout.inputs["spec"]
        name = rollout.inputs["metadata"]["name"]
        target = deployments[spec["workloadRef"]["name"]]
        rollout_owned.add(spec["workloadRef"]["name"])
        replicas = hpa_max.get(name, int(spec.get("replicas", 1)))
        surge = int(spec["strategy"]["canary"].get("maxSurge", 1))
        pod = _pod_demand(name, target["spec"]["template"]["spec"])
        pods += [pod] * replicas + [Pod(f"{name} (canary surge)", pod.pool, pod.cpu_m,
                                        pod.memory_mib, pod.gpus)] * surge
    for name, manifest in deployments.items():
        if name in rollout_owned:
            continue
        spec = manifest["spec"]
        surge = int(((spec.get("strategy") or {}).get("rollingUpdate") or {}).get("maxSurge", 1))
        pod = _pod_demand(name, spec["template"]["spec"])
        pods += [pod] * int(spec.get("replicas", 1))
        pods += [Pod(f"{name} (rolling surge)", pod.pool, pod.cpu_m, pod.memory_mib, pod.gpus)] * surge
    for job in capture.of_type("kubernetes:batch/v1:CronJob"):
        spec = job.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        pods.append(_pod_demand(job.inputs["metadata"]["name"], spec))
    for release in capture.of_type("kubernetes:helm.sh/v3:Release"):
        pods += _helm_pods(release.inputs.get("values") or {}, release.inputs.get("name", ""))
    return pods


def pools_from_capture(capture: Any) -> list[NodePool]:
    """The managed node groups, by their pool label, at their maximum size."""
    pools = []
    for group in capture.of_type("aws:eks/nodeGroup:NodeGroup"):
        pools.append(NodePool(group.inputs["labels"][POOL_LABEL],
                              tuple(group.inputs["instanceTypes"]),
                              int(group.inputs["scalingConfig"]["maxSize"])))
    return pools


def check_capture(capture: Any) -> list[str]:
    """Every pod of the stack that would stay Pending (empty when everything fits)."""
    _, problems = place(demands_from_capture(capture), pools_from_capture(capture))
    return problems


def capacity_findings(capture: Any) -> list[Finding]:
    """Pods that would stay Pending, as skip-file findings (check id ``pending``)."""
    return [Finding("pending", problem.split(":", 1)[0], problem) for problem in check_capture(capture)]
