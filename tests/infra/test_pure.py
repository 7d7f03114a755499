"""Pure logic of the platform, tested without Pulumi: policy documents, naming and
subnet math, Kubernetes hardening, alarm specs, canary analysis, Terraform-plan
conversion, image tags and the checkov skip judge."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from infra import policies
from infra.checks import Finding, Skip, load_skips, unexpected, unused
from infra.config import AlarmSettings, ServingSettings
from infra.delivery_pipeline import STAGES, codebuild_policy, stage_layout
from infra.gpu_cluster import autoscaler_policy
from infra.kube import container_security_context, kubeconfig, pool_placement, resources
from infra.mlflow_server import mlflow_pod_policy
from infra.model_service import (analysis_metrics, canary_steps, mlflow_credentials_file,
                                 monitor_policy)
from infra.monitoring import alarm_specs, pipeline_failure_patterns, retrain_event_pattern
from infra.naming import aws_name, subnet_cidrs
from infra.registry import ImageSpec, content_tag
from infra.tfplan import convert_value, snake, terraform_plan
from infra.training_pipeline import training_role_policy
from pipeline import metric_names as mn

ACCT, REGION = "123456789012", "eu-west-1"
BUCKET = "arn:aws:s3:::bucket-a"
KEY = f"arn:aws:kms:{REGION}:{ACCT}:key/k"


def _all_documents() -> dict[str, dict]:
    repos = [f"arn:aws:ecr:{REGION}:{ACCT}:repository/r"]
    docs = {
        "sagemaker": training_role_policy(ACCT, REGION, "mlops-dev", f"arn:aws:iam::{ACCT}:role/sm",
                                          BUCKET, KEY, "arn:aws:secretsmanager:s", *repos),
        "autoscaler": autoscaler_policy("c", ACCT, REGION),
        "mlflow-pod": mlflow_pod_policy(BUCKET, KEY, "arn:aws:secretsmanager:db", KEY),
        "monitor-job": monitor_policy(BUCKET, KEY),
        "start-pipeline": policies.start_pipeline_policy(f"arn:aws:codepipeline:{REGION}:{ACCT}:p"),
        "codepipeline": policies.codepipeline_policy(bucket_arn=BUCKET, kms_key_arn=KEY,
                                                     connection_arn="arn:aws:codeconnections:c",
                                                     codebuild_project_arns=["arn:aws:codebuild:p"]),
    }
    for stage in STAGES:
        docs[f"codebuild-{stage.name}"] = codebuild_policy(
            stage, log_group_arn="arn:aws:logs:lg", bucket_arn=BUCKET, key_arn=KEY, region=REGION,
            account_id=ACCT, repository_arns=repos, registry_key_arn=KEY,
            sagemaker_pipeline_arn="arn:aws:sagemaker:p", sagemaker_bucket_arn=BUCKET,
            sagemaker_key_arn=KEY, cluster_arn="arn:aws:eks:c", mlflow_secret_arn="arn:aws:sm:s",
            mlflow_key_arn=KEY, topic_arn="arn:aws:sns:t", topic_key_arn=KEY, alarm_names=["a"],
            subnet_ids=["subnet-1", "subnet-2"], security_group_id="sg-1")
    return docs


@pytest.mark.parametrize("name", sorted(_all_documents()))
def test_every_policy_document_is_least_privilege(name: str) -> None:
    assert policies.policy_violations(_all_documents()[name]) == [], name


def test_policy_violations_catches_wildcards_and_unscoped_writes() -> None:
    bad = {"Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::x"},
        {"Effect": "Allow", "Action": ["s3:*"], "Resource": "arn:aws:s3:::x"},
        {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": "*"},
        {"Effect": "Allow", "NotAction": ["iam:*"], "Resource": "arn:aws:s3:::x"},
        {"Effect": "Allow", "Action": ["ec2:DescribeVpcs"], "Resource": "*"},
    ]}
    problems = policies.policy_violations(bad)
    assert len(problems) == 4
    assert any("'*'" in p for p in problems) and any("NotAction" in p for p in problems)


def test_only_the_image_build_stage_may_push_images() -> None:
    docs = _all_documents()
    pushers = [n for n, d in docs.items() if "ecr:PutImage" in json.dumps(d)]
    assert pushers == ["codebuild-BuildImages"]
    assert "codepipeline:StartPipelineExecution" in json.dumps(docs["start-pipeline"])
    assert len(docs["start-pipeline"]["Statement"]) == 1


def test_irsa_trust_pins_service_account_and_audience() -> None:
    trust = policies.irsa_trust("arn:aws:iam::1:oidc-provider/x", "https://oidc.eks/id/ABC", "ns", "sa")
    condition = trust["Statement"][0]["Condition"]["StringEquals"]
    assert condition == {"oidc.eks/id/ABC:sub": "system:serviceaccount:ns:sa",
                         "oidc.eks/id/ABC:aud": "sts.amazonaws.com"}


def test_kms_key_policy_has_no_star_action_and_scopes_services() -> None:
    doc = policies.kms_key_policy(ACCT, REGION, [f"logs.{REGION}.amazonaws.com", "events.amazonaws.com"])
    actions = [a for s in doc["Statement"] for a in s["Action"]]
    assert "kms:*" not in actions and "*" not in actions
    assert all("Condition" in s for s in doc["Statement"][1:])
    assert all(s["Principal"] != "*" for s in doc["Statement"])


def test_service_trust_uses_plain_string_principals() -> None:
    doc = policies.service_trust("a.amazonaws.com", "b.amazonaws.com")
    assert [s["Principal"]["Service"] for s in doc["Statement"]] == ["a.amazonaws.com", "b.amazonaws.com"]


def test_subnets_are_disjoint_inside_the_vpc() -> None:
    private, public = subnet_cidrs("10.40.0.0/16", 3)
    nets = [ipaddress.ip_network(c) for c in private + public]
    vpc = ipaddress.ip_network("10.40.0.0/16")
    assert all(n.subnet_of(vpc) for n in nets)
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])
    assert private[0] == "10.40.0.0/19" and public[0] == "10.40.128.0/22"


@pytest.mark.parametrize(("cidr", "zones"), [("10.0.0.0/24", 2), ("10.0.0.0/16", 0), ("10.0.0.0/16", 5)])
def test_subnet_math_refuses_what_does_not_fit(cidr: str, zones: int) -> None:
    with pytest.raises(ValueError):
        subnet_cidrs(cidr, zones)


def test_names_fit_their_limits_and_stay_stable() -> None:
    long = aws_name("iam_role", "mlops-prod", "x" * 80)
    assert len(long) == 64 and long == aws_name("iam_role", "mlops-prod", "x" * 80)
    assert aws_name("s3", "Mlops_Dev", "Artifacts") == "mlops-dev-artifacts"
    with pytest.raises(KeyError):
        aws_name("nonsense", "x")


def test_kubernetes_hardening_blocks() -> None:
    ctx = container_security_context()
    assert ctx["runAsNonRoot"] and ctx["runAsUser"] >= 10000 and ctx["readOnlyRootFilesystem"]
    assert ctx["capabilities"] == {"drop": ["ALL"]} and not ctx["allowPrivilegeEscalation"]
    assert resources("1", "2Gi", gpus=1)["limits"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in resources("1", "2Gi")["limits"]
    assert pool_placement("gpu")["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert "tolerations" not in pool_placement("cpu")
    config = json.loads(kubeconfig("c", "https://e", "Q0E=", REGION))
    assert config["users"][0]["user"]["exec"]["command"] == "aws"
    assert "token" not in json.dumps(config["users"][0]["user"]).replace("get-token", "")


SERVING = ServingSettings(pool="gpu", namespace="serving", min_replicas=3, max_replicas=6, cpu="2",
                          memory="8Gi", canary_weight=10, bake_minutes=15, max_error_rate=0.01,
                          max_latency_p99_ms=300, max_drift_psi=0.2)


def test_canary_steps_start_small_and_bake() -> None:
    steps = canary_steps(SERVING)
    assert steps[0] == {"setWeight": 10} and steps[1] == {"pause": {"duration": "15m"}}
    assert steps[-1] == {"setWeight": 100}


def test_analysis_reads_the_servers_metrics_with_stack_thresholds() -> None:
    metrics = {m["name"]: m for m in analysis_metrics(SERVING)}
    assert "mlserve_requests_total" in metrics["error-rate"]["provider"]["prometheus"]["query"]
    assert "mlserve_request_latency_seconds_bucket" in metrics["latency-p99-ms"]["provider"]["prometheus"]["query"]
    assert "mlserve_prediction_drift_psi" in metrics["prediction-drift-psi"]["provider"]["prometheus"]["query"]
    assert metrics["error-rate"]["failureCondition"].endswith("> 0.01")
    assert metrics["latency-p99-ms"]["successCondition"].endswith("<= 300.0")
    assert metrics["prediction-drift-psi"]["successCondition"].endswith("<= 0.2")


def test_mlflow_credentials_file_escapes_interpolation() -> None:
    import configparser

    parser = configparser.ConfigParser()
    parser.read_string(mlflow_credentials_file("admin", "p%ss"))
    assert parser["mlflow"]["mlflow_tracking_password"] == "p%ss"


ALARMS = AlarmSettings(errors_5xx=5, errors_4xx=50, latency_p99_ms=300, feature_drift_psi=0.25,
                       prediction_drift_psi=0.2, performance_drop=0.03, gpu_idle_minutes=60,
                       email="", retrain_on_drift=True)


def test_alarms_read_exactly_the_published_metric_names() -> None:
    specs = {s.key: s for s in alarm_specs(ALARMS, model_name="m", stack="prod", cluster_name="c")}
    assert specs["serving-5xx"].metric == mn.INVOCATION_5XX_ERRORS
    assert specs["serving-4xx"].metric == mn.INVOCATION_4XX_ERRORS
    assert specs["latency-p99"].metric == mn.MODEL_LATENCY_MS
    assert specs["latency-p99"].extended_statistic == "p99" and specs["latency-p99"].statistic is None
    assert specs["feature-drift"].metric == mn.FEATURE_DRIFT_SCORE
    assert specs["prediction-drift"].metric == mn.PREDICTION_DRIFT_SCORE
    assert specs["performance-drop"].metric == mn.PERFORMANCE_DROP
    for key in ("serving-5xx", "feature-drift", "performance-drop"):
        assert specs[key].dimensions == {mn.DIM_MODEL_NAME: "m", mn.DIM_STACK: "prod"}
    assert {k for k, s in specs.items() if s.retrain} == {"feature-drift", "prediction-drift",
                                                          "performance-drop"}
    assert specs["gpu-idle"].dimensions == {"ClusterName": "c"}


def test_event_patterns() -> None:
    retrain = json.loads(retrain_event_pattern(["arn:b", "arn:a"]))
    assert retrain["resources"] == ["arn:a", "arn:b"]
    assert retrain["detail"]["state"]["value"] == ["ALARM"]
    failed = {k: json.loads(v) for k, v in pipeline_failure_patterns("p", "arn:sm").items()}
    assert failed["codepipeline-failed"]["detail"] == {"state": ["FAILED"], "pipeline": ["p"]}
    assert failed["sagemaker-failed"]["detail"]["pipelineArn"] == ["arn:sm"]


def test_approval_stage_sits_before_deploy_only_when_asked() -> None:
    assert stage_layout(True) == ["Source", "Test", "BuildImages", "Train", "Approval", "Deploy", "SmokeTest"]
    assert "Approval" not in stage_layout(False)
    assert [s.name for s in STAGES if s.privileged] == ["BuildImages"]


def test_content_tag_follows_the_sources(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    (tmp_path / "app" / "a.py").write_text("print(1)\n")
    spec = ImageSpec("Dockerfile", ("app",))
    first = content_tag(tmp_path, spec)
    assert first == content_tag(tmp_path, spec) and first.startswith("src-")
    (tmp_path / "app" / "a.py").write_text("print(2)\n")
    assert content_tag(tmp_path, spec) != first
    with pytest.raises(FileNotFoundError, match="missing/Dockerfile"):
        content_tag(tmp_path, ImageSpec("missing/Dockerfile", ()))


def test_terraform_conversion_renames_blocks_and_records_references() -> None:
    assert snake("kmsMasterKeyId") == "kms_master_key_id"
    assert convert_value({"rules": [{"applyX": {"kmsKeyId": "k"}}], "tags": {"CamelTag": "v"}}) == {
        "rule": [{"apply_x": [{"kms_key_id": "k"}]}], "tags": {"CamelTag": "v"}}
    bucket = SimpleNamespace(custom=True, type="aws:s3/bucket:Bucket", name="b", id="bucket-b-123",
                             inputs={}, outputs={"arn": "arn:aws:s3:::bucket-b-123"})
    block = SimpleNamespace(custom=True, type="aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
                            name="b-pab", id="bucket-b-123", inputs={"bucket": "bucket-b-123"}, outputs={})
    plan = terraform_plan([bucket, block])
    conf = {r["address"]: r for r in plan["configuration"]["root_module"]["resources"]}
    refs = conf["aws_s3_bucket_public_access_block.b-pab"]["expressions"]["bucket"]["references"]
    assert refs == ["aws_s3_bucket.b.id", "aws_s3_bucket.b"]
    unknown = SimpleNamespace(custom=True, type="aws:foo/bar:Bar", name="x", id="x", inputs={}, outputs={})
    with pytest.raises(KeyError, match="aws:foo/bar:Bar"):
        terraform_plan([unknown])


def test_skip_judge_flags_new_findings_and_stale_skips(tmp_path: Path) -> None:
    skip = Skip("terraform_plan", "CKV_1", ("dev",), ("aws_s3_bucket.*-logs",), "why")
    logs, data = Finding("CKV_1", "aws_s3_bucket.a-logs", ""), Finding("CKV_1", "aws_s3_bucket.a-data", "")
    assert unexpected("dev", "terraform_plan", [logs, data], [skip]) == [data]
    assert unexpected("prod", "terraform_plan", [logs], [skip]) == [logs]
    assert unused([skip], {("dev", "terraform_plan"): [data]}) == [skip]
    assert unused([skip], {("dev", "terraform_plan"): [logs]}) == []
    bad = tmp_path / "skips.yaml"
    bad.write_text("terraform_plan:\n  CKV_2: {stacks: [dev], resources: ['*']}\n")
    with pytest.raises(ValueError, match="CKV_2 needs"):
        load_skips(bad)
    assert all(s.reason for s in load_skips())
