"""Every boto3 call of pipeline.delivery against moto's server on 127.0.0.1.

Where moto cannot produce a state (Failed/Stopped executions, a still-running scan) or
lacks the call (list_pipeline_execution_steps), a RecordingClient asserts the exact
request instead; a mock proves our calls are well-formed, not that AWS agrees.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from pipeline.delivery import alarms, ecr_scan, gate_report, notify, sagemaker_runs
from pipeline.sagemaker_compiler import GATE_REFUSED_PREFIX

from .conftest import RecordingClient

ROLE = "arn:aws:iam::123456789012:role/mlops-sagemaker"
# moto stores the definition; a one-step shape keeps the SDK out of these tests.
DEFINITION = json.dumps({"Version": "2020-12-01", "Parameters": [{"Name": "GitCommit", "Type": "String"}], "Steps": [{"Name": "Noop", "Type": "Fail", "Arguments": {"ErrorMessage": "x"}}]})


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# --- SageMaker pipeline executions ---------------------------------------------------


def test_start_and_wait_against_moto(aws: Any, moto_endpoint: str) -> None:
    sm = aws("sagemaker")
    sm.create_pipeline(PipelineName="mlops-dev-training", PipelineDefinition=DEFINITION, RoleArn=ROLE)
    arn = sagemaker_runs.start_execution("mlops-dev-training", {"GitCommit": "abc123"}, display_name="commit-abc123", endpoint_url=moto_endpoint)
    assert arn.startswith("arn:aws:sagemaker:us-east-1:") and "mlops-dev-training" in arn
    described = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
    assert described["PipelineExecutionDisplayName"] == "commit-abc123"
    params = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
    assert params == [{"Name": "GitCommit", "Value": "abc123"}]
    result = sagemaker_runs.wait_for_execution(arn, timeout_s=60, poll_s=1, endpoint_url=moto_endpoint)
    assert result.status == "Succeeded" and result.polls == 1


def test_start_refuses_missing_pipeline(aws: Any, moto_endpoint: str) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        sagemaker_runs.start_execution("no-such-pipeline", {}, endpoint_url=moto_endpoint)
    with pytest.raises(ValueError, match="pipeline_name"):
        sagemaker_runs.start_execution("", {}, endpoint_url=moto_endpoint)


def test_wait_polls_until_succeeded() -> None:
    clock = FakeClock()
    client = RecordingClient({"describe_pipeline_execution": [{"PipelineExecutionStatus": "Executing"}, {"PipelineExecutionStatus": "Executing"}, {"PipelineExecutionStatus": "Succeeded"}]})
    result = sagemaker_runs.wait_for_execution("arn:x/execution/e1", timeout_s=600, poll_s=30, client=client, sleep=clock.sleep, clock=clock)
    assert result.polls == 3 and clock.sleeps == [30, 30]
    assert client.calls[0] == ("describe_pipeline_execution", {"PipelineExecutionArn": "arn:x/execution/e1"})


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_wait_fails_on_failed_or_stopped(status: str) -> None:
    client = RecordingClient({"describe_pipeline_execution": [{"PipelineExecutionStatus": status, "FailureReason": "Step Train failed: CUDA OOM"}]})
    with pytest.raises(sagemaker_runs.ExecutionFailed, match="CUDA OOM") as info:
        sagemaker_runs.wait_for_execution("arn:x/execution/e1", timeout_s=60, client=client)
    assert info.value.status == status


def test_wait_times_out_and_stops_the_execution() -> None:
    # moto implements neither a long-running execution nor stop_pipeline_execution.
    clock = FakeClock()
    client = RecordingClient({"describe_pipeline_execution": [{"PipelineExecutionStatus": "Executing"}], "stop_pipeline_execution": [{}]})
    with pytest.raises(sagemaker_runs.ExecutionFailed, match="after 90 s") as info:
        sagemaker_runs.wait_for_execution("arn:x/execution/e1", timeout_s=90, poll_s=30, client=client, sleep=clock.sleep, clock=clock)
    assert info.value.status == "TimedOut"
    operation, request = client.calls[-1]
    assert operation == "stop_pipeline_execution" and request["PipelineExecutionArn"] == "arn:x/execution/e1"
    assert request["ClientRequestToken"]


def test_failed_steps_and_gate_refusal_from_a_recorded_step_list() -> None:
    # moto does not implement list_pipeline_execution_steps: the double records the request.
    message = f"{GATE_REFUSED_PREFIX} ['roc_auc 0.81 below floor 0.85', 'slice sex=Female regressed 0.04']"
    client = RecordingClient(
        {
            "list_pipeline_execution_steps": [
                {"PipelineExecutionSteps": [{"StepName": "Train", "StepStatus": "Succeeded"}], "NextToken": "t2"},
                {"PipelineExecutionSteps": [{"StepName": "GateRefused", "StepStatus": "Failed", "FailureReason": message}]},
            ]
        }
    )
    reasons = sagemaker_runs.failed_step_reasons("arn:x/execution/e1", client=client)
    assert reasons == {"GateRefused": message}
    assert client.calls == [
        ("list_pipeline_execution_steps", {"PipelineExecutionArn": "arn:x/execution/e1", "SortOrder": "Ascending"}),
        ("list_pipeline_execution_steps", {"PipelineExecutionArn": "arn:x/execution/e1", "SortOrder": "Ascending", "NextToken": "t2"}),
    ]
    refusal = sagemaker_runs.gate_refusal_reason(reasons)
    assert refusal is not None and "below floor 0.85" in refusal
    assert sagemaker_runs.gate_refusal_reason({"Train": "OOM"}, "Step Train failed") is None


# --- gate outcome in S3 -----------------------------------------------------------------


def test_read_gate_outcome_from_s3(aws: Any, moto_endpoint: str) -> None:
    s3 = aws("s3")
    s3.create_bucket(Bucket="mlops-artifacts")
    arn = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/abc123"
    uri = gate_report.evaluation_uri("s3://mlops-artifacts/pipeline/", arn)
    assert uri == "s3://mlops-artifacts/pipeline/abc123/EvaluateAndGate/evaluation/evaluation.json"
    document = {"gate": {"passed": False, "reasons": ["roc_auc 0.80 below floor 0.85"]}, "metrics": {"roc_auc": 0.8}}
    s3.put_object(Bucket="mlops-artifacts", Key=uri.split("/", 3)[3], Body=json.dumps(document).encode())
    outcome = gate_report.read_gate_outcome(uri, endpoint_url=moto_endpoint)
    assert outcome.passed is False and outcome.reasons == ("roc_auc 0.80 below floor 0.85",)
    assert "REFUSED" in outcome.render() and "roc_auc = 0.8" in outcome.render()


def test_gate_outcome_refuses_bad_documents(aws: Any, moto_endpoint: str) -> None:
    s3 = aws("s3")
    s3.create_bucket(Bucket="mlops-bad")
    s3.put_object(Bucket="mlops-bad", Key="e.json", Body=b"not json")
    with pytest.raises(ValueError, match="not JSON"):
        gate_report.read_gate_outcome("s3://mlops-bad/e.json", endpoint_url=moto_endpoint)
    for bad in ({}, {"gate": {"passed": "yes"}}, {"gate": {"passed": True, "reasons": "x"}}):
        with pytest.raises(ValueError, match="gate"):
            gate_report.parse_evaluation(bad)
    with pytest.raises(ValueError, match="s3://"):
        gate_report.read_gate_outcome("/tmp/e.json")


# --- ECR scan findings --------------------------------------------------------------------


def push_image(ecr: Any, repository: str, tag: str) -> str:
    ecr.create_repository(repositoryName=repository, imageScanningConfiguration={"scanOnPush": True}, imageTagMutability="IMMUTABLE")
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "config": {"digest": "sha256:" + "c" * 64, "size": 1, "mediaType": "application/vnd.docker.container.image.v1+json"}, "layers": []})
    return str(ecr.put_image(repositoryName=repository, imageManifest=manifest, imageTag=tag)["image"]["imageId"]["imageDigest"])


def test_scan_passes_without_critical_findings(aws: Any, moto_endpoint: str) -> None:
    ecr = aws("ecr")
    pushed = push_image(ecr, "mlops-serving", "abc123")
    digest = ecr_scan.image_digest("mlops-serving", "abc123", endpoint_url=moto_endpoint)
    assert digest == pushed
    ecr.start_image_scan(repositoryName="mlops-serving", imageId={"imageDigest": digest})
    result = ecr_scan.scan_findings("mlops-serving", digest, endpoint_url=moto_endpoint)
    # moto's static result has one HIGH finding: shipped under the default policy ...
    assert result.passed and result.counts == {"HIGH": 1}
    # ... and refused when the policy also blocks HIGH.
    strict = ecr_scan.scan_findings("mlops-serving", digest, fail_on=("CRITICAL", "HIGH"), endpoint_url=moto_endpoint)
    assert not strict.passed and strict.blocking == {"HIGH": 1}


def test_scan_refuses_critical_findings(aws: Any, moto_endpoint: str) -> None:
    ecr = aws("ecr")
    digest = push_image(ecr, "mlops-training", "abc123")
    result_doc = {
        "imageScanFindings": {"findings": [], "findingSeverityCounts": {"CRITICAL": 2, "MEDIUM": 3}},
        "registryId": "123456789012",
        "repositoryName": "mlops-training",
        "imageId": {"imageDigest": digest},
        "imageScanStatus": {"status": "COMPLETE", "description": "done"},
    }
    requests.post(f"{moto_endpoint}/moto-api/static/ecr/scan-finding-results", json={"results": [result_doc], "region": "us-east-1"}, timeout=10).raise_for_status()
    ecr.start_image_scan(repositoryName="mlops-training", imageId={"imageDigest": digest})
    result = ecr_scan.scan_findings("mlops-training", digest, endpoint_url=moto_endpoint)
    assert not result.passed and result.blocking == {"CRITICAL": 2}
    assert "REFUSED (2 CRITICAL)" in result.render()


def test_scan_waits_then_times_out_or_fails() -> None:
    clock = FakeClock()
    pending = RecordingClient({"describe_image_scan_findings": [{"imageScanStatus": {"status": "IN_PROGRESS"}}]})
    pending.exceptions = type("E", (), {"ScanNotFoundException": KeyError})  # type: ignore[attr-defined]
    with pytest.raises(TimeoutError, match="IN_PROGRESS"):
        ecr_scan.scan_findings("r", "sha256:" + "d" * 64, timeout_s=30, poll_s=10, client=pending, sleep=clock.sleep, clock=clock)
    assert pending.calls[0] == ("describe_image_scan_findings", {"repositoryName": "r", "imageId": {"imageDigest": "sha256:" + "d" * 64}})
    failed = RecordingClient({"describe_image_scan_findings": [{"imageScanStatus": {"status": "FAILED", "description": "unsupported layer"}}]})
    failed.exceptions = pending.exceptions  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="unsupported layer"):
        ecr_scan.scan_findings("r", "sha256:" + "d" * 64, client=failed)
    with pytest.raises(ValueError, match="digest"):
        ecr_scan.scan_findings("r", "latest", client=failed)
    with pytest.raises(ValueError, match="unknown severities"):
        ecr_scan.judge_findings("r", "sha256:x", {}, fail_on=("SEVERE",))


def test_image_digest_refuses_missing_tag(aws: Any, moto_endpoint: str) -> None:
    from botocore.exceptions import ClientError

    ecr = aws("ecr")
    push_image(ecr, "mlops-serving", "abc123")
    with pytest.raises(ClientError, match="ImageNotFound"):
        ecr_scan.image_digest("mlops-serving", "nope", endpoint_url=moto_endpoint)


# --- CloudWatch alarms ------------------------------------------------------------------


def put_alarm(cw: Any, name: str) -> None:
    cw.put_metric_alarm(
        AlarmName=name, MetricName="Invocation5XXErrors", Namespace="MLOps/Serving", Statistic="Sum", Period=60,
        EvaluationPeriods=1, Threshold=10, ComparisonOperator="GreaterThanThreshold",
        AlarmActions=["arn:aws:sns:us-east-1:123456789012:mlops-alarms"],
    )


def test_alarm_states_and_firing(aws: Any, moto_endpoint: str) -> None:
    cw = aws("cloudwatch")
    put_alarm(cw, "mlops-dev-serving-5xx")
    put_alarm(cw, "mlops-dev-serving-latency-p99")
    # moto stores alarms without evaluating them: set the state the way AWS would.
    cw.set_alarm_state(AlarmName="mlops-dev-serving-5xx", StateValue="ALARM", StateReason="Threshold Crossed: 14 > 10")
    states = alarms.alarm_states(prefix="mlops-dev-serving", endpoint_url=moto_endpoint)
    assert {s.name for s in states} == {"mlops-dev-serving-5xx", "mlops-dev-serving-latency-p99"}
    fired = alarms.firing(states)
    assert [(a.name, a.reason) for a in fired] == [("mlops-dev-serving-5xx", "Threshold Crossed: 14 > 10")]
    named = alarms.alarm_states(["mlops-dev-serving-latency-p99"], endpoint_url=moto_endpoint)
    assert alarms.firing(named) == []


def test_alarm_states_refuse_unknown_names(aws: Any, moto_endpoint: str) -> None:
    with pytest.raises(LookupError, match="mlops-typo"):
        alarms.alarm_states(["mlops-typo"], endpoint_url=moto_endpoint)
    with pytest.raises(ValueError, match="names or a name prefix"):
        alarms.alarm_states(endpoint_url=moto_endpoint)


# --- SNS --------------------------------------------------------------------------------


def test_notify_publishes_stage_outcome(aws: Any, moto_endpoint: str) -> None:
    sns, sqs = aws("sns"), aws("sqs")
    topic = sns.create_topic(Name="mlops-dev-alarms")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="listener")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    message_id = notify.notify_stage(topic, "train", False, "gate refused: roc_auc below floor", stack="dev", endpoint_url=moto_endpoint)
    assert message_id
    (received,) = sqs.receive_message(QueueUrl=queue_url, MessageAttributeNames=["All"])["Messages"]
    body = json.loads(received["Body"])
    assert body == {"stage": "train", "outcome": "failed", "detail": "gate refused: roc_auc below floor", "stack": "dev"}
    assert received["MessageAttributes"]["outcome"]["StringValue"] == "failed"
    with pytest.raises(ValueError, match="topic ARN"):
        notify.notify_stage("mlops-dev-alarms", "train", True, "")
