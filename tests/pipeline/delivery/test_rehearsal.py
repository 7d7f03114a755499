"""The local rehearsal end to end, and every injected fault stopping it with the registry intact.

One store per module: the first rehearsal (first model, no previous champion) promotes
v1; every fault scenario after it must leave the aliases exactly where they were. Each
scenario trains a distinct small model (cached steps make it ~4 s) so the champion
really moves before the fault hits.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from pipeline.delivery.canary import CanaryConfig
from pipeline.delivery.rehearsal import RehearsalConfig, aliases, rehearse
from pipeline.exit_codes import ExitCode
from pipeline.schema import DEFAULT_DATASET

from .conftest import RecordingClient
from .test_aws_clients import push_image

pytestmark = pytest.mark.slow

CANARY = CanaryConfig(weight_percent=25, bake_s=60, max_error_rate=0.02, max_latency_p99_ms=2000, max_drift_psi=0.5, min_requests=10)


@dataclass
class SmokeResult:
    passed: bool
    checks: list[str]

    def __str__(self) -> str:
        return "; ".join(self.checks)


def smoke(expected_probability: float | None = None) -> Any:
    """A real smoke test against the canary: health, version route, one known row."""

    def check(url: str, version: str) -> SmokeResult:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        checks, ok = [], True
        with opener.open(url + "/ping", timeout=10) as r:
            ok &= r.status == 200
            checks.append(f"ping {r.status}")
        with opener.open(url + "/version", timeout=10) as r:
            served = json.loads(r.read())["model_version"]
            ok &= str(served) == str(version)
            checks.append(f"version {served} (expected {version})")
        row = {"age": 39, "workclass": "State-gov", "fnlwgt": 77516, "education": "Bachelors", "education_num": 13, "marital_status": "Never-married", "occupation": "Adm-clerical", "relationship": "Not-in-family", "race": "White", "sex": "Male", "capital_gain": 2174, "capital_loss": 0, "hours_per_week": 40, "native_country": "United-States"}
        request = urllib.request.Request(url + "/invocations", data=json.dumps({"dataframe_records": [row]}).encode(), headers={"Content-Type": "application/json"})
        with opener.open(request, timeout=30) as r:
            probability = json.loads(r.read())["probabilities"][0]
        if expected_probability is not None:
            ok &= abs(probability - expected_probability) < 1e-6
            checks.append(f"known row probability {probability:.4f} (expected {expected_probability:.4f})")
        return SmokeResult(ok, checks)

    return check


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import pandas as pd

    from pipeline.local_store import LocalStore

    root = tmp_path_factory.mktemp("rehearsal")
    data = root / "sample.csv"
    pd.read_csv(DEFAULT_DATASET).sample(3000, random_state=0).to_csv(data, index=False)
    store = LocalStore(root / "store").ensure()
    return {"data": data, "store": store, "n": iter(range(41, 200))}


def config(world: dict[str, Any], *, new_model: bool = True, **overrides: Any) -> RehearsalConfig:
    from pipeline.runner import RunConfig
    from pipeline.steps.gate import GateThresholds
    from training.model import Hyperparameters

    gate = overrides.pop("gate", None) or GateThresholds(bootstrap_samples=100, min_roc_auc=0.7, auc_tolerance=0.05, slice_tolerance=0.1, max_equal_opportunity_difference=0.6, max_demographic_parity_difference=0.6)
    trees = next(world["n"]) if new_model else 40
    run = RunConfig(data=world["data"], store=world["store"], hyperparameters=Hyperparameters(n_estimators=trees), gate=gate)
    settings: dict[str, Any] = dict(run_config=run, canary=CANARY, replay_data=world["data"], log_dir=world["store"].reports_dir / "rehearsal", replay_requests=120, windows=2)
    settings.update(overrides)
    return RehearsalConfig(**settings)


def statuses(result: Any) -> dict[str, str]:
    return {o.stage: o.status for o in result.outcomes}


@pytest.fixture(scope="module")
def first_release(world: dict[str, Any]) -> Any:
    lines: list[str] = []
    result = rehearse(config(world, new_model=False), print_line=lines.append)
    return result, lines


def test_first_release_is_rehearsed_end_to_end(first_release: Any, world: dict[str, Any]) -> None:
    result, lines = first_release
    assert result.exit_code == ExitCode.OK, lines
    assert statuses(result) == {"build-images": "skipped", "train-sagemaker": "skipped", "pipeline": "ok", "canary": "ok", "smoke-test": "ok"}
    assert result.aliases_before == {} and result.aliases_after["champion"] == "1"
    assert "candidate" not in result.aliases_after, "the release closed its candidate"
    # The pipeline stage made a candidate, not a champion; champion moved at the end.
    pipeline_line = next(line for line in lines if "] pipeline" in line)
    assert "candidate v1" in pipeline_line and "champion stays" in pipeline_line, pipeline_line
    assert any("canary: PROMOTE" in line for line in lines)
    assert any("adult-income@champion moved from version nothing to 1" in line for line in lines), lines
    # The serving helper's smoke test ran: health, known prediction, version.
    smoke_line = next(line for line in lines if "smoke-test" in line)
    assert all(f"{name} ok" in smoke_line for name in ("health", "known_prediction", "version")), smoke_line


def assert_stopped(result: Any, stage: str, code: ExitCode, before: dict[str, str], world: dict[str, Any], why: str) -> None:
    seen = statuses(result)
    assert seen[stage] == "failed", (seen, result.failed_stage)
    after_failure = list(seen)[list(seen).index(stage) + 1 :]
    assert all(seen[s] == "not-run" for s in after_failure), seen
    assert result.exit_code == code
    assert why in result.failed_stage.detail, result.failed_stage.detail
    assert aliases(world["store"].tracking_uri, "adult-income") == before == result.aliases_after


def test_critical_scan_finding_stops_before_training(first_release: Any, world: dict[str, Any], aws: Any, moto_endpoint: str) -> None:
    ecr = aws("ecr")
    digest = push_image(ecr, "mlops-serving", "abc")
    finding = {"imageScanFindings": {"findingSeverityCounts": {"CRITICAL": 1}}, "registryId": "123456789012", "repositoryName": "mlops-serving", "imageId": {"imageDigest": digest}, "imageScanStatus": {"status": "COMPLETE", "description": "done"}}
    requests.post(f"{moto_endpoint}/moto-api/static/ecr/scan-finding-results", json={"results": [finding], "region": "us-east-1"}, timeout=10).raise_for_status()
    ecr.start_image_scan(repositoryName="mlops-serving", imageId={"imageDigest": digest})
    before = aliases(world["store"].tracking_uri, "adult-income")
    result = rehearse(config(world, aws_endpoint=moto_endpoint, images=[("mlops-serving", "abc")]), print_line=lambda line: None)
    assert_stopped(result, "build-images", ExitCode.ERROR, before, world, "1 CRITICAL")


@pytest.mark.parametrize(
    ("answers", "why"),
    [
        ({"describe_pipeline_execution": [{"PipelineExecutionStatus": "Failed", "FailureReason": "Step Train failed: AlgorithmError"}]}, "AlgorithmError"),
        ({"describe_pipeline_execution": [{"PipelineExecutionStatus": "Executing"}], "stop_pipeline_execution": [{}]}, "stop requested"),
        ({"describe_pipeline_execution": [{"PipelineExecutionStatus": "Failed", "FailureReason": "Gate refused the challenger: ['roc_auc 0.80 below floor 0.85']"}]}, "gate refused"),
    ],
    ids=["failed", "timeout", "gate-refused-in-sagemaker"],
)
def test_sagemaker_execution_failure_stops_the_release(first_release: Any, world: dict[str, Any], answers: dict[str, Any], why: str) -> None:
    # moto finishes every execution at once: the double plays Failed / still Executing.
    client = RecordingClient({"start_pipeline_execution": [{"PipelineExecutionArn": "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/e1"}], **answers})
    before = aliases(world["store"].tracking_uri, "adult-income")
    code = ExitCode.GATE_REFUSED if why == "gate refused" else ExitCode.ERROR
    result = rehearse(config(world, sagemaker_client=client, sagemaker_pipeline="mlops-dev-training", sagemaker_timeout_s=0.5, sagemaker_poll_s=0.2), print_line=lambda line: None)
    assert_stopped(result, "train-sagemaker", code, before, world, why)
    assert client.calls[0] == ("start_pipeline_execution", {"PipelineName": "mlops-dev-training", "PipelineParameters": [{"Name": "GitCommit", "Value": "local"}]})


def test_gate_refusal_stops_before_deploy(first_release: Any, world: dict[str, Any]) -> None:
    from pipeline.steps.gate import GateThresholds

    before = aliases(world["store"].tracking_uri, "adult-income")
    strict = GateThresholds(bootstrap_samples=100, min_roc_auc=0.999)
    result = rehearse(config(world, gate=strict), print_line=lambda line: None)
    assert_stopped(result, "pipeline", ExitCode.GATE_REFUSED, before, world, "gate refused")


def test_alarm_during_bake_rolls_back(first_release: Any, world: dict[str, Any]) -> None:
    before = aliases(world["store"].tracking_uri, "adult-income")
    polls: list[int] = []

    def alarm() -> list[str]:
        polls.append(1)
        return ["mlops-dev-serving-5xx"] if len(polls) >= 2 else []

    result = rehearse(config(world, alarm_check=alarm, smoke_test=smoke()), print_line=lambda line: None)
    assert_stopped(result, "canary", ExitCode.DEPLOY_FAILED, before, world, "alarm mlops-dev-serving-5xx fired")
    assert "adult-income@candidate removed" in result.failed_stage.detail


def test_failing_smoke_test_rolls_back(first_release: Any, world: dict[str, Any]) -> None:
    before = aliases(world["store"].tracking_uri, "adult-income")
    result = rehearse(config(world, smoke_test=smoke(expected_probability=-1.0)), print_line=lambda line: None)
    assert_stopped(result, "smoke-test", ExitCode.DEPLOY_FAILED, before, world, "known row probability")
    assert statuses(result)["canary"] == "ok"
