"""The platform program as a function: settings in, components wired, outputs returned.

``infra/__main__.py`` calls ``build(load_settings())`` and exports the result; tests and
the offline plan call ``build`` under Pulumi's mocks, once per stack, in one process.
The SageMaker pipeline definition is compiled by ``pipeline.sagemaker_compiler`` from
the resolved ARNs and image digests (a builder runs inside ``apply``: it creates no
resource and calls no AWS API).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.config import Settings
from infra.delivery_pipeline import DeliveryPipeline, DeliveryPipelineArgs, pipeline_name
from infra.eks_versions import version as eks_version
from infra.gpu_cluster import GpuCluster, GpuClusterArgs
from infra.infra_pipeline import InfraPipeline, InfraPipelineArgs
from infra.mlflow_server import MlflowServer, MlflowServerArgs
from infra.model_service import ModelService, ModelServiceArgs
from infra.monitoring import SERVING_ALARM_KEYS, Monitoring, MonitoringArgs, alarm_name
from infra.network import Network, NetworkArgs
from infra.registry import REPO_ROOT, ContainerRegistry, ContainerRegistryArgs
from infra.training_pipeline import TrainingPipeline, TrainingPipelineArgs

PROCESSING_INSTANCE_TYPE = "ml.m5.xlarge"

Compiler = Callable[..., str]


def _default_compiler() -> Compiler:
    """The pipeline package's compiler, imported only when a definition is needed."""
    from pipeline.sagemaker_compiler import compile_pipeline_definition

    return compile_pipeline_definition


def definition_builder(settings: Settings, *, compiler: Compiler | None, pipeline_name: str,
                       training_image: pulumi.Input[str],
                       bucket_name: pulumi.Input[str], kms_key_arn: pulumi.Input[str],
                       tracking_uri: pulumi.Input[str], credentials_secret_arn: pulumi.Input[str],
                       subnet_ids: list[pulumi.Input[str]]) -> Callable[[str, str], pulumi.Output[str]]:
    """A (role_arn, security_group_id) -> definition builder for TrainingPipeline.

    Every step runs the training image: processing steps run ``python -m pipeline step``
    (the image carries the ``pipeline`` package), training runs on the stack's GPU type.
    The serving image is not used here: it holds only the server.
    """
    def build(role_arn: str, security_group_id: str) -> pulumi.Output[str]:
        def compile_now(values: list[Any]) -> str:
            from pipeline.sagemaker_compiler import PipelineSpec

            training, bucket, key, uri, secret, *subnets = values
            spec = PipelineSpec(
                pipeline_name=pipeline_name, role_arn=role_arn,
                processing_image_uri=training, training_image_uri=training,
                gpu_instance_type=settings.training_instance_type,
                processing_instance_type=PROCESSING_INSTANCE_TYPE,
                data_s3_uri=f"s3://{bucket}/datasets/{settings.model_name}/",
                artifacts_s3_prefix=f"s3://{bucket}/sagemaker",
                kms_key_id=key, mlflow_tracking_uri=uri, mlflow_credentials_secret_arn=secret,
                model_name=settings.model_name,
                subnet_ids=tuple(subnets), security_group_ids=(security_group_id,))
            return (compiler or _default_compiler())(spec)

        return pulumi.Output.all(training_image, bucket_name, kms_key_arn,
                                 tracking_uri, credentials_secret_arn, *subnet_ids).apply(compile_now)

    return build


def build(settings: Settings, *, compiler: Compiler | None = None,
          source_root: Path = REPO_ROOT) -> dict[str, pulumi.Output[Any]]:
    """Create every component for one stack and return the outputs a user needs.

    ``source_root`` is the checkout the images are built from (the repository root).
    """
    prefix = settings.prefix
    tags = settings.tags
    protect = settings.is_prod
    account_id = aws.get_caller_identity_output().account_id

    network = Network(f"{prefix}-network", NetworkArgs(
        settings=settings.network, prefix=prefix, region=settings.region, account_id=account_id,
        log_retention_days=settings.log_retention_days, tags=tags))
    cluster = GpuCluster(f"{prefix}-cluster", GpuClusterArgs(
        settings=settings.cluster, prefix=prefix, region=settings.region, account_id=account_id,
        vpc_id=network.vpc_id, private_subnet_ids=list(network.private_subnet_ids),
        log_retention_days=settings.log_retention_days, tags=tags))
    registry = ContainerRegistry(f"{prefix}-registry", ContainerRegistryArgs(
        prefix=prefix, region=settings.region, account_id=account_id, tags=tags, protect=protect,
        root=source_root))
    mlflow = MlflowServer(f"{prefix}-mlflow", MlflowServerArgs(
        database=settings.database, prefix=prefix, region=settings.region, account_id=account_id,
        vpc_id=network.vpc_id, vpc_cidr=network.vpc_cidr,
        private_subnet_ids=list(network.private_subnet_ids), cluster=cluster,
        image=registry.repo_digests["mlflow"], admin_user=settings.mlflow_admin_user,
        admin_password=settings.mlflow_admin_password,
        log_retention_days=settings.log_retention_days, protect=protect, tags=tags))
    training_name = f"{prefix}-training"
    training = TrainingPipeline(training_name, TrainingPipelineArgs(
        definition=definition_builder(
            settings, compiler=compiler, pipeline_name=training_name,
            training_image=registry.repo_digests["training"],
            bucket_name=mlflow.artifact_bucket_name, kms_key_arn=mlflow.kms_key_arn,
            tracking_uri=mlflow.tracking_uri, credentials_secret_arn=mlflow.credentials_secret_arn,
            subnet_ids=list(network.private_subnet_ids)),
        prefix=prefix, region=settings.region, account_id=account_id,
        bucket_arn=mlflow.artifact_bucket_arn, kms_key_arn=mlflow.kms_key_arn,
        repository_arns=registry.arns(["training"]),
        credentials_secret_arn=mlflow.credentials_secret_arn, vpc_id=network.vpc_id,
        vpc_cidr=network.vpc_cidr, s3_prefix_list_id=network.s3_prefix_list_id, tags=tags))
    service = ModelService(f"{prefix}-serving", ModelServiceArgs(
        settings=settings.serving, prefix=prefix, stack=settings.stack,
        model_name=settings.model_name, image=registry.repo_digests["serving"],
        # In the cluster MLflow is reached by its Service's DNS name, never the NLB.
        mlflow_tracking_uri=mlflow.internal_tracking_uri,
        mlflow_admin_user=settings.mlflow_admin_user,
        mlflow_admin_password=settings.mlflow_admin_password,
        capture_bucket_arn=mlflow.artifact_bucket_arn,
        capture_bucket_name=mlflow.artifact_bucket_name, capture_kms_key_arn=mlflow.kms_key_arn,
        monitor_image=registry.repo_digests["training"],
        cluster=cluster, vpc_cidr=network.vpc_cidr, tags=tags))
    delivery_name = pipeline_name(f"{prefix}")
    # `deliver push-data` uploads under this prefix; the SageMaker definition's
    # InputDataUri defaults to it, and the Train stage passes the latest push's folder.
    data_uri = pulumi.Output.concat("s3://", mlflow.artifact_bucket_name, f"/datasets/{settings.model_name}/")
    monitoring = Monitoring(f"{prefix}-monitoring", MonitoringArgs(
        settings=settings.alarms, prefix=prefix, stack=settings.stack, region=settings.region,
        account_id=account_id, model_name=settings.model_name,
        cluster_name=cluster.cluster_name, codepipeline_name=delivery_name,
        codepipeline_arn=pulumi.Output.concat("arn:aws:codepipeline:", settings.region, ":",
                                              account_id, ":", delivery_name),
        sagemaker_pipeline_arn=training.pipeline_arn, tags=tags))
    delivery = DeliveryPipeline(f"{prefix}-delivery", DeliveryPipelineArgs(
        prefix=prefix, stack=settings.stack, region=settings.region, account_id=account_id,
        github_repository=settings.github_repository, github_branch=settings.github_branch,
        approval_required=settings.approval_required, model_name=settings.model_name,
        serving_namespace=settings.serving.namespace, rollout_name=service.rollout_name,
        serving_url=service.url,
        serving_alarm_names=[alarm_name(prefix, key) for key in SERVING_ALARM_KEYS],
        alarm_topic_arn=monitoring.topic_arn, alarm_topic_kms_key_arn=monitoring.topic_kms_key_arn,
        vpc_id=network.vpc_id,
        vpc_cidr=network.vpc_cidr, private_subnet_ids=list(network.private_subnet_ids),
        cluster_name=cluster.cluster_name, cluster_arn=cluster.cluster_arn,
        kubectl_version=eks_version(settings.cluster.version).kubectl,
        repository_names={k: v for k, v in registry.repository_names.items() if k != "mlflow"},
        repository_arns={k: v for k, v in registry.repository_arns.items() if k != "mlflow"},
        registry_kms_key_arn=registry.kms_key_arn,
        sagemaker_pipeline_arn=training.pipeline_arn,
        sagemaker_pipeline_name=training.pipeline_name,
        sagemaker_artifacts_prefix=mlflow.artifact_bucket_name.apply(lambda b: f"s3://{b}/sagemaker"),
        data_uri=data_uri,
        sagemaker_bucket_arn=mlflow.artifact_bucket_arn,
        sagemaker_kms_key_arn=mlflow.kms_key_arn, mlflow_tracking_uri=mlflow.tracking_uri,
        mlflow_credentials_secret_arn=mlflow.credentials_secret_arn,
        mlflow_kms_key_arn=mlflow.kms_key_arn, log_retention_days=settings.log_retention_days,
        protect=protect, tags=tags))

    # Deploy and SmokeTest run kubectl from the VPC against the private API endpoint.
    cluster.allow_api_from(f"{prefix}-cluster-api-from-delivery",
                           security_group_id=delivery.build_security_group_id,
                           description="Kubernetes API from the delivery pipeline's VPC builds",
                           tags=tags)

    # Infra changes: previews on pull requests, `pulumi up` after merge, from the VPC.
    infra = InfraPipeline(f"{prefix}-infra", InfraPipelineArgs(
        prefix=prefix, stack=settings.stack, region=settings.region, account_id=account_id,
        github_repository=settings.github_repository, github_branch=settings.github_branch,
        connection_arn=delivery.connection_arn, approval_required=settings.approval_required,
        vpc_id=network.vpc_id, private_subnet_ids=list(network.private_subnet_ids),
        security_group_id=cluster.api_client_security_group_id,
        log_retention_days=settings.log_retention_days, protect=protect, tags=tags))

    return {
        "infraStateBucket": infra.state_bucket_name,
        "infraPipelineName": infra.pipeline_name,
        "clusterName": cluster.cluster_name,
        "clusterApiClientSecurityGroupId": cluster.api_client_security_group_id,
        "kubeconfig": pulumi.Output.secret(cluster.kubeconfig),
        "trainingRepositoryUrl": registry.repository_urls["training"],
        "servingRepositoryUrl": registry.repository_urls["serving"],
        "trainingImage": registry.repo_digests["training"],
        "servingImage": registry.repo_digests["serving"],
        "mlflowTrackingUri": mlflow.tracking_uri,
        "mlflowCredentialsSecretArn": mlflow.credentials_secret_arn,
        "artifactBucket": mlflow.artifact_bucket_name,
        # `deliver push-data --data-uri` uploads datasets under this prefix.
        "dataUri": data_uri,
        "sagemakerPipelineArn": training.pipeline_arn,
        "codePipelineName": delivery.pipeline_name,
        "githubConnectionArn": delivery.connection_arn,
        "servingNamespace": service.namespace,
        "servingUrl": service.url,
        "alarmTopicArn": monitoring.topic_arn,
        "dashboardName": monitoring.dashboard_name,
    }
