"""The canary analysis (pure) and its local driver (two real servers on 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.delivery import canary, local_canary
from pipeline.schema import REPO_ROOT

CONFIG = canary.CanaryConfig(weight_percent=25, bake_s=60, max_error_rate=0.02, max_latency_p99_ms=800, max_drift_psi=0.25, min_requests=20)


def sample(requests: int = 100, errors: int = 0, p99: float | None = 50.0, psi: float | None = 0.05) -> canary.BakeSample:
    return canary.BakeSample(requests=requests, errors_5xx=errors, latency_p99_ms=p99, drift_psi=psi)


def test_healthy_canary_is_promoted() -> None:
    verdict = canary.analyse_canary([sample(), sample()], CONFIG)
    assert verdict.promote and verdict.reasons == ()
    assert verdict.summary["requests"] == 200


@pytest.mark.parametrize(
    ("samples", "alarms", "reason"),
    [
        ([sample(errors=5)], (), "5xx error rate 5.00%"),
        ([sample(p99=1200.0)], (), "latency p99 1200 ms"),
        ([sample(psi=0.4)], (), "prediction drift PSI 0.400"),
        ([sample(psi=None)], (), "no prediction-drift score"),
        ([sample(requests=5)], (), "only 5 canary requests"),
        ([], (), "only 0 canary requests"),
        ([sample()], ("mlops-dev-serving-5xx",), "alarm mlops-dev-serving-5xx fired"),
    ],
)
def test_each_breach_rolls_back_with_its_reason(samples: list[canary.BakeSample], alarms: tuple[str, ...], reason: str) -> None:
    verdict = canary.analyse_canary(samples, CONFIG, alarms)
    assert not verdict.promote
    assert any(reason in r for r in verdict.reasons), verdict.reasons


def test_every_violation_is_listed_at_once_and_failure_limit_tolerates_one() -> None:
    bad = [sample(errors=10, p99=2000.0, psi=0.9)]
    assert len(canary.analyse_canary(bad, CONFIG).reasons) == 3
    lenient = canary.CanaryConfig(min_requests=20, failure_limit=1)
    assert canary.analyse_canary([sample(errors=10), sample(), sample()], lenient).promote


def test_config_from_stack_reads_pulumi_files(tmp_path: Path) -> None:
    if not (REPO_ROOT / "Pulumi.dev.yaml").is_file():
        pytest.skip("Pulumi.dev.yaml not present")
    dev = canary.canary_config_from_stack("dev")
    assert dev.weight_percent == 25 and dev.bake_s == 120 and dev.max_error_rate == 0.02 and dev.max_latency_p99_ms == 800
    (tmp_path / "Pulumi.yaml").write_text("config:\n  canaryWeight:\n    default: 10\n")
    (tmp_path / "Pulumi.x.yaml").write_text("config:\n  gpu-mlops-platform:analysisMaxErrorRate: lots\n")
    with pytest.raises(ValueError, match="analysisMaxErrorRate"):
        canary.canary_config_from_stack("x", root=tmp_path)
    (tmp_path / "Pulumi.y.yaml").write_text("config:\n  gpu-mlops-platform:canaryWeight: 90\n")
    with pytest.raises(ValueError, match="weight_percent"):
        canary.canary_config_from_stack("y", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="Pulumi.nope.yaml"):
        canary.canary_config_from_stack("nope", root=tmp_path)
    (tmp_path / "Pulumi.z.yaml").write_text("config: {}\n")
    assert canary.canary_config_from_stack("z", root=tmp_path, min_requests=5).weight_percent == 10


def test_metrics_parsing_and_windows() -> None:
    def exposition(ok: int, err: int, buckets: list[tuple[str, int]], psi: float) -> str:
        lines = [
            "# TYPE mlserve_requests_total counter",
            f'mlserve_requests_total{{status="200"}} {ok}',
            f'mlserve_requests_total{{status="500"}} {err}',
            'mlserve_requests_total{status="415"} 1',
            "# TYPE mlserve_request_latency_seconds histogram",
        ]
        lines += [f'mlserve_request_latency_seconds_bucket{{le="{le}"}} {n}' for le, n in buckets]
        lines += [f"mlserve_request_latency_seconds_count {buckets[-1][1]}", "mlserve_request_latency_seconds_sum 1.0"]
        lines += ["# TYPE mlserve_prediction_drift_psi gauge", f"mlserve_prediction_drift_psi {psi}"]
        lines += ["# TYPE mlserve_model_info gauge", 'mlserve_model_info{model_name="adult-income",model_version="7"} 1.0']
        return "\n".join(lines) + "\n"

    before = canary.parse_metrics(exposition(10, 0, [("0.01", 5), ("0.1", 10), ("+Inf", 11)], 0.01))
    after = canary.parse_metrics(exposition(108, 2, [("0.01", 5), ("0.1", 108), ("+Inf", 111)], 0.12))
    assert after.model_version == "7"
    window = canary.sample_between(before, after)
    assert window.requests == 100 and window.errors_5xx == 2 and window.errors_4xx == 0
    assert window.drift_psi == pytest.approx(0.12)
    # 99 % of 100 window requests fall in (0.01, 0.1]: interpolated inside that bucket.
    assert window.latency_p99_ms is not None and 10 < window.latency_p99_ms <= 100
    with pytest.raises(ValueError, match="restarted"):
        canary.sample_between(after, before)
    assert canary.histogram_quantile(0.99, []) is None


def test_split_sends_the_configured_share_evenly() -> None:
    picks = [local_canary.goes_to_canary(i, 25) for i in range(100)]
    assert sum(picks) == 25 and picks[:8] == [False, False, False, True, False, False, False, True]
