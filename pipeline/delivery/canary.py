"""Canary analysis: promote or roll back a new champion from what it did during the bake.

One pure decision serves both drivers: the Argo Rollouts driver on the cluster (whose
AnalysisTemplate asks Prometheus the same three questions) and the local driver that
scrapes two servers' ``/metrics`` on 127.0.0.1. The decision fails closed: too little
traffic to judge is a rollback, as is any firing alarm. Thresholds come from the stack
config (``Pulumi.<stack>.yaml``: ``canaryWeight``, ``canaryBakeMinutes``,
``analysisMaxErrorRate``, ``analysisMaxLatencyP99Ms``, ``analysisMaxDriftPsi``), so the
cluster's analysis and this one judge by the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.schema import REPO_ROOT

PROJECT_PREFIX = "gpu-mlops-platform:"


@dataclass(frozen=True)
class CanaryConfig:
    """How much traffic the canary gets, for how long, and what it must stay under."""

    weight_percent: int = 25
    bake_s: float = 300.0
    max_error_rate: float = 0.02
    max_latency_p99_ms: float = 800.0
    max_drift_psi: float = 0.25
    min_requests: int = 50
    failure_limit: int = 0
    require_drift: bool = True

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.weight_percent <= 50:
            problems.append(f"weight_percent must be 1-50 (a canary, not a cut-over), got {self.weight_percent}")
        if self.bake_s <= 0:
            problems.append(f"bake_s must be positive, got {self.bake_s}")
        if not 0 < self.max_error_rate < 1:
            problems.append(f"max_error_rate must be in (0, 1), got {self.max_error_rate}")
        if self.max_latency_p99_ms <= 0:
            problems.append(f"max_latency_p99_ms must be positive, got {self.max_latency_p99_ms}")
        if self.max_drift_psi <= 0:
            problems.append(f"max_drift_psi must be positive, got {self.max_drift_psi}")
        if self.min_requests < 1 or self.failure_limit < 0:
            problems.append("min_requests must be >= 1 and failure_limit >= 0")
        if problems:
            raise ValueError("invalid canary config: " + "; ".join(problems))


def canary_config_from_stack(stack: str, root: Path = REPO_ROOT, **overrides: Any) -> CanaryConfig:
    """The canary thresholds of ``Pulumi.<stack>.yaml``, falling back to ``Pulumi.yaml`` defaults.

    Reading the same keys the ModelService component reads keeps the local rehearsal
    and the cluster's AnalysisTemplate on one set of numbers. A missing stack file or
    a non-numeric value is an error naming the file and key.
    """
    import yaml

    project_file, stack_file = root / "Pulumi.yaml", root / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        raise FileNotFoundError(f"no stack config {stack_file}")
    declared = (yaml.safe_load(project_file.read_text()) or {}).get("config", {}) if project_file.is_file() else {}
    values = (yaml.safe_load(stack_file.read_text()) or {}).get("config", {}) or {}

    def read(key: str, fallback: float) -> float:
        raw = values.get(PROJECT_PREFIX + key, (declared.get(key) or {}).get("default", fallback))
        try:
            return float(raw)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{stack_file.name}: {key}={raw!r} is not a number") from exc

    defaults = CanaryConfig()
    settings: dict[str, Any] = dict(
        weight_percent=int(read("canaryWeight", defaults.weight_percent)),
        bake_s=60.0 * read("canaryBakeMinutes", defaults.bake_s / 60.0),
        max_error_rate=read("analysisMaxErrorRate", defaults.max_error_rate),
        max_latency_p99_ms=read("analysisMaxLatencyP99Ms", defaults.max_latency_p99_ms),
        max_drift_psi=read("analysisMaxDriftPsi", defaults.max_drift_psi),
    )
    settings.update(overrides)
    return CanaryConfig(**settings)


@dataclass(frozen=True)
class BakeSample:
    """One measurement window of the canary: traffic, 5xx, latency p99, drift PSI."""

    requests: int
    errors_5xx: int
    latency_p99_ms: float | None
    drift_psi: float | None
    errors_4xx: int = 0

    @property
    def error_rate(self) -> float:
        return self.errors_5xx / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class CanaryVerdict:
    """Promote or roll back, every reason for a rollback, and the figures judged."""

    promote: bool
    reasons: tuple[str, ...]
    summary: dict[str, float | int | None] = field(default_factory=dict)

    def render(self) -> str:
        head = "canary: PROMOTE" if self.promote else "canary: ROLL BACK"
        figures = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.summary.items())
        return "\n".join([f"{head} ({figures})", *(f"  - {r}" for r in self.reasons)])


def analyse_canary(samples: Sequence[BakeSample], config: CanaryConfig, firing_alarms: Sequence[str] = ()) -> CanaryVerdict:
    """Decide promote / roll back from the bake's samples; fails closed.

    A metric fails when more than ``failure_limit`` windows breach it (Argo's
    ``failureLimit``). Rolls back when: there were fewer than ``min_requests`` requests
    in the bake, the 5xx rate, latency p99 or drift PSI fails, drift was never reported
    while ``require_drift`` is set, or any alarm fired. Returns every reason at once.
    """
    reasons: list[str] = []
    total = sum(s.requests for s in samples)
    errors = sum(s.errors_5xx for s in samples)
    p99s = [s.latency_p99_ms for s in samples if s.latency_p99_ms is not None and s.requests]
    drifts = [s.drift_psi for s in samples if s.drift_psi is not None and not math.isnan(s.drift_psi)]
    summary: dict[str, float | int | None] = {
        "requests": total,
        "error_rate": errors / total if total else None,
        "latency_p99_ms": max(p99s) if p99s else None,
        "drift_psi": max(drifts) if drifts else None,
        "errors_4xx": sum(s.errors_4xx for s in samples),
    }
    if total < config.min_requests:
        reasons.append(f"only {total} canary requests during the bake (need {config.min_requests} to judge)")
    breaches = [s for s in samples if s.requests and s.error_rate > config.max_error_rate]
    if len(breaches) > config.failure_limit:
        worst = max(s.error_rate for s in breaches)
        reasons.append(f"5xx error rate {worst:.2%} above {config.max_error_rate:.2%} in {len(breaches)} of {len(samples)} windows")
    slow = [p for p in p99s if p > config.max_latency_p99_ms]
    if len(slow) > config.failure_limit:
        reasons.append(f"latency p99 {max(slow):.0f} ms above {config.max_latency_p99_ms:.0f} ms in {len(slow)} of {len(samples)} windows")
    drifted = [d for d in drifts if d > config.max_drift_psi]
    if len(drifted) > config.failure_limit:
        reasons.append(f"prediction drift PSI {max(drifted):.3f} above {config.max_drift_psi:.3f} in {len(drifted)} of {len(samples)} windows")
    if config.require_drift and not drifts and total:
        reasons.append("the canary reported no prediction-drift score (too few rows scored for the server to compute PSI, or a model version without a monitoring baseline)")
    reasons += [f"alarm {name} fired during the bake" for name in firing_alarms]
    return CanaryVerdict(promote=not reasons, reasons=tuple(reasons), summary=summary)


# --- reading the server's Prometheus metrics ------------------------------------------


@dataclass(frozen=True)
class MetricsSnapshot:
    """Cumulative counters from one scrape of a server's ``/metrics``."""

    requests_by_status: dict[str, float]
    latency_buckets: tuple[tuple[float, float], ...]
    drift_psi: float | None
    model_version: str | None


def parse_metrics(text: str) -> MetricsSnapshot:
    """The canary-relevant series of a Prometheus text exposition (docs/contracts.md names)."""
    from prometheus_client.parser import text_string_to_metric_families

    by_status: dict[str, float] = {}
    buckets: dict[float, float] = {}
    drift: float | None = None
    version: str | None = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "mlserve_requests_total":
                status = sample.labels.get("status", "unknown")
                by_status[status] = by_status.get(status, 0.0) + sample.value
            elif sample.name == "mlserve_request_latency_seconds_bucket":
                buckets[float(sample.labels["le"])] = sample.value
            elif sample.name == "mlserve_prediction_drift_psi":
                drift = sample.value
            elif sample.name == "mlserve_model_info" and sample.value == 1:
                version = sample.labels.get("model_version")
    return MetricsSnapshot(by_status, tuple(sorted(buckets.items())), drift, version)


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus's ``histogram_quantile``: linear interpolation inside cumulative buckets."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            span = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / span if span else 1.0)
        lower_bound, lower_count = bound, count
    return lower_bound


def sample_between(before: MetricsSnapshot, after: MetricsSnapshot) -> BakeSample:
    """The window between two scrapes of the same server, as a :class:`BakeSample`."""
    statuses = set(before.requests_by_status) | set(after.requests_by_status)
    delta = {s: after.requests_by_status.get(s, 0.0) - before.requests_by_status.get(s, 0.0) for s in statuses}
    if any(v < 0 for v in delta.values()):
        raise ValueError("counters went backwards between scrapes: the server restarted during the bake")
    before_buckets = dict(before.latency_buckets)
    window = tuple((le, count - before_buckets.get(le, 0.0)) for le, count in after.latency_buckets)
    p99 = histogram_quantile(0.99, window)
    return BakeSample(
        requests=int(sum(delta.values())),
        errors_5xx=int(sum(v for s, v in delta.items() if s.startswith("5"))),
        errors_4xx=int(sum(v for s, v in delta.items() if s.startswith("4"))),
        latency_p99_ms=None if p99 is None else 1000.0 * p99,
        drift_psi=after.drift_psi,
    )
