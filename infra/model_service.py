"""ModelService: the model server on the cluster, released by canary with automated
analysis and rollback (Argo Rollouts).

Argo Rollouts and a Prometheus server come from their Helm charts at pinned versions.
The serving Deployment carries the hardened pod template (non-root, read-only root,
no capabilities, seccomp, probes on ``/ping``, requests = limits, image by digest,
GPU toleration and ``nvidia.com/gpu`` limit on the GPU pool); a ``Rollout`` adopts it
through ``workloadRef`` and owns the replicas, so the Deployment stays at zero and
checkers see a standard pod spec. The canary sends ``canaryWeight`` % first, bakes
with background analysis, and rolls back by itself when the ``AnalysisTemplate``'s
Prometheus queries (the server's own metrics, docs/contracts.md) breach the stack's
thresholds: 5xx share, p99 latency, prediction-drift PSI. HPA, PDB (minAvailable 1) and
a NetworkPolicy complete it; the Services are ClusterIP, plus one internal NLB that
only the VPC reaches (the smoke-test stage). A CronJob runs ``python -m pipeline
monitor`` on the captured requests and publishes the drift and performance metrics
that the Monitoring alarms (and through them the retrain trigger) read. The server
itself publishes the serving metrics (``MLOps/Serving``) as EMF records to the
cluster's CloudWatch agent (endpoint, log group and dimensions passed in its env).
The Deploy stage owns the image and ``MODEL_URI``/``MODEL_VERSION`` (ignored by Pulumi)
and reads ``/version`` through the API server's service proxy (admitted on 8080 from
the control plane's subnets).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra import policies
from infra.common import prop
from infra.config import ServingSettings
from infra.gpu_cluster import CLOUDWATCH_NAMESPACE, EMF_PORT, GpuCluster
from infra.mlflow_server import MLFLOW_PORT
from infra.mlflow_server import NAMESPACE as MLFLOW_NAMESPACE
from infra.kube import (DEPLOYER_GROUP, INTERNAL_NLB_ANNOTATIONS, SKIP_AWAIT,
                        WAIT_FOR_LB_HOSTNAME, container_security_context, deployer_rules, http_probe, internal_nlb_spec,
                        pod_security_context, pool_placement, resources)
from infra.naming import subnet_cidrs
from pipeline import metric_names as mn

ARGO_ROLLOUTS_CHART = ("https://argoproj.github.io/argo-helm", "argo-rollouts", "2.41.0")
PROMETHEUS_CHART = ("https://prometheus-community.github.io/helm-charts", "prometheus", "27.16.0")
PROMETHEUS_URL = "http://prometheus-server.monitoring.svc.cluster.local:80"
SERVING_PORT = 8080
APP = "model-server"
PRE_STOP_SLEEP_SECONDS = 5
"""After a pod is marked terminating, kube-proxy and the NLB keep sending it requests for
a few seconds; the preStop sleep keeps the server accepting them until they stop."""
SERVER_DRAIN_SECONDS = 3
"""The server's own drain after SIGTERM (``--drain``, default 3 s): finish in-flight
requests, then exit."""
TERMINATION_GRACE_SECONDS = 30
"""SageMaker's container contract (SIGKILL 30 s after SIGTERM); it must exceed the preStop
sleep plus the drain, or the kubelet kills the server mid-drain."""
DEPLOY_OWNED_ENV: tuple[str, ...] = ("MODEL_URI", "MODEL_VERSION")
"""Env entries whose values the Deploy stage patches (pipeline/delivery/rollout.py,
``patch_for``); declared first, so their positions are fixed and Pulumi can ignore them."""


MLFLOW_EGRESS: dict[str, Any] = {
    "ports": [{"protocol": "TCP", "port": MLFLOW_PORT}],
    "to": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": MLFLOW_NAMESPACE}}}]}
"""Egress to the MLflow pods through the Service's DNS name: after the Service's address
translation the packet goes to a pod in the mlflow namespace on the container port."""


def deploy_ignore_changes(container_index: int = 0) -> list[str]:
    """Paths of the pod template the Deploy stage owns, which ``pulumi up`` must not
    revert (reverting them would start an unwanted rollout back to an old model): the
    image and the values of ``DEPLOY_OWNED_ENV``, which sit at env[0..n-1]."""
    base = f"spec.template.spec.containers[{container_index}]"
    return [f"{base}.image", *[f"{base}.env[{i}].value" for i in range(len(DEPLOY_OWNED_ENV))]]


def control_plane_ingress(vpc_cidr: str, private_subnet_count: int) -> dict[str, Any]:
    """Ingress for the API server's service proxy (the Deploy stage reads ``/version``
    through ``/api/v1/namespaces/NS/services/model-server:8080/proxy/version``).

    The EKS control plane reaches pods from the cross-account ENIs it places in the
    cluster's subnets (the private subnets here), with the cluster security group; a
    NetworkPolicy cannot name a security group, so the tightest peer it can express is
    those subnets' CIDRs, on the serving port only."""
    private, _ = subnet_cidrs(vpc_cidr, private_subnet_count)
    return {"ports": [{"protocol": "TCP", "port": SERVING_PORT}],
            "from": [{"ipBlock": {"cidr": cidr}} for cidr in private]}


@dataclass
class ModelServiceArgs:
    """Serving settings, the cluster, the image by digest and the model source."""

    settings: ServingSettings
    prefix: str
    stack: str
    model_name: str
    image: pulumi.Input[str]
    mlflow_tracking_uri: pulumi.Input[str]
    mlflow_admin_user: str
    mlflow_admin_password: pulumi.Input[str]
    capture_bucket_arn: pulumi.Input[str]
    capture_bucket_name: pulumi.Input[str]
    capture_kms_key_arn: pulumi.Input[str]
    monitor_image: pulumi.Input[str]
    """The training image by digest: it carries the ``pipeline`` package (``monitor``)."""
    cluster: GpuCluster
    vpc_cidr: str
    tags: dict[str, str]


def mlflow_credentials_file(username: str, password: str) -> str:
    """``~/.mlflow/credentials`` content (MLflow's client reads it when the environment
    holds no credentials). It is read with configparser, which interpolates ``%``."""
    def esc(value: str) -> str:
        return value.replace("%", "%%")

    return (f"[mlflow]\nmlflow_tracking_username = {esc(username)}\n"
            f"mlflow_tracking_password = {esc(password)}\n")


def analysis_metrics(s: ServingSettings) -> list[dict[str, Any]]:
    """The canary's three checks as Argo AnalysisTemplate metrics.

    Each query reads only the canary's pods (``rollouts_pod_template_hash``, which the
    Prometheus pod scrape turns into a label). No traffic gives NaN: that is neither
    success nor failure (inconclusive), so the rollout pauses for a person instead of
    promoting a model nobody has exercised.
    """
    selector = 'namespace="{{args.namespace}}",rollouts_pod_template_hash="{{args.canary-hash}}"'
    window = "2m"

    def metric(name: str, query: str, limit: float) -> dict[str, Any]:
        return {"name": name, "interval": "1m", "failureLimit": 1, "inconclusiveLimit": 3,
                "successCondition": f"!isNaN(result[0]) && result[0] <= {limit}",
                "failureCondition": f"!isNaN(result[0]) && result[0] > {limit}",
                "provider": {"prometheus": {"address": PROMETHEUS_URL, "query": query}}}

    return [
        metric("error-rate",
               f'sum(rate(mlserve_requests_total{{{selector},status=~"5.."}}[{window}])) / '
               f'sum(rate(mlserve_requests_total{{{selector}}}[{window}]))',
               s.max_error_rate),
        metric("latency-p99-ms",
               f"1000 * histogram_quantile(0.99, sum by (le) "
               f"(rate(mlserve_request_latency_seconds_bucket{{{selector}}}[{window}])))",
               float(s.max_latency_p99_ms)),
        metric("prediction-drift-psi",
               f"max(mlserve_prediction_drift_psi{{{selector}}})", s.max_drift_psi),
    ]


def canary_steps(s: ServingSettings) -> list[dict[str, Any]]:
    """First ``canary_weight`` %, bake, then half, bake again, then everything.

    Background analysis (started at step 1) watches the whole time; a failed
    measurement aborts the rollout and Argo scales the stable ReplicaSet back.
    """
    half = max(50, s.canary_weight)
    return [{"setWeight": s.canary_weight}, {"pause": {"duration": f"{s.bake_minutes}m"}},
            {"setWeight": half}, {"pause": {"duration": f"{max(1, s.bake_minutes // 2)}m"}},
            {"setWeight": 100}]


def monitor_policy(capture_bucket_arn: str, key_arn: str) -> dict[str, Any]:
    """The monitor job: read captured requests, publish only its own metric namespace."""
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": f"{capture_bucket_arn}/capture/*"},
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": capture_bucket_arn,
         "Condition": {"StringLike": {"s3:prefix": ["capture/*"]}}},
        {"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": key_arn},
        {"Effect": "Allow", "Action": ["cloudwatch:PutMetricData"], "Resource": "*",
         "Condition": {"StringEquals": {"cloudwatch:namespace": mn.MONITORING_NAMESPACE}}},
    ]}


class ModelService(pulumi.ComponentResource):
    """Argo Rollouts + Prometheus (Helm), the serving workload, its canary and guards."""

    namespace: pulumi.Output[str]
    url: pulumi.Output[str]
    rollout_name: str
    service_name: str

    def __init__(self, name: str, args: ModelServiceArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:model_service:ModelService", name, None, opts)
        s = args.settings
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.cluster.provider)

        repo, chart, version = ARGO_ROLLOUTS_CHART
        argo = k8s.helm.v3.Release(
            f"{name}-argo-rollouts", name="argo-rollouts", chart=chart, version=version,
            repository_opts={"repo": repo}, namespace="argo-rollouts", create_namespace=True,
            # Requests set, not left to the chart's empty default: the capacity check
            # (infra/capacity.py) places them, and the scheduler must reserve them.
            values={"controller": {"replicas": 2, "nodeSelector": {"mlops.platform/pool": "system"},
                                   "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                                                 "limits": {"memory": "512Mi"}}},
                    "dashboard": {"enabled": False}},
            opts=on_cluster)
        repo, chart, version = PROMETHEUS_CHART
        prometheus = k8s.helm.v3.Release(
            f"{name}-prometheus", name="prometheus", chart=chart, version=version,
            repository_opts={"repo": repo}, namespace="monitoring", create_namespace=True,
            values={"alertmanager": {"enabled": False},
                    "prometheus-pushgateway": {"enabled": False},
                    "prometheus-node-exporter": {"enabled": False},
                    "server": {"retention": "7d",
                               "nodeSelector": {"mlops.platform/pool": "system"},
                               "resources": {"requests": {"cpu": "500m", "memory": "2Gi"},
                                             "limits": {"memory": "2Gi"}},
                               "persistentVolume": {
                                   "enabled": True, "size": "20Gi",
                                   "storageClass": args.cluster.storage_class_name}}},
            # The chart waits for its volume: the class (and EBS driver) must exist first.
            opts=pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(
                depends_on=[args.cluster.storage_class])))

        ns = k8s.core.v1.Namespace(f"{name}-ns", metadata={"name": s.namespace, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted"}}, opts=on_cluster)
        ns_name = ns.metadata.name
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.cluster.provider,
                                          depends_on=[ns])
        labels = {"app.kubernetes.io/name": APP, "app.kubernetes.io/instance": args.model_name}

        capture_role = args.cluster.service_account_role(
            f"{name}-capture-role", namespace=s.namespace, service_account=APP, tags=args.tags,
            policy_inputs=[args.capture_bucket_arn, args.capture_kms_key_arn],
            policy=lambda bucket, key: {"Version": "2012-10-17", "Statement":
                                        policies.s3_read_write(bucket, key, prefix="capture/")},
            parent=self)
        k8s.core.v1.ServiceAccount(f"{name}-sa", metadata={
            "name": APP, "namespace": ns_name,
            "annotations": {"eks.amazonaws.com/role-arn": capture_role.arn}},
            automount_service_account_token=False, opts=k8s_opts)
        # MLflow's client also reads ~/.mlflow/credentials: mounting it as a file keeps
        # the password out of the environment (CKV_K8S_35).
        k8s.core.v1.Secret(f"{name}-mlflow-credentials", metadata={
            "name": "mlflow-credentials", "namespace": ns_name},
            string_data={"credentials": pulumi.Output.secret(args.mlflow_admin_password).apply(
                lambda pw: mlflow_credentials_file(args.mlflow_admin_user, pw))},
            opts=k8s_opts)

        gpus = 1 if s.pool == "gpu" else 0
        container = {
            "name": "server", "image": args.image,
            "args": ["--host", "0.0.0.0", "--port", str(SERVING_PORT)],
            "ports": [{"name": "http", "containerPort": SERVING_PORT}],
            "env": [
                # Deploy-owned, first and empty: the server then follows MODEL_NAME +
                # MODEL_ALIAS until the Deploy stage pins a version (deploy_ignore_changes).
                *[{"name": key, "value": ""} for key in DEPLOY_OWNED_ENV],
                {"name": "MODEL_NAME", "value": args.model_name},
                {"name": "MODEL_ALIAS", "value": "champion"},
                {"name": "MLFLOW_TRACKING_URI", "value": args.mlflow_tracking_uri},
                {"name": "CAPTURE_DIR", "value": "/var/capture"},
                {"name": "CAPTURE_S3_URI", "value": pulumi.Output.concat(
                    "s3://", args.capture_bucket_name, "/capture/", args.stack, "/", args.model_name)},
                {"name": "MLFLOW_DISABLE_TELEMETRY", "value": "true"},
                {"name": "HOME", "value": "/tmp"},
                # Serving metrics to CloudWatch (serving/emf.py) under the names and
                # dimensions the Monitoring alarms read.
                {"name": "AWS_EMF_AGENT_ENDPOINT", "value": args.cluster.emf_endpoint},
                {"name": "AWS_EMF_LOG_GROUP_NAME", "value": args.cluster.emf_log_group_name},
                {"name": "METRICS_MODEL_NAME", "value": args.model_name},
                {"name": "MLOPS_STACK", "value": args.stack},
            ],
            "resources": resources(s.cpu, s.memory, gpus),
            # /ping answers 503 until a model is loaded, which at the first `up` (no
            # champion yet) is indefinitely: it gates traffic only. Liveness asks
            # /livez (200 while the process runs), so a pod waiting for its first
            # model is not restarted into a crash loop.
            "readinessProbe": http_probe("/ping", SERVING_PORT, initial_delay=10, period=5),
            "livenessProbe": http_probe("/livez", SERVING_PORT, initial_delay=30, period=15),
            "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SLEEP_SECONDS}}},
            "securityContext": container_security_context(),
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"},
                             {"name": "mlflow-credentials", "mountPath": "/tmp/.mlflow",
                              "readOnly": True},
                             {"name": "capture", "mountPath": "/var/capture"}],
        }
        pod_spec = {
            "serviceAccountName": APP,
            # IRSA's webhook mounts its own projected token; the API token is not needed.
            "automountServiceAccountToken": False,
            # SageMaker's container contract: SIGTERM, then SIGKILL 30 s later; longer
            # than the preStop sleep plus the server's drain.
            "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
            "securityContext": pod_security_context(),
            # The CPU pool is the system pool.
            **pool_placement("gpu" if s.pool == "gpu" else "system"),
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                        {"name": "mlflow-credentials", "secret": {
                            "secretName": "mlflow-credentials", "defaultMode": 0o440}},
                        {"name": "capture", "emptyDir": {"sizeLimit": "2Gi"}}],
        }
        pod_annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": str(SERVING_PORT),
                           "prometheus.io/path": "/metrics"}
        self.rollout_name = APP
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata={"name": APP, "namespace": ns_name, "labels": labels},
            # The Rollout owns the pods; this Deployment is its template and stays at 0.
            spec={"replicas": 0, "selector": {"matchLabels": labels},
                  "strategy": {"type": "RollingUpdate",
                               "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                  "minReadySeconds": 10,
                  "template": {"metadata": {"labels": labels, "annotations": pod_annotations},
                               "spec": pod_spec}},
            # The deploy stage moves the image and MODEL_URI/MODEL_VERSION to each new
            # champion; Pulumi must not move them back (and roll out) on the next `up`.
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(
                ignore_changes=deploy_ignore_changes())))

        self.service_name = APP
        # The API server's service proxy resolves `services/NAME:PORT` against the
        # Service's ports, so the stable Service also answers on 8080 for the Deploy
        # stage's `/proxy/version` read (pipeline/delivery/rollout.py, served_version).
        for svc, extra in ((APP, [{"name": "direct", "port": SERVING_PORT, "targetPort": SERVING_PORT}]),
                           (f"{APP}-canary", [])):
            k8s.core.v1.Service(f"{name}-svc-{svc}", metadata={
                "name": svc, "namespace": ns_name, "labels": labels,
                "annotations": dict(SKIP_AWAIT)},
                spec={"type": "ClusterIP", "selector": labels,
                      "ports": [{"name": "http", "port": 80, "targetPort": SERVING_PORT}, *extra]},
                opts=k8s_opts)

        # Reachable from inside the VPC only (the smoke-test stage runs there): an internal
        # NLB over all serving pods, source ranges limited to the VPC.
        internal = k8s.core.v1.Service(f"{name}-svc-internal", metadata={
            "name": f"{APP}-internal", "namespace": ns_name, "labels": labels,
            "annotations": {**INTERNAL_NLB_ANNOTATIONS, **WAIT_FOR_LB_HOSTNAME}},
            spec=internal_nlb_spec(labels, args.vpc_cidr, SERVING_PORT),
            opts=k8s_opts)
        self.url = internal.status.apply(
            lambda st: f"http://{prop(prop(prop(st, 'load_balancer'), 'ingress')[0], 'hostname')}")

        template = k8s.apiextensions.CustomResource(
            f"{name}-analysis", api_version="argoproj.io/v1alpha1", kind="AnalysisTemplate",
            metadata={"name": f"{APP}-canary", "namespace": ns_name},
            spec={"args": [{"name": "namespace"}, {"name": "canary-hash"}],
                  "metrics": analysis_metrics(s)},
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(
                depends_on=[ns, argo, prometheus])))
        k8s.apiextensions.CustomResource(
            f"{name}-rollout", api_version="argoproj.io/v1alpha1", kind="Rollout",
            metadata={"name": APP, "namespace": ns_name, "labels": labels},
            # No `replicas`: the HPA owns the scale (Kubernetes' advice for HPA targets);
            # Pulumi claiming it under server-side apply would conflict with the HPA's
            # field manager on the next `up` and reset the count it chose.
            spec={"minReadySeconds": 10, "revisionHistoryLimit": 5,
                  "selector": {"matchLabels": labels},
                  "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP,
                                  "scaleDown": "onsuccess"},
                  "strategy": {"canary": {
                      "canaryService": f"{APP}-canary", "stableService": APP,
                      "maxSurge": 1, "maxUnavailable": 0,
                      "abortScaleDownDelaySeconds": 30,
                      "analysis": {"templates": [{"templateName": f"{APP}-canary"}],
                                   "startingStep": 1,
                                   "args": [{"name": "namespace", "value": s.namespace},
                                            {"name": "canary-hash", "valueFrom": {
                                                "podTemplateHashValue": "Latest"}}]},
                      "steps": canary_steps(s)}}},
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(
                depends_on=[ns, argo, deployment, template])))

        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa", metadata={"name": APP, "namespace": ns_name},
            spec={"scaleTargetRef": {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                                     "name": APP},
                  "minReplicas": s.min_replicas, "maxReplicas": s.max_replicas,
                  "metrics": [{"type": "Resource", "resource": {
                      "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
                  "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}}},
            opts=k8s_opts)
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb", metadata={"name": APP, "namespace": ns_name},
            spec={"minAvailable": 1, "selector": {"matchLabels": labels}}, opts=k8s_opts)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol", metadata={"name": APP, "namespace": ns_name},
            spec={"podSelector": {"matchLabels": labels}, "policyTypes": ["Ingress", "Egress"],
                  "ingress": [{"ports": [{"protocol": "TCP", "port": SERVING_PORT}], "from": [
                      {"podSelector": {}},
                      {"namespaceSelector": {"matchLabels": {
                          "kubernetes.io/metadata.name": "monitoring"}}},
                      {"namespaceSelector": {"matchLabels": {
                          "mlops.platform/serving-client": "true"}}}]},
                      control_plane_ingress(args.vpc_cidr, args.cluster.private_subnet_count)],
                  "egress": [{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                             MLFLOW_EGRESS,
                             {"ports": [{"protocol": "TCP", "port": 443}]},
                             # EMF records to the CloudWatch agent: its namespace, or the
                             # node's address should the agent run on the host network.
                             {"ports": [{"protocol": "TCP", "port": EMF_PORT}],
                              "to": [{"namespaceSelector": {"matchLabels": {
                                  "kubernetes.io/metadata.name": CLOUDWATCH_NAMESPACE}}},
                                  {"ipBlock": {"cidr": args.vpc_cidr}}]}]},
            opts=k8s_opts)

        # The delivery stages' access entries carry DEPLOYER_GROUP; this is all they may do.
        k8s.rbac.v1.Role(f"{name}-deployer-role", metadata={"name": "mlops-deployer",
                                                            "namespace": ns_name},
                         rules=deployer_rules(), opts=k8s_opts)
        k8s.rbac.v1.RoleBinding(f"{name}-deployer-binding", metadata={
            "name": "mlops-deployer", "namespace": ns_name},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "mlops-deployer"},
            subjects=[{"kind": "Group", "name": DEPLOYER_GROUP,
                       "apiGroup": "rbac.authorization.k8s.io"}],
            opts=k8s_opts)

        self._monitor_job(name, args, ns_name, k8s_opts)

        self.namespace = ns_name
        self.register_outputs({"namespace": ns_name, "rollout": APP, "url": self.url})

    def _monitor_job(self, name: str, args: ModelServiceArgs, ns_name: pulumi.Output[str],
                     k8s_opts: pulumi.ResourceOptions) -> None:
        """The scheduled monitor (issue 6): captured requests in S3 against the champion's
        training baseline; publishes the drift and performance metrics the Monitoring
        alarms read, which start the retrain. Exit 6 (drift detected) fails the Job run
        on purpose, without retries, so the verdict is also visible in the cluster."""
        s = args.settings
        job = f"{APP}-monitor"
        labels = {"app.kubernetes.io/name": job, "app.kubernetes.io/instance": args.model_name}
        monitor_role = args.cluster.service_account_role(
            f"{name}-monitor-role", namespace=s.namespace, service_account=job, tags=args.tags,
            policy_inputs=[args.capture_bucket_arn, args.capture_kms_key_arn],
            policy=monitor_policy, parent=self)
        k8s.core.v1.ServiceAccount(f"{name}-monitor-sa", metadata={
            "name": job, "namespace": ns_name,
            "annotations": {"eks.amazonaws.com/role-arn": monitor_role.arn}},
            automount_service_account_token=False, opts=k8s_opts)
        container = {
            "name": "monitor", "image": args.monitor_image,
            "command": ["python", "-m", "pipeline", "monitor",
                        "--model-name", args.model_name, "--alias", "champion",
                        "--publish-cloudwatch", "--stack", args.stack,
                        "--reports-dir", "/tmp/reports"],
            "args": [pulumi.Output.concat("--capture=s3://", args.capture_bucket_name, "/capture/",
                                          args.stack, "/", args.model_name)],
            "env": [{"name": "MLFLOW_TRACKING_URI", "value": args.mlflow_tracking_uri},
                    {"name": "HOME", "value": "/tmp"},
                    {"name": "MLFLOW_DISABLE_TELEMETRY", "value": "true"}],
            "resources": resources("1", "2Gi"),
            "securityContext": container_security_context(),
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"},
                             {"name": "mlflow-credentials", "mountPath": "/tmp/.mlflow",
                              "readOnly": True}],
        }
        k8s.batch.v1.CronJob(
            f"{name}-monitor", metadata={"name": job, "namespace": ns_name, "labels": labels},
            spec={"schedule": s.monitor_schedule, "concurrencyPolicy": "Forbid",
                  "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 5,
                  "jobTemplate": {"spec": {
                      "backoffLimit": 0, "activeDeadlineSeconds": 3000,
                      "template": {"metadata": {"labels": labels}, "spec": {
                          "serviceAccountName": job, "automountServiceAccountToken": False,
                          "restartPolicy": "Never",
                          "securityContext": pod_security_context(),
                          **pool_placement("system"),
                          "containers": [container],
                          "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}},
                                      {"name": "mlflow-credentials", "secret": {
                                          "secretName": "mlflow-credentials",
                                          "defaultMode": 0o440}}]}}}}},
            opts=k8s_opts)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-monitor-netpol", metadata={"name": job, "namespace": ns_name},
            spec={"podSelector": {"matchLabels": labels}, "policyTypes": ["Ingress", "Egress"],
                  "ingress": [],
                  "egress": [{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                             MLFLOW_EGRESS,
                             {"ports": [{"protocol": "TCP", "port": 443}]}]},
            opts=k8s_opts)
