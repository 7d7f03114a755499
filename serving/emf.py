"""Serving metrics to CloudWatch as Embedded Metric Format (EMF) records.

The Monitoring component's serving alarms (5xx, 4xx, latency p99) read
``MLOps/Serving`` metrics with the ``ModelName`` and ``Stack`` dimensions
(``pipeline/metric_names.py``). The server counts invocations per flush interval and
writes, once per interval, EMF records (CloudWatch's JSON specification, "Specification:
Embedded metric format") to the CloudWatch agent's EMF listener, the
``AWS_EMF_AGENT_ENDPOINT`` convention of AWS's EMF client libraries (e.g.
``tcp://cloudwatch-agent.amazon-cloudwatch:25888``). The agent ships them to CloudWatch
Logs, which extracts the metrics. Off unless an endpoint is configured.

Why by hand rather than ``aws-embedded-metrics`` (PyPI): its ``flush`` is a coroutine
built for one record per scope, and its environment detection probes the ECS/EC2
metadata endpoints over HTTP on first use; the server needs neither a second event
loop in a background thread nor network calls it did not ask for. The record format is
small and is checked here against the specification's structure.

Guarantees for the request path: :meth:`EmfPublisher.observe` takes one lock and
appends to bounded memory; all formatting and I/O happen on a daemon thread. When the
agent is away, records wait in a bounded queue and the oldest are dropped and counted.

Latency: CloudWatch takes at most 100 values per metric per record, so one interval's
latencies are split over as many records as needed (exact percentiles), up to
``max_latency_values`` per interval; beyond that a uniform reservoir sample of that size
is sent (an unbiased estimate of p99) and the unsampled values are counted. The counts
(``Invocations``, 4xx, 5xx) are exact and appear in the first record of an interval only.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from pipeline import metric_names as mn

log = logging.getLogger("serving.emf")

MAX_VALUES_PER_METRIC = 100
"""The EMF specification's cap on an array of values for one metric in one record."""
DEFAULT_PORT = 25888
CLIENT_CLOSED = 499
"""The client went away before an answer: no response was sent, so it is no 4xx."""


@dataclass(frozen=True)
class Endpoint:
    """Where the agent listens: ``tcp`` or ``udp``, host and port."""

    protocol: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """``tcp://host:port`` or ``udp://host:port`` (port defaults to 25888).

        Raises ValueError naming the problem, so a bad ``AWS_EMF_AGENT_ENDPOINT`` stops
        the server at start instead of silently publishing nothing."""
        parts = urlsplit(text.strip())
        if parts.scheme not in ("tcp", "udp"):
            raise ValueError(f"EMF endpoint {text!r}: scheme must be tcp:// or udp://")
        if not parts.hostname:
            raise ValueError(f"EMF endpoint {text!r}: no host")
        if parts.path not in ("", "/") or parts.query:
            raise ValueError(f"EMF endpoint {text!r}: only scheme://host:port is allowed")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError as exc:
            raise ValueError(f"EMF endpoint {text!r}: {exc}") from exc
        return cls(parts.scheme, parts.hostname, port)


@dataclass(frozen=True)
class EmfSettings:
    """What to publish, where, and how much memory it may hold."""

    endpoint: Endpoint
    stack: str
    model_name: str | None = None
    """The ``ModelName`` dimension; ``None``: the served model's registered name."""
    flush_interval_s: float = 60.0
    log_group_name: str | None = None
    max_latency_values: int = 3000
    max_pending_records: int = 1000
    connect_timeout_s: float = 2.0

    def __post_init__(self) -> None:
        problems = []
        if self.model_name is not None and not self.model_name:
            problems.append("model name is empty")
        if not self.stack:
            problems.append("stack is empty (set --metrics-stack / MLOPS_STACK)")
        if not self.flush_interval_s > 0:
            problems.append(f"flush interval must be positive, got {self.flush_interval_s}")
        if self.max_latency_values < MAX_VALUES_PER_METRIC:
            problems.append(f"max latency values must be >= {MAX_VALUES_PER_METRIC}, got {self.max_latency_values}")
        if self.max_pending_records < 1:
            problems.append(f"max pending records must be >= 1, got {self.max_pending_records}")
        if problems:
            raise ValueError("EMF settings: " + "; ".join(problems))


@dataclass
class Window:
    """One flush interval's aggregate: exact counts and (sampled) latencies in ms."""

    invocations: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    latencies_seen: int = 0


def status_class(status: int) -> str | None:
    """``4xx``, ``5xx`` or ``None``: which error metric a response status counts in."""
    if 500 <= status <= 599:
        return "5xx"
    if 400 <= status <= 499 and status != CLIENT_CLOSED:
        return "4xx"
    return None


def emf_records(window: Window, *, model_name: str, stack: str, timestamp_ms: int,
                log_group_name: str | None = None, model_version: str | None = None) -> list[dict[str, Any]]:
    """The EMF documents for one window: counts plus the first latency chunk, then one
    record per further chunk of at most 100 latency values.

    Every record has ``_aws.Timestamp`` (ms since the epoch), one ``CloudWatchMetrics``
    directive naming the namespace, the ``[ModelName, Stack]`` dimension set and the
    metrics present, and the values at the root, as the specification requires.
    ``LogGroupName`` in ``_aws`` is read (and stripped) by the CloudWatch agent."""
    latencies = list(window.latencies_ms)
    chunks = [latencies[i:i + MAX_VALUES_PER_METRIC] for i in range(0, len(latencies), MAX_VALUES_PER_METRIC)]
    records: list[dict[str, Any]] = []
    for index in range(max(1, len(chunks))):
        metrics: list[dict[str, str]] = []
        root: dict[str, Any] = {mn.DIM_MODEL_NAME: model_name, mn.DIM_STACK: stack}
        if index == 0:
            for name, value in ((mn.INVOCATIONS, window.invocations),
                                (mn.INVOCATION_4XX_ERRORS, window.errors_4xx),
                                (mn.INVOCATION_5XX_ERRORS, window.errors_5xx)):
                metrics.append({"Name": name, "Unit": "Count"})
                root[name] = value
        if chunks:
            chunk = chunks[index]
            metrics.append({"Name": mn.MODEL_LATENCY_MS, "Unit": "Milliseconds"})
            root[mn.MODEL_LATENCY_MS] = chunk if len(chunk) > 1 else chunk[0]
        meta: dict[str, Any] = {"Timestamp": timestamp_ms, "CloudWatchMetrics": [{
            "Namespace": mn.SERVING_NAMESPACE, "Dimensions": [[mn.DIM_MODEL_NAME, mn.DIM_STACK]],
            "Metrics": metrics}]}
        if log_group_name:
            meta["LogGroupName"] = log_group_name
        record = {"_aws": meta, **root}
        if model_version:
            record["ModelVersion"] = model_version
        if window.latencies_seen > len(latencies) and index == 0:
            record["LatencySampledFrom"] = window.latencies_seen
        records.append(record)
    return records


class _Sender:
    """A socket to the agent, opened lazily and reopened after any failure."""

    def __init__(self, endpoint: Endpoint, timeout_s: float) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None

    def send(self, line: bytes) -> None:
        """Send one newline-terminated record; raises OSError on failure (socket closed)."""
        try:
            if self._sock is None:
                if self.endpoint.protocol == "tcp":
                    self._sock = socket.create_connection((self.endpoint.host, self.endpoint.port), self.timeout_s)
                else:
                    self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    self._sock.settimeout(self.timeout_s)
                    self._sock.connect((self.endpoint.host, self.endpoint.port))
            self._sock.sendall(line)
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None


class EmfPublisher:
    """Aggregates invocations per interval and ships EMF records from a daemon thread."""

    def __init__(self, settings: EmfSettings, *, model_name: str, model_version: str | None = None,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.model_name = settings.model_name or model_name
        self.model_version = model_version
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._window = Window()
        self._pending: deque[bytes] = deque()
        self._sender = _Sender(settings.endpoint, settings.connect_timeout_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.records_sent = 0
        self.records_dropped = 0
        self.latencies_unsampled = 0

    def observe(self, status: int, seconds: float) -> None:
        """Count one invocation (hot path: one lock, O(1), no I/O)."""
        kind = status_class(status)
        ms = seconds * 1000.0
        cap = self.settings.max_latency_values
        with self._lock:
            w = self._window
            w.invocations += 1
            if kind == "5xx":
                w.errors_5xx += 1
            elif kind == "4xx":
                w.errors_4xx += 1
            w.latencies_seen += 1
            values = w.latencies_ms
            if len(values) < cap:
                values.append(ms)
            else:  # reservoir sampling (Algorithm R): every value kept with probability cap/seen
                slot = self._rng.randrange(w.latencies_seen)
                if slot < cap:
                    values[slot] = ms

    def flush(self) -> int:
        """Close the current window, queue its records and try to send everything
        queued; returns how many records were sent. Called by the thread and at stop."""
        with self._lock:
            window, self._window = self._window, Window()
        self.latencies_unsampled += window.latencies_seen - len(window.latencies_ms)
        records = emf_records(window, model_name=self.model_name, stack=self.settings.stack,
                              timestamp_ms=int(self._clock() * 1000),
                              log_group_name=self.settings.log_group_name, model_version=self.model_version)
        for record in records:
            if len(self._pending) >= self.settings.max_pending_records:
                self._pending.popleft()
                self.records_dropped += 1
            self._pending.append(json.dumps(record, separators=(",", ":"), allow_nan=False).encode() + b"\n")
        sent = 0
        while self._pending:
            try:
                self._sender.send(self._pending[0])
            except OSError as exc:
                log.warning("EMF agent %s unreachable (%s); %d records queued",
                            self.settings.endpoint, type(exc).__name__, len(self._pending))
                break
            self._pending.popleft()
            sent += 1
        self.records_sent += sent
        return sent

    def start(self) -> None:
        """Start the flush thread (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="emf-flush", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.flush_interval_s):
            try:
                self.flush()
            except Exception:  # never let the publisher thread die silently
                log.exception("EMF flush failed")

    def stop(self) -> None:
        """Stop the thread and flush the last (partial) window, so a graceful shutdown
        does not lose the requests it just served."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=self.settings.flush_interval_s + 5)
            self._thread = None
        try:
            self.flush()
        finally:
            self._sender.close()

    def collector(self) -> Collector:
        """Prometheus view of the publisher's own health (sent, dropped, unsampled)."""
        return _PublisherCollector(self)


class _PublisherCollector(Collector):
    def __init__(self, publisher: EmfPublisher) -> None:
        self._publisher = publisher

    def collect(self) -> Iterator[CounterMetricFamily]:
        p = self._publisher
        for name, doc, value in (
            ("mlserve_emf_records_sent", "EMF records delivered to the CloudWatch agent", p.records_sent),
            ("mlserve_emf_records_dropped", "EMF records dropped because the agent was away and the queue was full",
             p.records_dropped),
            ("mlserve_emf_latencies_unsampled", "Latency values left out of EMF by the per-interval reservoir",
             p.latencies_unsampled),
        ):
            yield CounterMetricFamily(name, doc, value=value)
