"""CloudWatch EMF publishing: the record format, the refusals, and the real server.

The format is checked against the structure the EMF specification fixes (``_aws`` with
an integer ``Timestamp`` and ``CloudWatchMetrics`` directives; every dimension and
metric a directive names present at the root; at most 100 values per metric). The live
test serves a small in-process model under uvicorn on 127.0.0.1, with a TCP listener on
127.0.0.1 standing in for the CloudWatch agent, and checks that the counts and latencies
in the records are the requests actually served. A listener proves what the server
sends, not that CloudWatch extracts it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from infra.config import AlarmSettings
from infra.monitoring import SERVING_ALARM_KEYS, alarm_specs
from pipeline import metric_names as mn
from serving.app import AppSettings, ServingApp
from serving.emf import (MAX_VALUES_PER_METRIC, Endpoint, EmfPublisher, EmfSettings, Window, emf_records,
                         status_class)
from serving.model import LoadedModel, Prediction
from serving.payload import Batch, ColumnSpec
from serving.server import add_server_arguments, options_from_args

UNITS = {"Count", "Milliseconds", "Seconds", "Microseconds", "Percent", "None"}


def spec_violations(record: dict[str, Any]) -> list[str]:
    """Where ``record`` breaks the EMF specification's document structure (empty if valid)."""
    problems: list[str] = []
    meta = record.get("_aws")
    if not isinstance(meta, dict):
        return ["no _aws object"]
    if not isinstance(meta.get("Timestamp"), int) or meta["Timestamp"] <= 0:
        problems.append("_aws.Timestamp must be a positive integer (ms since the epoch)")
    directives = meta.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return problems + ["_aws.CloudWatchMetrics must be a non-empty array"]
    for d in directives:
        if not isinstance(d.get("Namespace"), str) or not 1 <= len(d["Namespace"]) <= 1024:
            problems.append(f"bad Namespace {d.get('Namespace')!r}")
        dims = d.get("Dimensions")
        if not isinstance(dims, list) or any(not isinstance(s, list) or len(s) > 30 for s in dims):
            problems.append("Dimensions must be an array of arrays of at most 30 names")
        for name in [n for s in dims or [] for n in s]:
            if not isinstance(record.get(name), str):
                problems.append(f"dimension {name} has no string value at the root")
        metrics = d.get("Metrics")
        if not isinstance(metrics, list) or not 1 <= len(metrics) <= 100:
            problems.append("Metrics must hold 1-100 metric definitions")
            continue
        for m in metrics:
            if m.get("Unit", "None") not in UNITS:
                problems.append(f"{m.get('Name')}: unit {m.get('Unit')!r}")
            value = record.get(m.get("Name"))
            values = value if isinstance(value, list) else [value]
            if not values or len(values) > MAX_VALUES_PER_METRIC:
                problems.append(f"{m['Name']}: {len(values)} values (1-100 allowed)")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
                problems.append(f"{m['Name']}: non-numeric value at the root")
    return problems


def test_spec_checker_refuses_broken_records() -> None:
    good = emf_records(Window(1, 0, 0, [2.0], 1), model_name="m", stack="dev", timestamp_ms=1)[0]
    assert spec_violations(good) == []
    assert spec_violations({"ModelName": "m"}) == ["no _aws object"]
    no_dim = {k: v for k, v in good.items() if k != "Stack"}
    assert "dimension Stack has no string value at the root" in spec_violations(no_dim)
    too_many = {**good, mn.MODEL_LATENCY_MS: [1.0] * 101}
    assert any("101 values" in p for p in spec_violations(too_many))


def test_records_split_latencies_and_count_once() -> None:
    window = Window(invocations=250, errors_4xx=7, errors_5xx=3, latencies_ms=[float(i) for i in range(250)],
                    latencies_seen=250)
    records = emf_records(window, model_name="adult-income", stack="prod", timestamp_ms=1_700_000_000_000,
                          log_group_name="/mlops/prod/serving-metrics", model_version="4")
    assert len(records) == 3 and all(spec_violations(r) == [] for r in records)
    first = records[0]
    assert first[mn.INVOCATIONS] == 250 and first[mn.INVOCATION_4XX_ERRORS] == 7
    assert first[mn.INVOCATION_5XX_ERRORS] == 3 and first["ModelVersion"] == "4"
    assert all(mn.INVOCATIONS not in r for r in records[1:])  # summed once, not three times
    sent = [v for r in records for v in r[mn.MODEL_LATENCY_MS]]
    assert sent == window.latencies_ms
    assert [len(r[mn.MODEL_LATENCY_MS]) for r in records] == [100, 100, 50]
    for r in records:
        (directive,) = r["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == mn.SERVING_NAMESPACE
        assert directive["Dimensions"] == [[mn.DIM_MODEL_NAME, mn.DIM_STACK]]
        assert r["_aws"]["LogGroupName"] == "/mlops/prod/serving-metrics"
        assert (r[mn.DIM_MODEL_NAME], r[mn.DIM_STACK]) == ("adult-income", "prod")


def test_idle_window_still_reports_zero_counts() -> None:
    (record,) = emf_records(Window(), model_name="m", stack="dev", timestamp_ms=5)
    assert spec_violations(record) == [] and record[mn.INVOCATION_5XX_ERRORS] == 0
    assert mn.MODEL_LATENCY_MS not in record


def test_status_classes() -> None:
    assert [status_class(s) for s in (200, 400, 413, 415, 499, 500, 504)] == [
        None, "4xx", "4xx", "4xx", None, "5xx", "5xx"]


@pytest.mark.parametrize("text", ["http://agent:25888", "tcp://", "agent:25888", "tcp://agent:99999",
                                  "tcp://agent:25888/path"])
def test_bad_endpoints_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="EMF endpoint"):
        Endpoint.parse(text)


def test_endpoint_default_port() -> None:
    assert Endpoint.parse("udp://cloudwatch-agent.amazon-cloudwatch") == Endpoint(
        "udp", "cloudwatch-agent.amazon-cloudwatch", 25888)


def test_settings_refuse_missing_stack_and_tiny_reservoir() -> None:
    endpoint = Endpoint("tcp", "127.0.0.1", 1)
    with pytest.raises(ValueError, match="stack is empty"):
        EmfSettings(endpoint, stack="")
    with pytest.raises(ValueError, match="max latency values"):
        EmfSettings(endpoint, stack="dev", max_latency_values=10)


def _parse(argv: list[str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Any:
    for key in ("AWS_EMF_AGENT_ENDPOINT", "MLOPS_STACK", "METRICS_MODEL_NAME", "AWS_EMF_LOG_GROUP_NAME"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    parser = argparse.ArgumentParser()
    add_server_arguments(parser)
    return options_from_args(parser.parse_args(["--model-uri", "models:/m/1", *argv]))


def test_off_by_default_and_on_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _parse([], monkeypatch, {}).emf is None
    options = _parse([], monkeypatch, {"AWS_EMF_AGENT_ENDPOINT": "tcp://127.0.0.1:25888", "MLOPS_STACK": "dev",
                                       "AWS_EMF_LOG_GROUP_NAME": "/g"})
    assert options.emf.endpoint == Endpoint("tcp", "127.0.0.1", 25888)
    assert (options.emf.stack, options.emf.log_group_name, options.emf.model_name) == ("dev", "/g", None)
    with pytest.raises(ValueError, match="stack is empty"):
        _parse(["--emf-endpoint", "tcp://127.0.0.1:1"], monkeypatch, {})


def test_agent_away_never_blocks_and_drops_oldest_counted() -> None:
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = EmfSettings(Endpoint("tcp", "127.0.0.1", port), stack="dev", max_pending_records=3,
                           connect_timeout_s=0.5)
    publisher = EmfPublisher(settings, model_name="m")
    started = time.perf_counter()
    for _ in range(10_000):
        publisher.observe(200, 0.002)
    per_call_us = (time.perf_counter() - started) / 10_000 * 1e6
    assert per_call_us < 50, f"observe costs {per_call_us:.1f} us"
    for _ in range(5):
        assert publisher.flush() == 0
    # First window: 3,000 sampled latencies -> 30 records; then 4 idle windows, 1 each;
    # 34 queued, the newest 3 kept, the oldest 31 dropped and counted.
    assert publisher.records_dropped == 31 and publisher.records_sent == 0
    assert len(publisher._pending) == 3


def test_reservoir_caps_memory_and_counts_what_it_left_out() -> None:
    import random

    settings = EmfSettings(Endpoint("tcp", "127.0.0.1", 9), stack="dev", max_latency_values=200)
    publisher = EmfPublisher(settings, model_name="m", rng=random.Random(7))
    for i in range(10_000):
        publisher.observe(200, (i % 100) / 1000)  # 0-99 ms, uniformly
    window = publisher._window
    assert window.invocations == 10_000 and len(window.latencies_ms) == 200
    p99 = sorted(window.latencies_ms)[197]
    assert 90 <= p99 <= 99.0, p99  # the sample keeps the distribution's tail
    publisher._sender.send = lambda line: None  # type: ignore[method-assign]
    publisher.flush()
    assert publisher.latencies_unsampled == 9_800


class AgentStandIn:
    """A TCP listener on 127.0.0.1 that collects newline-delimited EMF records."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.records: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as stream:
            for line in stream:
                self.records.append(json.loads(line))

    def close(self) -> None:
        self.sock.close()


def _tiny_model() -> LoadedModel:
    """One numeric column ``x``; the model fails on negative x (a 5xx), else answers."""
    def predict(batch: Batch) -> Prediction:
        xs = batch.values[0]
        if any(x is not None and x < 0 for x in xs):
            raise ValueError("negative input")
        return Prediction([1 if (x or 0) > 0.5 else 0 for x in xs], [min(1.0, max(0.0, x or 0.0)) for x in xs])

    return LoadedModel(name="adult-income", version="3", uri="models:/adult-income/3", run_id=None, lineage={},
                       columns=(ColumnSpec("x", "double", True),), predict=predict, fast_path=False)


@pytest.fixture
def agent() -> Iterator[AgentStandIn]:
    stand_in = AgentStandIn()
    yield stand_in
    stand_in.close()


def test_live_server_publishes_what_it_served(agent: AgentStandIn) -> None:
    import uvicorn

    from serving.process import free_port

    settings = EmfSettings(Endpoint("tcp", "127.0.0.1", agent.port), stack="test", flush_interval_s=0.3,
                           log_group_name="/mlops/test/serving-metrics")
    model = _tiny_model()
    publisher = EmfPublisher(settings, model_name=model.name, model_version=model.version)
    app = ServingApp(model, AppSettings(), emf=publisher)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_config=None,
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started

    sent = {"ok": 0, "4xx": 0, "5xx": 0}
    plan = [({"x": 0.9}, "application/json", "ok")] * 30 + [({"x": 1}, "text/plain", "4xx")] * 6 + \
           [(b"{", "application/json", "4xx")] * 4 + [({"x": -1}, "application/json", "5xx")] * 5
    for index, (row, content_type, kind) in enumerate(plan):
        body = row if isinstance(row, bytes) else json.dumps({"dataframe_records": [row]}).encode()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("POST", "/invocations", body=body, headers={"Content-Type": content_type})
        status = connection.getresponse().status
        connection.close()
        assert status_class(status) == (None if kind == "ok" else kind), (index, status)
        sent[kind] += 1
        if index == 20:
            time.sleep(0.5)  # let at least one flush happen mid-traffic: windows must add up
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/metrics")
    prometheus = connection.getresponse().read().decode()
    connection.close()
    server.should_exit = True  # lifespan shutdown flushes the last window
    thread.join(timeout=15)
    time.sleep(0.2)

    records = list(agent.records)
    assert len(records) >= 2, records
    assert all(spec_violations(r) == [] for r in records), [spec_violations(r) for r in records]
    total = len(plan)
    assert sum(r.get(mn.INVOCATIONS, 0) for r in records) == total
    assert sum(r.get(mn.INVOCATION_4XX_ERRORS, 0) for r in records) == sent["4xx"] == 10
    assert sum(r.get(mn.INVOCATION_5XX_ERRORS, 0) for r in records) == sent["5xx"] == 5
    latencies = [v for r in records for v in (r.get(mn.MODEL_LATENCY_MS, []) if isinstance(
        r.get(mn.MODEL_LATENCY_MS, []), list) else [r[mn.MODEL_LATENCY_MS]])]
    assert len(latencies) == total and all(0 < v < 10_000 for v in latencies)
    assert {(r[mn.DIM_MODEL_NAME], r[mn.DIM_STACK]) for r in records} == {("adult-income", "test")}
    # Prometheus and CloudWatch saw the same requests.
    assert 'mlserve_requests_total{status="500"} 5.0' in prometheus
    assert 'mlserve_requests_total{status="415"} 6.0' in prometheus
    assert "mlserve_emf_records_dropped_total 0.0" in prometheus


def test_every_serving_alarm_watches_a_metric_the_server_publishes() -> None:
    """Cross check: the Monitoring alarms and the server agree on namespace, name, dims."""
    specs = alarm_specs(AlarmSettings(5, 50, 500, 0.25, 0.2, 0.05, 60, "", False), model_name="adult-income",
                        stack="prod", cluster_name="c")
    window = Window(invocations=2, errors_4xx=1, errors_5xx=1, latencies_ms=[3.0, 4.0], latencies_seen=2)
    (record,) = emf_records(window, model_name="adult-income", stack="prod", timestamp_ms=1)
    (directive,) = record["_aws"]["CloudWatchMetrics"]
    published = {(directive["Namespace"], m["Name"]) for m in directive["Metrics"]}
    serving = [s for s in specs if s.key in SERVING_ALARM_KEYS]
    assert len(serving) == len(SERVING_ALARM_KEYS) == 3
    for spec in serving:
        assert (spec.namespace, spec.metric) in published, spec.key
        assert sorted(spec.dimensions) == sorted(directive["Dimensions"][0]), spec.key
        assert {k: record[k] for k in spec.dimensions} == spec.dimensions, spec.key
    every_serving = [s for s in specs if s.namespace == mn.SERVING_NAMESPACE]
    assert {s.key for s in every_serving} == set(SERVING_ALARM_KEYS)
