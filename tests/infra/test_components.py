"""Each ComponentResource built alone under Pulumi's mocks.

Every component gets plain inputs (strings where the program would pass Outputs) and
the test asserts the properties that matter for it; messages name the URN. A mock
proves the component asks AWS/Kubernetes for the right thing, not that a deploy works.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mlflow.server.security_utils import is_allowed_host_header

from infra.config import (AlarmSettings, ClusterSettings, DatabaseSettings, NetworkSettings,
                          ServingSettings)
from infra.delivery_pipeline import DeliveryPipeline, DeliveryPipelineArgs
from infra.gpu_cluster import GpuCluster, GpuClusterArgs
from infra.mlflow_server import MlflowServer, MlflowServerArgs, flask_secret_key
from infra.mocks import ACCOUNT_ID, Capture, capture_program
from infra.model_service import ModelService, ModelServiceArgs
from infra.monitoring import Monitoring, MonitoringArgs
from infra.network import Network, NetworkArgs
from infra.registry import ContainerRegistry, ContainerRegistryArgs, ImageSpec
from infra.training_pipeline import TrainingPipeline, TrainingPipelineArgs, definition_steps

REGION = "eu-west-1"
TAGS = {"stack": "test"}
SUBNETS = ["subnet-a", "subnet-b"]
CLUSTER = ClusterSettings(version="1.35", endpoint_public=False, public_access_cidrs=(),
                          system_instance_type="m6i.large", system_min=2, system_max=3,
                          gpu_instance_types=("g5.xlarge",), gpu_min=0, gpu_max=2,
                          gpu_capacity_type="ON_DEMAND")


def _run(program: Any) -> Capture:
    return capture_program(program, stack="test", region=REGION)


def _cluster() -> GpuCluster:
    return GpuCluster("t-cluster", GpuClusterArgs(
        settings=CLUSTER, prefix="t", region=REGION, account_id=ACCOUNT_ID, vpc_id="vpc-1",
        private_subnet_ids=SUBNETS, log_retention_days=365, tags=TAGS))


def _children_parented(capture: Capture, component_type: str) -> None:
    component = next(r for r in capture.resources if r.type == component_type)
    by_urn = {r.urn: r for r in capture.resources}
    for r in capture.resources:
        if r is component:
            continue
        node = r
        while node.parent in by_urn and node.parent != component.urn:
            node = by_urn[node.parent]
        assert node.parent == component.urn, f"{r.urn} is not under {component.urn}"
        assert r.name.startswith(component.name), f"{r.urn}: child name not derived from {component.name}"


def test_network_alone() -> None:
    def program() -> dict[str, Any]:
        net = Network("t-net", NetworkArgs(
            settings=NetworkSettings("10.40.0.0/16", ("eu-west-1a", "eu-west-1b"), False),
            prefix="t", region=REGION, account_id=ACCOUNT_ID, log_retention_days=365, tags=TAGS))
        return {"vpc": net.vpc_id}

    cap = _run(program)
    _children_parented(cap, "mlops:network:Network")
    assert len(cap.of_type("aws:ec2/natGateway:NatGateway")) == 1
    flow = cap.one("aws:ec2/flowLog:FlowLog")
    assert flow.inputs["trafficType"] == "ALL", flow.urn
    group = cap.one("aws:cloudwatch/logGroup:LogGroup")
    assert group.inputs["kmsKeyId"].startswith("arn:aws:kms:"), group.urn
    for subnet in cap.of_type("aws:ec2/subnet:Subnet"):
        assert subnet.inputs.get("mapPublicIpOnLaunch") in (None, False), subnet.urn
    default_sg = cap.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert not default_sg.inputs.get("ingress") and not default_sg.inputs.get("egress"), default_sg.urn
    for sg in cap.of_type("aws:ec2/securityGroup:SecurityGroup"):
        for rule in sg.inputs.get("ingress", []):
            assert "0.0.0.0/0" not in rule.get("cidrBlocks", []), sg.urn
    endpoints = {r.inputs["serviceName"].rsplit(".", 1)[-1] for r in cap.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")}
    assert {"s3", "dkr", "sts", "logs", "api"} <= endpoints


def test_gpu_cluster_alone() -> None:
    cap = _run(lambda: {"name": _cluster().cluster_name})
    _children_parented(cap, "mlops:gpu_cluster:GpuCluster")
    cluster = cap.one("aws:eks/cluster:Cluster")
    vpc = cluster.inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] and not vpc["endpointPublicAccess"], cluster.urn
    assert cluster.inputs["encryptionConfig"]["resources"] == ["secrets"], cluster.urn
    assert len(cluster.inputs["enabledClusterLogTypes"]) == 5, cluster.urn
    gpu = cap.one("aws:eks/nodeGroup:NodeGroup", "-gpu")
    assert gpu.inputs["amiType"] == "AL2023_x86_64_NVIDIA", gpu.urn
    assert gpu.inputs["scalingConfig"]["minSize"] == 0, gpu.urn
    assert gpu.inputs["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}], gpu.urn
    charts = {r.inputs["chart"]: r for r in cap.of_type("kubernetes:helm.sh/v3:Release")}
    assert {"nvidia-device-plugin", "cluster-autoscaler"} <= set(charts)
    assert all(r.inputs.get("version") for r in charts.values())
    cni = cap.one("aws:eks/addon:Addon", "vpc-cni")
    assert json.loads(cni.inputs["configurationValues"]) == {"enableNetworkPolicy": "true"}, cni.urn


def test_container_registry_alone(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "Dockerfile").write_text("FROM python:3.11-slim\n")

    def program() -> dict[str, Any]:
        reg = ContainerRegistry("t-reg", ContainerRegistryArgs(
            prefix="t", region=REGION, account_id=ACCOUNT_ID, tags=TAGS, protect=True,
            images={"serving": ImageSpec("img/Dockerfile", ("img",))}, root=tmp_path))
        return {"digest": reg.repo_digests["serving"]}

    cap = _run(program)
    repo = cap.one("aws:ecr/repository:Repository")
    assert repo.inputs["imageTagMutability"] == "IMMUTABLE", repo.urn
    assert repo.inputs["imageScanningConfiguration"] == {"scanOnPush": True}, repo.urn
    assert repo.inputs["encryptionConfigurations"][0]["encryptionType"] == "KMS", repo.urn
    assert repo.protect and repo.retain_on_delete, repo.urn
    image = cap.one("docker:index/image:Image")
    assert image.inputs["build"]["dockerfile"] == str(tmp_path / "img" / "Dockerfile"), image.urn
    assert ":src-" in image.inputs["imageName"], image.urn
    assert "@sha256:" in cap.outputs["digest"]


def test_mlflow_server_alone() -> None:
    def program() -> dict[str, Any]:
        server = MlflowServer("t-mlflow", MlflowServerArgs(
            database=DatabaseSettings("db.t4g.small", 20, 50, True, 7, "16"), prefix="t",
            region=REGION, account_id=ACCOUNT_ID, vpc_id="vpc-1", vpc_cidr="10.40.0.0/16",
            private_subnet_ids=SUBNETS, cluster=_cluster(),
            image=f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/t/mlflow@sha256:{'c' * 64}",
            admin_user="admin", admin_password="a-long-enough-password", log_retention_days=365,
            protect=True, tags=TAGS))
        return {"uri": server.tracking_uri}

    cap = _run(program)
    db = cap.one("aws:rds/instance:Instance")
    for key in ("storageEncrypted", "manageMasterUserPassword", "iamDatabaseAuthenticationEnabled",
                "multiAz", "deletionProtection"):
        assert db.inputs[key] is True, f"{db.urn}: {key}"
    assert db.inputs["publiclyAccessible"] is False and "password" not in db.inputs, db.urn
    assert db.protect and db.retain_on_delete, db.urn
    artifacts = cap.one("aws:s3/bucket:Bucket", "artifacts")
    assert artifacts.protect, artifacts.urn
    deployment = cap.one("kubernetes:apps/v1:Deployment")
    container = deployment.inputs["spec"]["template"]["spec"]["containers"][0]
    assert "@sha256:" in container["image"], deployment.urn
    assert deployment.inputs["metadata"]["namespace"] != "default", deployment.urn
    service = cap.one("kubernetes:core/v1:Service")
    assert service.inputs["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internal", service.urn
    assert cap.outputs["uri"].startswith("http://internal-")
    secret = cap.one("kubernetes:core/v1:Secret", "admin")
    assert set(secret.inputs["stringData"]) == {"username", "password"}, secret.urn


def test_mlflow_replicas_share_one_secret_key_and_accept_their_hostnames() -> None:
    """Both replicas read MLFLOW_FLASK_SERVER_SECRET_KEY from one Secret (a token one
    replica signs, the other checks), stable across `up`s and never the password; MLflow
    accepts the Host headers its clients send: the Service DNS names and the NLB's."""
    def program() -> dict[str, Any]:
        server = MlflowServer("t-mlflow", MlflowServerArgs(
            database=DatabaseSettings("db.t4g.small", 20, 50, True, 7, "16"), prefix="t",
            region=REGION, account_id=ACCOUNT_ID, vpc_id="vpc-1", vpc_cidr="10.40.0.0/16",
            private_subnet_ids=SUBNETS, cluster=_cluster(),
            image=f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/t/mlflow@sha256:{'c' * 64}",
            admin_user="admin", admin_password="a-long-enough-password", log_retention_days=365,
            protect=True, tags=TAGS))
        return {"uri": server.tracking_uri}

    first, second = _run(program), _run(program)
    secrets = [c.one("kubernetes:core/v1:Secret", "flask") for c in (first, second)]
    key = secrets[0].inputs["stringData"]["secret-key"]
    assert key == secrets[1].inputs["stringData"]["secret-key"], "the key changed between two ups"
    assert len(key) == 64 and key != "a-long-enough-password"
    assert flask_secret_key("another-long-password") != key
    deployment = first.one("kubernetes:apps/v1:Deployment")
    assert deployment.inputs["spec"]["replicas"] == 2, deployment.urn
    env = {e["name"]: e for e in deployment.inputs["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"]["valueFrom"] == {"secretKeyRef": {
        "name": secrets[0].inputs["metadata"]["name"], "key": "secret-key"}}, deployment.urn
    hosts = env["MLFLOW_SERVER_ALLOWED_HOSTS"]["value"].split(",")
    lb = first.outputs["uri"].removeprefix("http://")
    for host in ("mlflow.mlflow.svc.cluster.local", "mlflow.mlflow.svc", "mlflow.mlflow", "mlflow",
                 lb, "localhost"):
        assert is_allowed_host_header(hosts, host), f"{host} refused by {hosts}"
        assert is_allowed_host_header(hosts, f"{host}:80"), f"{host}:80 refused by {hosts}"
    # Nothing else: the variable replaces MLflow's default list, so it must stay exact.
    for host in ("evil.example.com", "10.40.3.7", f"other.elb.{REGION}.amazonaws.com"):
        assert not is_allowed_host_header(hosts, host), f"{host} accepted by {hosts}"


def test_training_pipeline_alone_takes_the_sdk_definition(sdk_definition: str) -> None:
    def program() -> dict[str, Any]:
        pipe = TrainingPipeline("t-training", TrainingPipelineArgs(
            definition=sdk_definition, prefix="t", region=REGION, account_id=ACCOUNT_ID,
            bucket_arn="arn:aws:s3:::bucket-a", kms_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/k",
            repository_arns=[f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/t/training"],
            credentials_secret_arn="arn:aws:secretsmanager:s", vpc_id="vpc-1",
            vpc_cidr="10.40.0.0/16", s3_prefix_list_id="pl-6da54004", tags=TAGS))
        return {"arn": pipe.pipeline_arn}

    cap = _run(program)
    pipeline = cap.one("aws:sagemaker/pipeline:Pipeline")
    assert pipeline.inputs["pipelineDefinition"] == sdk_definition, pipeline.urn
    assert "Train" in definition_steps(sdk_definition)
    role = cap.one("aws:iam/role:Role")
    assert pipeline.inputs["roleArn"] == role.outputs["arn"], pipeline.urn
    assert cap.outputs["arn"].startswith("arn:aws:sagemaker:")


def _delivery(approval: bool) -> Capture:
    def program() -> dict[str, Any]:
        arn = f"arn:aws:{{}}:{REGION}:{ACCOUNT_ID}:{{}}"
        pipe = DeliveryPipeline("t-delivery", DeliveryPipelineArgs(
            prefix="t", stack="test", region=REGION, account_id=ACCOUNT_ID,
            github_repository="org/repo", github_branch="main", approval_required=approval,
            model_name="m", serving_namespace="serving", rollout_name="model-server",
            serving_url="http://internal-serving", serving_alarm_names=["t-serving-5xx"],
            alarm_topic_arn=arn.format("sns", "t"), alarm_topic_kms_key_arn=arn.format("kms", "key/t"),
            vpc_id="vpc-1", vpc_cidr="10.40.0.0/16",
            private_subnet_ids=SUBNETS, cluster_name="t-cluster",
            cluster_arn=arn.format("eks", "cluster/t"), kubectl_version="1.35.0",
            repository_names={"training": "t/training", "serving": "t/serving"},
            repository_arns={"training": arn.format("ecr", "repository/t/training"),
                             "serving": arn.format("ecr", "repository/t/serving")},
            registry_kms_key_arn=arn.format("kms", "key/r"),
            sagemaker_pipeline_arn=arn.format("sagemaker", "pipeline/t"),
            sagemaker_pipeline_name="t", sagemaker_artifacts_prefix="s3://b/sagemaker", data_uri="s3://b/datasets/m/",
            sagemaker_bucket_arn="arn:aws:s3:::b", sagemaker_kms_key_arn=arn.format("kms", "key/s"),
            mlflow_tracking_uri="http://internal-mlflow",
            mlflow_credentials_secret_arn=arn.format("secretsmanager", "secret:c"),
            mlflow_kms_key_arn=arn.format("kms", "key/m"), log_retention_days=365, protect=False,
            tags=TAGS))
        return {"name": pipe.pipeline_name}

    return _run(program)


@pytest.mark.parametrize("approval", [True, False])
def test_delivery_pipeline_alone(approval: bool) -> None:
    cap = _delivery(approval)
    pipeline = cap.one("aws:codepipeline/pipeline:Pipeline")
    stages = [s["name"] for s in pipeline.inputs["stages"]]
    assert ("Approval" in stages) is approval, pipeline.urn
    assert pipeline.inputs["pipelineType"] == "V2", pipeline.urn
    assert pipeline.inputs["artifactStores"][0]["encryptionKey"]["type"] == "KMS", pipeline.urn
    source = pipeline.inputs["stages"][0]["actions"][0]
    assert source["provider"] == "CodeStarSourceConnection", pipeline.urn
    projects = {r.inputs["source"]["buildspec"]: r for r in cap.of_type("aws:codebuild/project:Project")}
    assert set(projects) == {f"buildspecs/{n}.yml" for n in
                             ("test", "build_images", "train", "deploy", "smoke_test")}
    for spec, project in projects.items():
        privileged = project.inputs["environment"]["privilegedMode"]
        assert privileged is (spec == "buildspecs/build_images.yml"), project.urn
        assert project.inputs["logsConfig"]["cloudwatchLogs"]["status"] == "ENABLED", project.urn
        assert project.inputs["encryptionKey"].startswith("arn:aws:kms:"), project.urn
        assert Path(spec).name, project.urn
    secrets = [v for v in projects["buildspecs/deploy.yml"].inputs["environment"]["environmentVariables"]
               if v["type"] == "SECRETS_MANAGER"]
    assert {v["name"] for v in secrets} == {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
    roles = {r.name: r for r in cap.of_type("aws:iam/role:Role")}
    assert len(roles) == 6  # five stages plus the pipeline: no shared build role
    # Artifacts: images from BuildImages to Train and Deploy (the execution's image
    # parameters, the serving digest); deployment.json from Deploy to SmokeTest (what
    # to restore when the smoke test fails).
    # release.json from Train to Deploy and SmokeTest (the version every later stage acts on).
    actions = {s["name"]: s["actions"][0] for s in pipeline.inputs["stages"]}
    assert actions["BuildImages"]["outputArtifacts"] == ["images"]
    assert actions["Train"]["inputArtifacts"] == ["source", "images"]
    assert actions["Train"]["outputArtifacts"] == ["release"]
    assert actions["Deploy"]["inputArtifacts"] == ["source", "images", "release"]
    for name in ("Train", "Deploy"):
        assert actions[name]["configuration"]["PrimarySource"] == "source", name
    assert actions["Deploy"]["outputArtifacts"] == ["deployment"]
    assert actions["SmokeTest"]["inputArtifacts"] == ["source", "deployment", "release"]
    # The approver approves a named version: Train's exported RELEASE_VERSION.
    assert actions["Train"]["namespace"] == "TrainVariables"
    assert actions["SmokeTest"]["configuration"]["PrimarySource"] == "source"
    produced = [a for s in pipeline.inputs["stages"] for a in s["actions"][0].get("outputArtifacts", [])]
    consumed = {a for s in pipeline.inputs["stages"] for a in s["actions"][0].get("inputArtifacts", [])}
    assert consumed <= set(produced) and len(produced) == len(set(produced))
    # SmokeTest restores the Rollout, so it gets cluster access scoped like Deploy's.
    smoke_env = {v["name"] for v in projects["buildspecs/smoke_test.yml"].inputs["environment"]["environmentVariables"]}
    assert "EKS_CLUSTER_NAME" in smoke_env
    # Kubernetes rights come from the entries' group (bound to a namespaced Role by
    # ModelService), not from an EKS access policy, which has no argoproj.io rules.
    entries = cap.of_type("aws:eks/accessEntry:AccessEntry")
    assert len(entries) == 2 and all(e.inputs["kubernetesGroups"] == ["mlops-deployers"] for e in entries)
    assert not cap.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")


def test_buildspecs_named_by_the_pipeline_exist_in_the_repository() -> None:
    from infra.delivery_pipeline import STAGES

    root = Path(__file__).resolve().parents[2]
    missing = [s.buildspec for s in STAGES if not (root / s.buildspec).is_file()]
    assert not missing, f"DeliveryPipeline names buildspecs that do not exist: {missing}"


def _serving(pool: str) -> Capture:
    def program() -> dict[str, Any]:
        svc = ModelService("t-serving", ModelServiceArgs(
            settings=ServingSettings(pool=pool, namespace="serving", min_replicas=2, max_replicas=4,
                                     cpu="1", memory="2Gi", canary_weight=20, bake_minutes=10,
                                     max_error_rate=0.01, max_latency_p99_ms=500, max_drift_psi=0.2),
            prefix="t", stack="test", model_name="adult-income",
            image=f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/t/serving@sha256:{'d' * 64}",
            mlflow_tracking_uri="http://internal-mlflow", mlflow_admin_user="admin",
            mlflow_admin_password="a-long-enough-password", capture_bucket_arn="arn:aws:s3:::b",
            capture_bucket_name="b", capture_kms_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/k",
            monitor_image=f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/t/training@sha256:{'e' * 64}",
            cluster=_cluster(), vpc_cidr="10.40.0.0/16", tags=TAGS))
        return {"url": svc.url}

    return _run(program)


@pytest.mark.parametrize("pool", ["gpu", "cpu"])
def test_model_service_alone(pool: str) -> None:
    cap = _serving(pool)
    deployment = cap.one("kubernetes:apps/v1:Deployment")
    pod = deployment.inputs["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ping", deployment.urn
    expected_pool = "gpu" if pool == "gpu" else "system"  # the CPU pool is the system pool
    assert pod["nodeSelector"] == {"mlops.platform/pool": expected_pool}, deployment.urn
    assert ("nvidia.com/gpu" in container["resources"]["limits"]) is (pool == "gpu"), deployment.urn
    assert bool(pod.get("tolerations")) is (pool == "gpu"), deployment.urn
    assert container["securityContext"]["readOnlyRootFilesystem"], deployment.urn
    assert not any("valueFrom" in e for e in container["env"]), deployment.urn
    rollout = cap.one("kubernetes:argoproj.io/v1alpha1:Rollout")
    canary = rollout.inputs["spec"]["strategy"]["canary"]
    assert canary["steps"][0] == {"setWeight": 20}, rollout.urn
    assert canary["analysis"]["templates"][0]["templateName"] == "model-server-canary", rollout.urn
    assert rollout.inputs["spec"]["workloadRef"]["name"] == deployment.inputs["metadata"]["name"], rollout.urn
    hpa = cap.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
    assert hpa.inputs["spec"]["scaleTargetRef"]["kind"] == "Rollout", hpa.urn
    pdb = cap.one("kubernetes:policy/v1:PodDisruptionBudget")
    assert pdb.inputs["spec"]["minAvailable"] == 1, pdb.urn
    for service in cap.of_type("kubernetes:core/v1:Service"):
        spec = service.inputs["spec"]
        if spec["type"] == "LoadBalancer":
            annotations = service.inputs["metadata"]["annotations"]
            assert annotations["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internal", service.urn
            assert spec["loadBalancerSourceRanges"] == ["10.40.0.0/16"], service.urn
    releases = {r.inputs["chart"]: r.inputs["version"] for r in cap.of_type("kubernetes:helm.sh/v3:Release")}
    assert releases["argo-rollouts"] and releases["prometheus"]
    monitor = cap.one("kubernetes:batch/v1:CronJob")
    job = monitor.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert job["command"][:4] == ["python", "-m", "pipeline", "monitor"], monitor.urn
    assert "--publish-cloudwatch" in job["command"] and job["args"] == ["--capture=s3://b/capture/test/adult-income"], monitor.urn
    assert job["image"].endswith("e" * 64), monitor.urn
    policy = json.loads(cap.one("aws:iam/rolePolicy:RolePolicy", "monitor").inputs["policy"])
    put = next(st for st in policy["Statement"] if st["Action"] == ["cloudwatch:PutMetricData"])
    assert put["Condition"]["StringEquals"]["cloudwatch:namespace"] == "MLOps/Monitoring", monitor.urn


def test_monitoring_alone_wires_every_alarm_and_the_retrain_trigger() -> None:
    def program() -> dict[str, Any]:
        mon = Monitoring("t-monitoring", MonitoringArgs(
            settings=AlarmSettings(5, 50, 500, 0.25, 0.2, 0.05, 60, "ops@example.com", True),
            prefix="t", stack="test", region=REGION, account_id=ACCOUNT_ID, model_name="m",
            cluster_name="t-cluster", codepipeline_name="t-delivery",
            codepipeline_arn=f"arn:aws:codepipeline:{REGION}:{ACCOUNT_ID}:t-delivery",
            sagemaker_pipeline_arn=f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:pipeline/t", tags=TAGS))
        return {"topic": mon.topic_arn}

    cap = _run(program)
    topic = cap.one("aws:sns/topic:Topic")
    assert topic.inputs["kmsMasterKeyId"].startswith("arn:aws:kms:"), topic.urn
    for alarm in cap.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        assert alarm.inputs["alarmActions"] == [cap.outputs["topic"]], alarm.urn
    rules = {r.name: r for r in cap.of_type("aws:cloudwatch/eventRule:EventRule")}
    retrain = json.loads(rules["t-monitoring-retrain"].inputs["eventPattern"])
    drift_arns = {a.outputs["arn"] for a in cap.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
                  if a.name.split("t-monitoring-")[1] in ("feature-drift", "prediction-drift", "performance-drop")}
    assert set(retrain["resources"]) == drift_arns
    target = cap.one("aws:cloudwatch/eventTarget:EventTarget", "retrain")
    assert target.inputs["arn"].endswith(":t-delivery"), target.urn
    starter = cap.one("aws:iam/rolePolicy:RolePolicy", "retrain")
    doc = json.loads(starter.inputs["policy"])
    assert doc["Statement"] == [{"Effect": "Allow", "Action": ["codepipeline:StartPipelineExecution"],
                                 "Resource": f"arn:aws:codepipeline:{REGION}:{ACCOUNT_ID}:t-delivery"}]
    for key in ("codepipeline-failed", "sagemaker-failed"):
        sns_target = cap.one("aws:cloudwatch/eventTarget:EventTarget", f"{key}-to-sns")
        assert sns_target.inputs["arn"] == cap.outputs["topic"], sns_target.urn
    assert cap.one("aws:sns/topicSubscription:TopicSubscription").inputs["protocol"] == "email"
