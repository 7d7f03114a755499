"""Kubernetes building blocks as plain data: kubeconfig, hardened pod and container
security settings, probes and resources.

Pure functions returning dicts, so the hardening every workload needs (non-root,
read-only root filesystem, no privilege escalation, all capabilities dropped, seccomp
RuntimeDefault: checkov CKV_K8S_20/22/23/28/31/37/40) is written once and tested
without Pulumi.
"""

from __future__ import annotations

import json
from typing import Any

NON_ROOT_UID = 10001
DEPLOYER_GROUP = "mlops-deployers"
"""Kubernetes group of the delivery stages' access entries; a namespaced Role bound to it
grants what they patch and read (EKS access policies cannot be extended, and
AmazonEKSEditPolicy has no argoproj.io rules)."""
GPU_TAINT_KEY = "nvidia.com/gpu"
POOL_LABEL = "mlops.platform/pool"


def kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that authenticates with ``aws eks get-token`` (no static token).

    The exec plugin means whoever runs ``pulumi up`` uses their own AWS identity, and
    nothing long-lived is stored in state.
    """
    return json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {
            "server": endpoint, "certificate-authority-data": ca_data}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
        "current-context": cluster_name,
        "users": [{"name": cluster_name, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region],
            "interactiveMode": "Never"}}}],
    })


def pod_security_context() -> dict[str, Any]:
    """Pod-level hardening: non-root high UID/GID and the runtime's default seccomp."""
    return {"runAsNonRoot": True, "runAsUser": NON_ROOT_UID, "runAsGroup": NON_ROOT_UID,
            "fsGroup": NON_ROOT_UID, "seccompProfile": {"type": "RuntimeDefault"}}


def container_security_context() -> dict[str, Any]:
    """Container-level hardening: read-only root, no escalation, no capabilities."""
    return {"runAsNonRoot": True, "runAsUser": NON_ROOT_UID, "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True, "privileged": False,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def http_probe(path: str, port: int, *, initial_delay: int, period: int = 10,
               failure_threshold: int = 3) -> dict[str, Any]:
    """An HTTP GET probe on ``path``."""
    return {"httpGet": {"path": path, "port": port}, "initialDelaySeconds": initial_delay,
            "periodSeconds": period, "timeoutSeconds": 5, "failureThreshold": failure_threshold}


def resources(cpu: str, memory: str, gpus: int = 0) -> dict[str, Any]:
    """Requests equal to limits (Guaranteed QoS), plus ``nvidia.com/gpu`` when asked.

    GPUs can only be requested as limits; the device plugin sets the request from it.
    """
    limits: dict[str, Any] = {"cpu": cpu, "memory": memory}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": limits}


def pool_placement(pool: str) -> dict[str, Any]:
    """nodeSelector (and, for the GPU pool, the toleration of its taint) for a pod spec."""
    placement: dict[str, Any] = {"nodeSelector": {POOL_LABEL: pool}}
    if pool == "gpu":
        placement["tolerations"] = [{"key": GPU_TAINT_KEY, "operator": "Exists",
                                     "effect": "NoSchedule"}]
    return placement


INTERNAL_NLB_ANNOTATIONS: dict[str, str] = {
    "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
    "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
}
"""An AWS network load balancer inside the VPC: never an internet-facing one."""


def internal_nlb_spec(selector: dict[str, str], vpc_cidr: Any, target_port: int) -> dict[str, Any]:
    """Service spec of an internal NLB on port 80, open to the VPC's CIDR only.

    Build and SageMaker jobs run inside the VPC and reach MLflow and the model server
    this way; ``loadBalancerSourceRanges`` keeps even a misconfigured scheme private.
    """
    return {
        "type": "LoadBalancer",
        "selector": selector,
        "loadBalancerSourceRanges": [vpc_cidr],
        "ports": [{"name": "http", "port": 80, "targetPort": target_port}],
    }


SKIP_AWAIT: dict[str, str] = {"pulumi.com/skipAwait": "true"}
"""For a Service whose pods may legitimately be unready at `pulumi up` (the model server
before a champion exists): Pulumi's default Service await waits for ready endpoints and
would hang the update, then fail it, on a platform that is working as designed."""

WAIT_FOR_LB_HOSTNAME: dict[str, str] = {
    "pulumi.com/waitFor": "jsonpath={.status.loadBalancer.ingress[0].hostname}"}
"""For a LoadBalancer Service whose address other resources read: wait for the NLB's
name only, not for ready pods (pulumi-kubernetes 4.18+ honours this over its default
await), so the address is known without tying the update to the pods' readiness."""


def deployer_rules() -> list[dict[str, Any]]:
    """RBAC rules of the delivery stages in the serving namespace, and nothing more.

    Deploy patches the template owner (the Deployment the Rollout references) and the
    Rollout's status subresource (abort, promote), watches the Rollout and its analysis
    runs, and reads the server's ``/version`` through the API server's service proxy.
    """
    return [
        {"apiGroups": ["argoproj.io"], "resources": ["rollouts"],
         "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": ["argoproj.io"], "resources": ["rollouts/status"], "verbs": ["get", "patch"]},
        {"apiGroups": ["argoproj.io"], "resources": ["analysisruns", "experiments"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods", "services", "events"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["services/proxy"], "verbs": ["get"]},
    ]
