"""Prometheus metrics of the server, under the names docs/contracts.md fixes.

The canary analysis and the CloudWatch agent read ``mlserve_requests_total{status}``,
``mlserve_request_latency_seconds``, ``mlserve_rows_scored_total``,
``mlserve_model_info{model_name,model_version}`` and ``mlserve_prediction_drift_psi``;
renaming any of them breaks those readers. Request metrics count ``/invocations`` only,
so health checks and scrapes do not dilute error rates. Each server owns its registry
(no process-global state), so several apps can live in one test process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, GCCollector, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PSI_BINS = 10
PSI_FLOOR = 1e-4
PSI_MIN_SAMPLES = 100
"""Below this many live predictions the PSI is noise, so the gauge is not exported yet."""


def population_stability_index(baseline: np.ndarray, live: np.ndarray, bins: int = PSI_BINS) -> float:
    """PSI of ``live`` against ``baseline`` over the baseline's quantile bins.

    Quantile bins give every bin about the same baseline mass, so a shift anywhere in
    the probability range shows up; empty bins are floored at ``PSI_FLOOR`` so the log
    stays finite. Values above about 0.2 are conventionally read as a real shift."""
    edges = np.unique(np.quantile(baseline, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size < 2:
        edges = np.array([baseline.min() - 1e-9, baseline.max() + 1e-9])
    inner = edges[1:-1]
    expected = np.bincount(np.searchsorted(inner, baseline, side="right"), minlength=edges.size - 1) / baseline.size
    actual = np.bincount(np.searchsorted(inner, live, side="right"), minlength=edges.size - 1) / live.size
    expected = np.maximum(expected, PSI_FLOOR)
    actual = np.maximum(actual, PSI_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


class _DriftCollector(Collector):
    """Exports the PSI of a ring buffer of recent probabilities at scrape time."""

    def __init__(self, baseline: np.ndarray, window: int) -> None:
        self._baseline = baseline
        self._ring = np.empty(window, dtype=np.float64)
        self._count = 0
        self._lock = threading.Lock()

    def add(self, probabilities: Sequence[float] | np.ndarray) -> None:
        values = probabilities[-self._ring.size :]
        with self._lock:
            start = self._count % self._ring.size
            end = start + len(values)
            if end <= self._ring.size:
                self._ring[start:end] = values
            else:
                split = self._ring.size - start
                self._ring[start:] = values[:split]
                self._ring[: end - self._ring.size] = values[split:]
            self._count += len(values)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            live = self._ring[: min(self._count, self._ring.size)].copy()
        if live.size < PSI_MIN_SAMPLES:
            return
        family = GaugeMetricFamily(
            "mlserve_prediction_drift_psi",
            "PSI of recent predicted probabilities against the model's monitoring baseline",
        )
        family.add_metric([], population_stability_index(self._baseline, live))
        yield family


class _CaptureDroppedCollector(Collector):
    """``mlserve_capture_dropped_total``, read from the capture writer at scrape time so
    that records lost to a full queue and to a failing disk are both counted."""

    def __init__(self, lost: Callable[[], int]) -> None:
        self._lost = lost

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "mlserve_capture_dropped",
            "Capture records lost: the queue was full, or the record could not be written",
            value=self._lost(),
        )


class InvocationSink(Protocol):
    """Another consumer of each invocation (the EMF publisher to CloudWatch)."""

    def observe(self, status: int, seconds: float) -> None: ...


class ServingMetrics:
    """The server's metrics, with label children cached for the hot path.

    ``sink`` also receives every invocation: the CloudWatch EMF publisher
    (``serving.emf``), so Prometheus and CloudWatch count the same requests."""

    def __init__(self, model_name: str, model_version: str, baseline: np.ndarray | None, window: int = 10_000,
                 sink: InvocationSink | None = None, capture_lost: Callable[[], int] | None = None) -> None:
        self._sink = sink
        self.registry = CollectorRegistry(auto_describe=True)
        # Every Python exporter's own series: memory, CPU, descriptors, and the cyclic
        # collector's passes by generation (its pauses are request latency).
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self._requests = Counter(
            "mlserve_requests_total", "Invocations by HTTP status code", ["status"], registry=self.registry
        )
        self._latency = Histogram(
            "mlserve_request_latency_seconds",
            "Invocation latency from request start to response, seconds",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._rows = Counter("mlserve_rows_scored_total", "Rows scored by the model", registry=self.registry)
        self.registry.register(_CaptureDroppedCollector(capture_lost or (lambda: 0)))
        info = Gauge(
            "mlserve_model_info", "The model being served (always 1)", ["model_name", "model_version"], registry=self.registry
        )
        info.labels(model_name=model_name, model_version=model_version).set(1)
        self._children: dict[int, Counter] = {}
        self._drift: _DriftCollector | None = None
        if baseline is not None:
            self._drift = _DriftCollector(baseline, window)
            self.registry.register(self._drift)

    def observe(self, status: int, seconds: float) -> None:
        """Count one invocation and its latency."""
        child = self._children.get(status)
        if child is None:
            child = self._children[status] = self._requests.labels(status=str(status))
        child.inc()
        self._latency.observe(seconds)
        if self._sink is not None:
            self._sink.observe(status, seconds)

    def scored(self, rows: int, probabilities: Sequence[float] | np.ndarray | None) -> None:
        """Count scored rows and feed the drift window."""
        self._rows.inc(rows)
        if self._drift is not None and probabilities is not None and len(probabilities):
            self._drift.add(probabilities)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
