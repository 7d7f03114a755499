"""The whole program for the dev and the prod stack, built in one process under mocks.

These assert the safety rules across every resource of each stack (encryption, private
endpoints, least privilege, GPU pool, alarms, approval, digests, protection), with
messages naming the URN. The graphs come from the real Pulumi.<stack>.yaml files.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from infra import policies
from infra.mocks import Capture

STACKS = ["dev", "prod"]
DIGEST = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")


@pytest.mark.parametrize("stack", STACKS)
def test_program_exports_what_a_user_needs(captured: dict[str, Capture], stack: str) -> None:
    outputs = captured[stack].outputs
    for key in ("clusterName", "trainingRepositoryUrl", "servingRepositoryUrl", "mlflowTrackingUri",
                "sagemakerPipelineArn", "codePipelineName", "dashboardName", "servingUrl"):
        assert outputs.get(key), f"{stack}: output {key} missing"
    assert DIGEST.match(outputs["servingImage"]) and DIGEST.match(outputs["trainingImage"])


@pytest.mark.parametrize("stack", STACKS)
def test_datasets_pushed_to_the_data_uri_are_what_train_and_the_definition_read(captured: dict[str, Capture], stack: str) -> None:
    """`deliver push-data --data-uri <dataUri>`; the Train stage resolves the latest push there."""
    cap = captured[stack]
    data_uri = cap.outputs["dataUri"]
    assert data_uri.startswith("s3://") and data_uri.endswith("/datasets/adult-income/")
    train = next(p for p in cap.of_type("aws:codebuild/project:Project") if p.inputs["source"]["buildspec"] == "buildspecs/train.yml")
    env = {v["name"]: v["value"] for v in train.inputs["environment"]["environmentVariables"]}
    assert env["PIPELINE_DATA_URI"] == data_uri
    (pipeline,) = cap.of_type("aws:sagemaker/pipeline:Pipeline")
    params = {p["Name"]: p.get("DefaultValue") for p in json.loads(pipeline.inputs["pipelineDefinition"])["Parameters"]}
    assert params["InputDataUri"] == data_uri


@pytest.mark.parametrize("stack", STACKS)
def test_every_resource_belongs_to_a_component(captured: dict[str, Capture], stack: str) -> None:
    cap = captured[stack]
    components = {r.urn: r for r in cap.resources if r.type.startswith("mlops:")}
    tokens = {r.type for r in components.values()}
    assert {"mlops:network:Network", "mlops:gpu_cluster:GpuCluster", "mlops:registry:ContainerRegistry",
            "mlops:mlflow_server:MlflowServer", "mlops:training_pipeline:TrainingPipeline",
            "mlops:delivery_pipeline:DeliveryPipeline", "mlops:model_service:ModelService",
            "mlops:monitoring:Monitoring"} <= tokens
    for r in cap.custom:
        assert r.parent in components, f"{r.urn} is created outside any component"


@pytest.mark.parametrize("stack", STACKS)
def test_encryption_everywhere(captured: dict[str, Capture], stack: str) -> None:
    cap = captured[stack]
    for key in cap.of_type("aws:kms/key:Key"):
        assert key.inputs["enableKeyRotation"] is True, key.urn
    for sse in cap.of_type("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"):
        rule = sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]
        # Access-log buckets: S3 delivers server access logs only to SSE-S3 buckets.
        expected = "AES256" if "access-logs" in sse.name else "aws:kms"
        assert rule["sseAlgorithm"] == expected, sse.urn
    assert len(cap.of_type("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")) == \
        len(cap.of_type("aws:s3/bucket:Bucket"))
    for group in cap.of_type("aws:cloudwatch/logGroup:LogGroup"):
        assert group.inputs.get("kmsKeyId") and group.inputs.get("retentionInDays"), group.urn
    for repo in cap.of_type("aws:ecr/repository:Repository"):
        assert repo.inputs["encryptionConfigurations"][0]["encryptionType"] == "KMS", repo.urn
    for topic in cap.of_type("aws:sns/topic:Topic"):
        assert topic.inputs.get("kmsMasterKeyId"), topic.urn
    for project in cap.of_type("aws:codebuild/project:Project"):
        assert project.inputs.get("encryptionKey"), project.urn
    db = cap.one("aws:rds/instance:Instance")
    assert db.inputs["storageEncrypted"] and db.inputs["kmsKeyId"], db.urn
    cluster = cap.one("aws:eks/cluster:Cluster")
    assert cluster.inputs["encryptionConfig"]["provider"]["keyArn"], cluster.urn
    secret = cap.one("aws:secretsmanager/secret:Secret")
    assert secret.inputs.get("kmsKeyId"), secret.urn


@pytest.mark.parametrize("stack", STACKS)
def test_cluster_endpoint_is_private(captured: dict[str, Capture], stack: str) -> None:
    cluster = captured[stack].one("aws:eks/cluster:Cluster")
    assert cluster.inputs["vpcConfig"]["endpointPublicAccess"] is False, cluster.urn
    assert cluster.inputs["vpcConfig"]["endpointPrivateAccess"] is True, cluster.urn
    assert "publicAccessCidrs" not in cluster.inputs["vpcConfig"], cluster.urn


@pytest.mark.parametrize("stack", STACKS)
def test_iam_is_least_privilege(captured: dict[str, Capture], stack: str) -> None:
    cap = captured[stack]
    for inline in cap.of_type("aws:iam/rolePolicy:RolePolicy"):
        assert policies.policy_violations(json.loads(inline.inputs["policy"])) == [], inline.urn
    for attachment in cap.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
        assert not attachment.inputs["policyArn"].endswith(("AdministratorAccess", "PowerUserAccess",
                                                            "IAMFullAccess")), attachment.urn
    for role in cap.of_type("aws:iam/role:Role"):
        trust = json.loads(role.inputs["assumeRolePolicy"])
        for statement in trust["Statement"]:
            assert statement["Principal"] != "*" and statement["Principal"].get("AWS") != "*", role.urn
            if "Federated" in statement["Principal"]:
                assert statement["Condition"]["StringEquals"], role.urn


@pytest.mark.parametrize("stack", STACKS)
def test_gpu_pool_is_tainted_and_scales_to_zero(captured: dict[str, Capture], stack: str) -> None:
    gpu = captured[stack].one("aws:eks/nodeGroup:NodeGroup", "-gpu")
    assert gpu.inputs["scalingConfig"]["minSize"] == 0 and gpu.inputs["scalingConfig"]["desiredSize"] == 0, gpu.urn
    assert gpu.inputs["amiType"] == "AL2023_x86_64_NVIDIA", gpu.urn
    assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"} in gpu.inputs["taints"], gpu.urn
    system = captured[stack].one("aws:eks/nodeGroup:NodeGroup", "-system")
    assert not system.inputs.get("taints") and system.inputs["amiType"] == "AL2023_x86_64_STANDARD", system.urn


@pytest.mark.parametrize("stack", STACKS)
def test_every_alarm_notifies_the_topic(captured: dict[str, Capture], stack: str) -> None:
    cap = captured[stack]
    topic = cap.one("aws:sns/topic:Topic").outputs["arn"]
    alarms = cap.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    assert len(alarms) == 7
    for alarm in alarms:
        assert alarm.inputs["alarmActions"] == [topic] and alarm.inputs["actionsEnabled"], alarm.urn
    for target in cap.of_type("aws:cloudwatch/eventTarget:EventTarget"):
        if "to-sns" in target.name:
            assert target.inputs["arn"] == topic, target.urn
    retrain = cap.one("aws:cloudwatch/eventTarget:EventTarget", "retrain")
    pipeline = cap.one("aws:codepipeline/pipeline:Pipeline", "-delivery")
    assert retrain.inputs["arn"] == pipeline.outputs["arn"], retrain.urn


def test_approval_stage_only_in_prod(captured: dict[str, Capture]) -> None:
    for stack, expected in (("prod", True), ("dev", False)):
        pipeline = captured[stack].one("aws:codepipeline/pipeline:Pipeline", "-delivery")
        names = [s["name"] for s in pipeline.inputs["stages"]]
        assert ("Approval" in names) is expected, pipeline.urn
        if expected:
            assert names.index("Approval") == names.index("Deploy") - 1, pipeline.urn


def _containers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    spec = manifest.get("spec") or {}
    template = (spec.get("template") or {}).get("spec") or {}
    return list(template.get("containers") or [])


@pytest.mark.parametrize("stack", STACKS)
def test_images_by_digest_everywhere(captured: dict[str, Capture], stack: str) -> None:
    cap = captured[stack]
    digests = {r.outputs["repoDigest"] for r in cap.of_type("docker:index/image:Image")}
    for r in cap.resources:
        for container in _containers(r.inputs):
            assert container["image"] in digests, f"{r.urn}: {container['image']} is not a built digest"
    definition = json.loads(cap.one("aws:sagemaker/pipeline:Pipeline").inputs["pipelineDefinition"])
    # Step images are execution parameters (each push passes its own digests); their
    # defaults, compiled at `pulumi up`, must be the digests built here.
    images = re.findall(r'"(?:ImageUri|TrainingImage)": ("[^"]+"|\{"Get": "[^"]+"\})', json.dumps(definition))
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    resolved = [defaults[json.loads(i)["Get"].removeprefix("Parameters.")] if i.startswith("{") else json.loads(i) for i in images]
    assert resolved and all(image in digests for image in resolved), resolved


def test_stateful_resources_protected_in_prod_only(captured: dict[str, Capture]) -> None:
    stateful = ("aws:rds/instance:Instance", "aws:s3/bucket:Bucket", "aws:ecr/repository:Repository")
    for stack, expected in (("prod", True), ("dev", False)):
        for token in stateful:
            for r in captured[stack].of_type(token):
                assert r.protect is expected and r.retain_on_delete is expected, r.urn
    db = captured["prod"].one("aws:rds/instance:Instance")
    assert db.inputs["deletionProtection"] and db.inputs["multiAz"] and db.inputs["finalSnapshotIdentifier"], db.urn


def test_serving_replicas_and_pool_follow_the_stack(captured: dict[str, Capture]) -> None:
    # The HPA owns the Rollout's scale (the Rollout sets no replicas of its own).
    prod = captured["prod"].one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
    assert prod.inputs["spec"]["minReplicas"] >= 2, prod.urn
    for stack, gpu in (("prod", True), ("dev", False)):
        deployment = captured[stack].one("kubernetes:apps/v1:Deployment", "serving")
        limits = _containers(deployment.inputs)[0]["resources"]["limits"]
        assert ("nvidia.com/gpu" in limits) is gpu, deployment.urn


@pytest.mark.parametrize("stack", STACKS)
def test_no_public_load_balancer_and_no_default_namespace(captured: dict[str, Capture], stack: str) -> None:
    for r in captured[stack].resources:
        if not r.type.startswith("kubernetes:") or r.type.startswith("kubernetes:helm"):
            continue
        if r.type not in ("kubernetes:core/v1:Namespace", "kubernetes:storage.k8s.io/v1:StorageClass"):
            assert r.inputs["metadata"].get("namespace") not in (None, "default"), r.urn
        if r.type == "kubernetes:core/v1:Service" and r.inputs["spec"].get("type") == "LoadBalancer":
            assert r.inputs["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internal", r.urn


@pytest.mark.parametrize("stack", STACKS)
def test_no_ingress_from_the_internet(captured: dict[str, Capture], stack: str) -> None:
    for sg in captured[stack].of_type("aws:ec2/securityGroup:SecurityGroup"):
        for rule in sg.inputs.get("ingress", []):
            assert "0.0.0.0/0" not in rule.get("cidrBlocks", []), sg.urn
    db = captured[stack].one("aws:rds/instance:Instance")
    assert db.inputs["publiclyAccessible"] is False, db.urn


def test_main_module_reads_config_and_exports_outputs(sdk_definition: str) -> None:
    """``infra/__main__.py`` as the Pulumi engine runs it: config in, outputs exported."""
    import runpy

    import pulumi

    from infra.config import SECRET_KEYS, as_pulumi_config
    from infra.mocks import PROJECT, capture_program, stack_config

    exported: dict[str, Any] = {}
    real_export = pulumi.export
    region, values = stack_config("dev")
    config = {**as_pulumi_config(PROJECT, region, values),
              f"{PROJECT}:mlflowAdminPassword": "a-long-enough-admin-password"}

    def program() -> dict[str, Any]:
        pulumi.export = lambda name, value: exported.__setitem__(name, value)  # type: ignore[assignment]
        try:
            runpy.run_module("infra.__main__", run_name="__main__")
        finally:
            pulumi.export = real_export
        return {k: v for k, v in exported.items() if k != "kubeconfig"}

    cap = capture_program(program, stack="dev", region=region, config=config,
                          secret_keys=[f"{PROJECT}:{k}" for k in SECRET_KEYS])
    assert cap.outputs["clusterName"] == "mlops-dev-cluster"
    assert "kubeconfig" in exported and cap.outputs["codePipelineName"] == "mlops-dev-delivery"
