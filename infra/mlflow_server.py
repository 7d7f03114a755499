"""MlflowServer: the tracking server and model registry every pipeline run talks to.

RDS PostgreSQL holds runs and the registry (encrypted, private, IAM auth on, backups,
enhanced monitoring, logs; multi-AZ and deletion protection in prod). Its master
password is managed by RDS in Secrets Manager, so it never passes through Pulumi. An
S3 SecureBucket holds artifacts. MLflow runs on the CPU pool with an IRSA role that can
touch only that bucket, that key and that database secret; basic authentication is on
(the admin password is a Pulumi secret, copied into Secrets Manager for the build jobs
and mounted as a file in the pod). The Service is an internal NLB reachable only from
inside the VPC: CodeBuild and SageMaker jobs use the tracking URI exported here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra import policies
from infra.bucket import SecureBucket, SecureBucketArgs
from infra.common import child, kms_key, prop, role
from infra.config import DatabaseSettings
from infra.gpu_cluster import GpuCluster
from infra.kube import (INTERNAL_NLB_ANNOTATIONS, WAIT_FOR_LB_HOSTNAME,
                        container_security_context, http_probe, internal_nlb_spec,
                        pod_security_context, pool_placement, resources)
from infra.naming import aws_name

MLFLOW_PORT = 5000
NAMESPACE = "mlflow"
SERVICE_ACCOUNT = "mlflow"
SERVICE = "mlflow"


def service_dns_names(service: str = SERVICE, namespace: str = NAMESPACE) -> list[str]:
    """Every name a pod may use for the Service (search-path short forms included)."""
    return [f"{service}.{namespace}.svc.cluster.local", f"{service}.{namespace}.svc",
            f"{service}.{namespace}", service]


def in_cluster_tracking_uri(service: str = SERVICE, namespace: str = NAMESPACE) -> str:
    """The tracking URI for pods: the Service's DNS name on its port 80. Going through the
    internal NLB from inside the cluster hairpins (a pod behind the NLB calling it can
    time out when the target is on its own node) and leaves the VPC's path for nothing."""
    return f"http://{service}.{namespace}.svc.cluster.local"


def allowed_hosts(lb_hostname: str) -> str:
    """``MLFLOW_SERVER_ALLOWED_HOSTS``: the Host headers MLflow accepts (its DNS-rebinding
    guard; once the variable is set its default localhost/private-IP list no longer
    applies). The Service's DNS names, the internal NLB's name, and loopback, each
    also with an explicit port."""
    hosts = [*service_dns_names(), lb_hostname, "localhost", "127.0.0.1"]
    return ",".join(h for host in hosts for h in (host, f"{host}:*"))


def flask_secret_key(admin_password: str) -> str:
    """``MLFLOW_FLASK_SERVER_SECRET_KEY``, one value for every replica (a session or CSRF
    token signed by one replica is checked by another). Derived from the admin password
    (a Pulumi secret) with HMAC-SHA256 under a fixed label: stable across `up`s without
    a random provider or state of its own, never equal to the password, and rotated
    whenever the password is."""
    return hmac.new(admin_password.encode(), b"mlops-platform/mlflow-flask-secret-key",
                    hashlib.sha256).hexdigest()


@dataclass
class MlflowServerArgs:
    """Database settings, network placement, cluster, image and credentials."""

    database: DatabaseSettings
    prefix: str
    region: str
    account_id: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    vpc_cidr: str
    private_subnet_ids: list[pulumi.Input[str]]
    cluster: GpuCluster
    image: pulumi.Input[str]
    """The MLflow image by digest (``repo@sha256:...``)."""
    admin_user: str
    admin_password: pulumi.Input[str]
    log_retention_days: int
    protect: bool
    tags: dict[str, str]


def mlflow_pod_policy(bucket_arn: str, key_arn: str, db_secret_arn: str,
                      db_secret_key_arn: str) -> dict[str, Any]:
    """The MLflow pod's role: its artifact bucket, its key, and the database secret."""
    return {"Version": "2012-10-17", "Statement": [
        *policies.s3_read_write(bucket_arn, key_arn),
        {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": db_secret_arn},
        {"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": db_secret_key_arn},
    ]}


class MlflowServer(pulumi.ComponentResource):
    """RDS + S3 + MLflow on EKS with authentication; exports the tracking URI."""

    tracking_uri: pulumi.Output[str]
    artifact_bucket_arn: pulumi.Output[str]
    artifact_bucket_name: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]
    credentials_secret_arn: pulumi.Output[str]
    client_security_group_id: pulumi.Output[str]
    internal_tracking_uri: str
    """For pods in the cluster (serving, the monitor job): the Service's DNS name."""

    def __init__(self, name: str, args: MlflowServerArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:mlflow_server:MlflowServer", name, None, opts)
        tags = args.tags
        here = pulumi.ResourceOptions(parent=self)
        db = args.database

        key = kms_key(f"{name}-key", description=f"{name} artifacts, database and secrets",
                      account_id=args.account_id, region=args.region,
                      services=[f"logs.{args.region}.amazonaws.com"], tags=tags, opts=here)
        self.kms_key_arn = key.arn
        access_logs = SecureBucket(f"{name}-access-logs", SecureBucketArgs(
            kms_key_arn=None, tags=tags, noncurrent_days=30, protect=args.protect,
            account_id=args.account_id), opts=here)
        artifacts = SecureBucket(f"{name}-artifacts", SecureBucketArgs(
            kms_key_arn=key.arn, tags=tags, protect=args.protect,
            access_log_bucket=access_logs.bucket.id), opts=here)
        self.artifact_bucket_arn = artifacts.arn
        self.artifact_bucket_name = artifacts.name

        # Whoever must reach MLflow's database joins this group: the cluster's nodes
        # (through the cluster security group) and nothing else.
        db_sg = aws.ec2.SecurityGroup(
            f"{name}-db-sg", vpc_id=args.vpc_id,
            description="PostgreSQL from the EKS cluster only",
            ingress=[{"protocol": "tcp", "from_port": 5432, "to_port": 5432,
                      "security_groups": [args.cluster.cluster_security_group_id],
                      "description": "PostgreSQL from EKS pods and nodes"}],
            egress=[{"protocol": "tcp", "from_port": 5432, "to_port": 5432,
                     "cidr_blocks": [args.vpc_cidr], "description": "Replies inside the VPC"}],
            tags=tags, opts=here)
        self.client_security_group_id = args.cluster.cluster_security_group_id
        subnets = aws.rds.SubnetGroup(f"{name}-db-subnets", subnet_ids=args.private_subnet_ids,
                                      tags=tags, opts=here)
        family = f"postgres{db.postgres_version.split('.')[0]}"
        params = aws.rds.ParameterGroup(
            f"{name}-db-params", family=family, description="TLS only, slow-query logging",
            parameters=[{"name": "rds.force_ssl", "value": "1"},
                        {"name": "log_min_duration_statement", "value": "1000"},
                        {"name": "log_connections", "value": "1"}],
            tags=tags, opts=here)
        monitoring_role = role(f"{name}-db-monitoring",
                               trust=policies.service_trust("monitoring.rds.amazonaws.com"),
                               managed_policy_arns=[
                                   "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"],
                               tags=tags, opts=here)
        identifier = aws_name("rds", name)
        database = aws.rds.Instance(
            f"{name}-db", identifier=identifier, engine="postgres",
            engine_version=db.postgres_version, instance_class=db.instance_class,
            allocated_storage=db.allocated_storage_gb,
            max_allocated_storage=db.max_allocated_storage_gb, storage_type="gp3",
            storage_encrypted=True, kms_key_id=key.arn, db_name="mlflow", username="mlflow",
            manage_master_user_password=True, master_user_secret_kms_key_id=key.arn,
            iam_database_authentication_enabled=True, db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[db_sg.id], parameter_group_name=params.name,
            publicly_accessible=False, multi_az=db.multi_az,
            backup_retention_period=db.backup_retention_days, copy_tags_to_snapshot=True,
            deletion_protection=args.protect, skip_final_snapshot=not args.protect,
            final_snapshot_identifier=f"{identifier}-final" if args.protect else None,
            auto_minor_version_upgrade=True,
            enabled_cloudwatch_logs_exports=["postgresql", "upgrade"],
            monitoring_interval=60, monitoring_role_arn=monitoring_role.arn,
            performance_insights_enabled=True, performance_insights_kms_key_id=key.arn,
            tags=tags, opts=child(self, protect=args.protect))
        db_secret_arn = database.master_user_secrets.apply(lambda s: prop(s[0], "secret_arn"))

        # The build and pipeline jobs log into MLflow with these credentials.
        credentials = aws.secretsmanager.Secret(
            f"{name}-credentials", description="MLflow basic-auth credentials for pipeline jobs",
            kms_key_id=key.arn, recovery_window_in_days=7 if args.protect else 0, tags=tags,
            opts=here)
        aws.secretsmanager.SecretVersion(
            f"{name}-credentials-value", secret_id=credentials.id,
            secret_string=pulumi.Output.secret(args.admin_password).apply(
                lambda pw: json.dumps({"username": args.admin_user, "password": pw})),
            opts=here)
        self.credentials_secret_arn = credentials.arn

        pod_role = args.cluster.service_account_role(
            f"{name}-pod-role", namespace=NAMESPACE, service_account=SERVICE_ACCOUNT, tags=tags,
            policy_inputs=[artifacts.arn, key.arn, db_secret_arn, key.arn],
            policy=mlflow_pod_policy, parent=self)

        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.cluster.provider)
        ns = k8s.core.v1.Namespace(f"{name}-ns", metadata={"name": NAMESPACE, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted"}}, opts=k8s_opts)
        ns_name = ns.metadata.name
        k8s.core.v1.ServiceAccount(f"{name}-sa", metadata={
            "name": SERVICE_ACCOUNT, "namespace": ns_name,
            "annotations": {"eks.amazonaws.com/role-arn": pod_role.arn}},
            automount_service_account_token=False, opts=k8s_opts)
        k8s.core.v1.Secret(f"{name}-admin", metadata={"name": "mlflow-admin",
                                                             "namespace": ns_name},
                                  string_data={"username": args.admin_user,
                                               "password": args.admin_password},
                                  opts=k8s_opts)
        k8s.core.v1.Secret(f"{name}-flask", metadata={"name": "mlflow-flask",
                                                      "namespace": ns_name},
                           string_data={"secret-key": pulumi.Output.secret(
                               args.admin_password).apply(flask_secret_key)},
                           opts=k8s_opts)
        labels = {"app.kubernetes.io/name": "mlflow", "app.kubernetes.io/part-of": "mlops-platform"}
        # Created before the Deployment: its NLB name is one of the Host headers MLflow
        # must accept. It waits for that name only, not for ready pods (which would wait
        # for the Deployment behind it).
        service = k8s.core.v1.Service(f"{name}-service", metadata={
            "name": SERVICE, "namespace": ns_name, "labels": labels,
            # Internal NLB: reachable from the VPC (build and SageMaker jobs), never
            # from the internet.
            "annotations": {**INTERNAL_NLB_ANNOTATIONS, **WAIT_FOR_LB_HOSTNAME}},
            spec=internal_nlb_spec(labels, args.vpc_cidr, MLFLOW_PORT),
            opts=k8s_opts)
        lb_hostname = service.status.apply(
            lambda st: str(prop(prop(prop(st, 'load_balancer'), 'ingress')[0], 'hostname')))
        container = {
            "name": "mlflow", "image": args.image,
            "ports": [{"name": "http", "containerPort": MLFLOW_PORT}],
            "env": [
                {"name": "MLFLOW_DB_HOST", "value": database.address},
                {"name": "MLFLOW_DB_NAME", "value": "mlflow"},
                {"name": "MLFLOW_DB_SECRET_ARN", "value": db_secret_arn},
                {"name": "MLFLOW_ARTIFACTS_DESTINATION",
                 "value": artifacts.name.apply(lambda b: f"s3://{b}/mlflow")},
                {"name": "MLFLOW_ADMIN_CREDENTIALS_DIR", "value": "/etc/mlflow-admin"},
                {"name": "MLFLOW_SERVER_ALLOWED_HOSTS", "value": lb_hostname.apply(allowed_hosts)},
                {"name": "MLFLOW_FLASK_SERVER_SECRET_KEY", "valueFrom": {"secretKeyRef": {
                    "name": "mlflow-flask", "key": "secret-key"}}},
                {"name": "AWS_REGION", "value": args.region},
                {"name": "HOME", "value": "/tmp"},
            ],
            "resources": resources("1", "2Gi"),
            # The first boot migrates the database schema (minutes on a small RDS class):
            # liveness starts counting only once the startup probe has passed, so it
            # cannot kill the pod mid-migration and leave the schema half-upgraded.
            "startupProbe": http_probe("/health", MLFLOW_PORT, initial_delay=10, period=10,
                                       failure_threshold=60),
            "readinessProbe": http_probe("/health", MLFLOW_PORT, initial_delay=0),
            "livenessProbe": http_probe("/health", MLFLOW_PORT, initial_delay=0, period=20),
            "securityContext": container_security_context(),
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"},
                             {"name": "admin", "mountPath": "/etc/mlflow-admin", "readOnly": True}],
        }
        k8s.apps.v1.Deployment(f"{name}-deployment", metadata={
            "name": "mlflow", "namespace": ns_name, "labels": labels},
            spec={"replicas": 2, "selector": {"matchLabels": labels},
                  "strategy": {"type": "RollingUpdate",
                               "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                  "minReadySeconds": 10,
                  "template": {"metadata": {"labels": labels},
                      "spec": {"serviceAccountName": SERVICE_ACCOUNT,
                               # IRSA's webhook mounts its own projected token; the
                               # Kubernetes API token is not needed.
                               "automountServiceAccountToken": False,
                               "securityContext": pod_security_context(),
                               **pool_placement("system"),
                               "containers": [container],
                               "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                                           {"name": "admin", "secret": {
                                               "secretName": "mlflow-admin",
                                               "defaultMode": 0o400}}]}}},
            opts=k8s_opts)
        k8s.policy.v1.PodDisruptionBudget(f"{name}-pdb", metadata={
            "name": "mlflow", "namespace": ns_name},
            spec={"minAvailable": 1, "selector": {"matchLabels": labels}}, opts=k8s_opts)
        k8s.networking.v1.NetworkPolicy(f"{name}-netpol", metadata={
            "name": "mlflow", "namespace": ns_name},
            spec={"podSelector": {"matchLabels": labels}, "policyTypes": ["Ingress", "Egress"],
                  "ingress": [{"ports": [{"protocol": "TCP", "port": MLFLOW_PORT}],
                               "from": [{"ipBlock": {"cidr": args.vpc_cidr}}]}],
                  "egress": [{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                             {"ports": [{"protocol": "TCP", "port": 5432}],
                              "to": [{"ipBlock": {"cidr": args.vpc_cidr}}]},
                             {"ports": [{"protocol": "TCP", "port": 443}]}]},
            opts=k8s_opts)
        self.tracking_uri = lb_hostname.apply(lambda host: f"http://{host}")
        self.internal_tracking_uri = in_cluster_tracking_uri()
        self.register_outputs({"tracking_uri": self.tracking_uri,
                               "artifact_bucket": artifacts.name})
