"""The ASGI app in process: routes, bad input, model failures, capture and metrics.

These drive the app through httpx's ASGI transport (no sockets), so every refusing path
is cheap to cover; tests/serving/test_server.py repeats the essentials over real HTTP.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.app import AppSettings, ServingApp
from serving.capture import CaptureSettings, CaptureWriter
from serving.model import Prediction

pytestmark = pytest.mark.slow  # needs the trained fixture model


def call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def strict_json(response: httpx.Response) -> Any:
    def refuse(token: str) -> None:
        raise AssertionError(f"non-strict JSON token {token}")

    return json.loads(response.content, parse_constant=refuse)


@pytest.fixture(scope="module")
def app(loaded: Any) -> ServingApp:
    return ServingApp(loaded, AppSettings())


def invoke(app: Any, body: Any, content_type: str | None = "application/json", **kwargs: Any) -> httpx.Response:
    headers = dict(kwargs.pop("headers", {}))
    if content_type is not None:
        headers["content-type"] = content_type
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return call(app, "POST", "/invocations", content=content, headers=headers, **kwargs)


def test_prediction_matches_the_model_and_names_who_answered(app: ServingApp, loaded: Any, sample_rows: list) -> None:
    import pandas as pd
    import uuid

    response = invoke(app, {"dataframe_records": sample_rows}, headers={"X-Request-Id": "req-123"})
    assert response.status_code == 200
    body = strict_json(response)
    # The id is the server's own, never the client's (the monitor's label join relies on it).
    assert response.headers["x-request-id"] == body["request_id"] != "req-123"
    uuid.UUID(body["request_id"])
    assert body["model_version"] == loaded.version
    assert response.headers["x-model-name"] == "adult-income"
    assert response.headers["x-model-version"] == loaded.version
    expected = loaded.sklearn_model.predict_proba(pd.DataFrame(sample_rows).fillna(float("nan")))[:, 1]
    assert body["probabilities"] == pytest.approx(expected.tolist(), abs=1e-7)
    assert body["predictions"] == [int(p > 0.5) for p in expected]


def test_request_id_is_a_fresh_uuid_when_absent(app: ServingApp, sample_rows: list) -> None:
    import uuid

    response = invoke(app, {"instances": sample_rows[:1]})
    uuid.UUID(response.headers["x-request-id"])
    assert strict_json(response)["request_id"] == response.headers["x-request-id"]


def test_csv_and_every_json_format_agree(app: ServingApp, sample_rows: list) -> None:
    columns = list(sample_rows[0])
    split = {"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in sample_rows]}}
    columnar = {"inputs": {c: [r[c] for r in sample_rows] for c in columns}}
    csv_text = ",".join(columns) + "\n" + "\n".join(
        ",".join("" if r[c] is None else str(r[c]) for c in columns) for r in sample_rows
    )
    results = [
        strict_json(invoke(app, split))["probabilities"],
        strict_json(invoke(app, columnar))["probabilities"],
        strict_json(invoke(app, {"dataframe_records": sample_rows}))["probabilities"],
        strict_json(invoke(app, csv_text.encode(), "text/csv; charset=utf-8"))["probabilities"],
    ]
    assert all(r == results[0] for r in results)


@pytest.mark.parametrize(
    ("content_type", "body", "status", "code"),
    [
        (None, b'{"inputs": {}}', 415, "unsupported_media_type"),
        ("text/plain", b'{"inputs": {}}', 415, "unsupported_media_type"),
        ("application/json", b"", 400, "empty_body"),
        ("application/json", b'{"inputs": ', 400, "malformed_json"),
        ("application/json", b'{"rows": []}', 400, "unknown_format"),
        ("text/csv", b"", 400, "empty_body"),
    ],
)
def test_bad_requests_get_a_json_4xx(app: ServingApp, content_type, body, status, code) -> None:
    response = invoke(app, body, content_type)
    assert response.status_code == status
    error = strict_json(response)
    assert error["error"] == code and error["message"] and error["request_id"]
    assert "Traceback" not in response.text


def test_missing_extra_and_mistyped_columns_are_named(app: ServingApp, sample_rows: list) -> None:
    row = dict(sample_rows[0])
    del row["age"]
    row["salary"] = 3
    error = strict_json(invoke(app, {"dataframe_records": [row]}))
    assert error["error"] == "column_mismatch" and error["columns"] == ["age", "salary"]

    row = dict(sample_rows[0], age="forty", hours_per_week=None)
    response = invoke(app, {"dataframe_records": [row]})
    assert response.status_code == 422
    assert set(strict_json(response)["columns"]) == {"age", "hours_per_week"}


def test_non_finite_values_are_refused_by_column(app: ServingApp, sample_rows: list) -> None:
    columns = list(sample_rows[0])
    data = [[sample_rows[0][c] if c != "capital_gain" else "__INF__" for c in columns]]
    text = json.dumps({"dataframe_split": {"columns": columns, "data": data}}).replace('"__INF__"', "Infinity")
    response = invoke(app, text.encode())
    assert response.status_code == 422
    assert strict_json(response)["columns"] == ["capital_gain"]


def test_body_over_the_cap_is_413(loaded: Any, sample_rows: list) -> None:
    small = ServingApp(loaded, AppSettings(max_body_bytes=2048))
    body = {"dataframe_records": sample_rows * 10}
    response = invoke(small, body)
    assert response.status_code == 413
    assert strict_json(response)["error"] == "body_too_large"
    assert invoke(small, {"dataframe_records": sample_rows[:1]}).status_code == 200


def test_wrong_method_is_405_with_allow(app: ServingApp) -> None:
    response = call(app, "GET", "/invocations")
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert call(app, "POST", "/ping").status_code == 405
    assert call(app, "GET", "/nowhere").status_code == 404


def test_bad_request_id_header_is_400(app: ServingApp, sample_rows: list) -> None:
    response = invoke(app, {"instances": sample_rows[:1]}, headers={"X-Request-Id": "x" * 200})
    assert response.status_code == 400 and strict_json(response)["error"] == "bad_request_id"


def test_model_exception_is_500_with_an_error_id_in_the_log(
    loaded: Any, sample_rows: list, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(batch: Any) -> Prediction:
        raise ValueError("secret internal detail /srv/model.pkl")

    broken = ServingApp(replace(loaded, predict=explode), AppSettings())
    with caplog.at_level(logging.ERROR, logger="serving.app"):
        response = invoke(broken, {"instances": sample_rows[:1]})
    assert response.status_code == 500
    body = strict_json(response)
    assert body["error"] == "model_error" and len(body["error_id"]) == 16
    assert "secret" not in response.text and "Traceback" not in response.text
    assert body["error_id"] in caplog.text and "secret internal detail" in caplog.text
    assert call(broken, "GET", "/ping").status_code == 200


def test_non_finite_model_output_is_500_not_bare_nan(loaded: Any, sample_rows: list) -> None:
    broken = ServingApp(replace(loaded, predict=lambda b: Prediction([0] * b.n_rows, [float("nan")] * b.n_rows)), AppSettings())
    response = invoke(broken, {"instances": sample_rows[:2]})
    assert response.status_code == 500 and "NaN" not in response.text


def test_slow_model_times_out_with_504(loaded: Any, sample_rows: list) -> None:
    def slow(batch: Any) -> Prediction:
        time.sleep(1.0)
        return Prediction([0], [0.1])

    app = ServingApp(replace(loaded, predict=slow), AppSettings(request_timeout_s=0.2, inline_max_bytes=0, thread_max_bytes=0))
    response = invoke(app, {"instances": sample_rows[:1]})
    assert response.status_code == 504 and strict_json(response)["error"] == "timeout"


def test_version_route_reports_lineage(app: ServingApp, loaded: Any) -> None:
    body = strict_json(call(app, "GET", "/version"))
    assert body["model_name"] == "adult-income" and body["model_version"] == loaded.version
    assert body["model_uri"] == f"models:/adult-income/{loaded.version}"
    assert body["lineage"]["git_commit"] == "fixture"


def test_metrics_use_the_contract_names(loaded: Any, sample_rows: list) -> None:
    app = ServingApp(loaded, AppSettings())
    invoke(app, {"instances": sample_rows})
    invoke(app, b"", "application/json")
    text = call(app, "GET", "/metrics").text
    assert 'mlserve_requests_total{status="200"} 1.0' in text
    assert 'mlserve_requests_total{status="400"} 1.0' in text
    assert "mlserve_request_latency_seconds_bucket" in text
    assert f"mlserve_rows_scored_total {float(len(sample_rows))}" in text
    assert f'mlserve_model_info{{model_name="adult-income",model_version="{loaded.version}"}} 1.0' in text
    # Too few live predictions for a meaningful PSI yet: the gauge stays out.
    assert "mlserve_prediction_drift_psi" not in text
    for _ in range(12):
        invoke(app, {"instances": sample_rows})
    psi = [line for line in call(app, "GET", "/metrics").text.splitlines() if line.startswith("mlserve_prediction_drift_psi ")]
    assert len(psi) == 1 and float(psi[0].split()[1]) >= 0.0


def test_no_baseline_means_no_drift_gauge(loaded: Any, sample_rows: list) -> None:
    app = ServingApp(replace(loaded, baseline_predictions=None), AppSettings())
    for _ in range(12):
        invoke(app, {"instances": sample_rows})
    assert "mlserve_prediction_drift_psi" not in call(app, "GET", "/metrics").text


def test_sampled_capture_follows_the_contract(loaded: Any, sample_rows: list, tmp_path: Path) -> None:
    from pipeline.monitoring.capture import read_capture

    writer = CaptureWriter(CaptureSettings(tmp_path, sample_rate=1.0)).start()
    app = ServingApp(loaded, AppSettings(), writer)
    response = invoke(app, {"dataframe_records": sample_rows}, headers={"X-Request-Id": "cap-1"})
    writer.close()
    (path,) = tmp_path.glob("capture-*.jsonl")
    record = json.loads(path.read_text())
    assert set(record) == {
        "request_id", "client_request_id", "timestamp", "model_name", "model_version", "columns", "rows",
        "predictions", "probabilities",
    }
    assert record["request_id"] == response.headers["x-request-id"] != "cap-1"
    assert record["client_request_id"] == "cap-1" and record["timestamp"].endswith("Z")
    assert record["rows"][0] == [sample_rows[0][c] for c in record["columns"]]
    assert record["probabilities"] == strict_json(response)["probabilities"]
    # The monitor's reader (pipeline.monitoring) accepts what we write.
    window = read_capture(tmp_path, model_name="adult-income", model_version=loaded.version)
    assert window.rows == len(sample_rows) and window.malformed_lines == 0


def test_sample_rate_zero_captures_nothing(loaded: Any, sample_rows: list, tmp_path: Path) -> None:
    writer = CaptureWriter(CaptureSettings(tmp_path, sample_rate=0.0)).start()
    app = ServingApp(loaded, AppSettings(), writer)
    for _ in range(5):
        assert invoke(app, {"instances": sample_rows[:1]}).status_code == 200
    writer.close()
    assert list(tmp_path.glob("capture-*.jsonl")) == []


# --- bounded work, readiness, drain, SageMaker's hosting routes (issues 9 and 13) --------------


def where_model(loaded: Any) -> Any:
    """The fixture model answering each row with ``pid:thread`` of where it was scored."""
    import os
    import threading

    def predict(batch: Any) -> Prediction:
        return Prediction([f"{os.getpid()}:{threading.current_thread().name}"] * batch.n_rows, None)

    return replace(loaded, predict=predict)


def test_small_bodies_score_in_place_medium_in_a_thread_large_in_a_worker_process(
    loaded: Any, sample_rows: list
) -> None:
    import os
    import threading

    app = ServingApp(where_model(loaded), AppSettings(inline_max_bytes=1024, thread_max_bytes=8192))
    try:
        small = strict_json(invoke(app, {"dataframe_records": sample_rows[:1]}))["predictions"][0]
        medium = strict_json(invoke(app, {"dataframe_records": sample_rows[:10]}))["predictions"][0]
        large = strict_json(invoke(app, {"dataframe_records": sample_rows * 20}))["predictions"][0]
    finally:
        app.close()
    assert small == f"{os.getpid()}:{threading.current_thread().name}"
    assert medium.startswith(f"{os.getpid()}:score")
    assert int(large.split(":")[0]) != os.getpid() and large.endswith(":MainThread")


def test_a_dead_worker_is_a_503_and_the_pool_is_replaced(loaded: Any, sample_rows: list) -> None:
    import os

    def die(batch: Any) -> Prediction:
        if batch.n_rows == 2:
            os._exit(1)
        return Prediction([0] * batch.n_rows, None)

    app = ServingApp(replace(loaded, predict=die), AppSettings(inline_max_bytes=0, thread_max_bytes=0))
    try:
        response = invoke(app, {"dataframe_records": sample_rows[:2]})
        assert response.status_code == 503 and strict_json(response)["error"] == "worker_lost"
        assert response.headers["retry-after"] == "1"
        assert invoke(app, {"dataframe_records": sample_rows[:3]}).status_code == 200
        assert app.pool.replaced == 1
    finally:
        app.close()


def test_over_the_concurrency_limit_is_503_with_retry_after_and_ping_still_answers(loaded: Any, sample_rows: list) -> None:
    def slow(batch: Any) -> Prediction:
        time.sleep(1.0)
        return Prediction([0] * batch.n_rows, None)

    app = ServingApp(replace(loaded, predict=slow), AppSettings(inline_max_bytes=0, thread_max_bytes=0, max_concurrency=1))
    body = json.dumps({"dataframe_records": sample_rows[:2]}).encode()

    async def go() -> tuple[list[httpx.Response], httpx.Response, float]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            post = lambda: client.post("/invocations", content=body, headers={"content-type": "application/json"})  # noqa: E731
            first = asyncio.ensure_future(post())
            await asyncio.sleep(0.2)
            second = await post()
            ping = await client.get("/ping")
            return [await first, second], ping, time.perf_counter()

    try:
        (first, second), ping, _ = asyncio.run(go())
    finally:
        app.close()
    assert first.status_code == 200
    assert second.status_code == 503 and strict_json(second)["error"] == "overloaded"
    assert second.headers["retry-after"] == "1" and "limit is 1" in strict_json(second)["message"]
    assert ping.status_code == 200


def test_a_body_that_stops_arriving_is_408_and_closes(loaded: Any) -> None:
    app = ServingApp(loaded, AppSettings(body_timeout_s=0.3))
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": b'{"instances": [', "more_body": True}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.sleep(30)  # the client stalls mid-body
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/invocations",
             "headers": [(b"content-type", b"application/json"), (b"content-length", b"5000")]}
    asyncio.run(app(scope, receive, send))
    start = sent[0]
    assert start["status"] == 408 and (b"connection", b"close") in start["headers"]
    assert json.loads(sent[1]["body"])["error"] == "body_timeout"


@pytest.mark.parametrize(
    ("accept", "status", "content_type"),
    [
        (None, 200, "application/json"),
        ("*/*", 200, "application/json"),
        ("application/json", 200, "application/json"),
        ("text/csv", 200, "text/csv"),
        ("text/csv;q=0.5, application/json", 200, "application/json"),
        ("application/x-protobuf", 406, "application/json"),
        ("text/csv;q=0", 406, "application/json"),
    ],
)
def test_accept_is_honoured_or_refused_with_406(app: ServingApp, sample_rows: list, accept, status, content_type) -> None:
    headers = {"Accept": accept} if accept is not None else {}
    response = invoke(app, {"dataframe_records": sample_rows[:3]}, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == content_type
    if status == 406:
        error = strict_json(response)
        assert error["error"] == "not_acceptable"
        assert "application/json" in error["message"] and "text/csv" in error["message"]
    elif content_type == "text/csv":
        as_json = strict_json(invoke(app, {"dataframe_records": sample_rows[:3]}))
        lines = response.text.splitlines()
        assert [line.split(",") for line in lines] == [
            [str(label), repr(p)] for label, p in zip(as_json["predictions"], as_json["probabilities"], strict=True)
        ]


def test_execution_parameters_match_the_body_cap_and_the_workers(loaded: Any) -> None:
    default = strict_json(call(ServingApp(loaded, AppSettings()), "GET", "/execution-parameters"))
    assert default == {"MaxConcurrentTransforms": 2, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}
    small = strict_json(call(ServingApp(loaded, AppSettings(max_body_bytes=2 * 2**20 + 5, workers=3)),
                             "GET", "/execution-parameters"))
    assert small == {"MaxConcurrentTransforms": 3, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 2}


def test_without_a_model_it_is_alive_but_not_ready(loaded: Any, sample_rows: list) -> None:
    app = ServingApp(None, AppSettings())
    app.waiting_for = "waiting for models:/adult-income@champion: alias champion not found"
    assert call(app, "GET", "/livez").status_code == 200
    ping = call(app, "GET", "/ping")
    assert ping.status_code == 503 and "alias champion not found" in strict_json(ping)["message"]
    refused = invoke(app, {"dataframe_records": sample_rows[:1]})
    assert refused.status_code == 503 and strict_json(refused)["error"] == "not_ready"
    assert refused.headers["retry-after"] and "x-model-name" not in refused.headers
    assert call(app, "GET", "/version").status_code == 503
    app.serve_model(loaded)
    ready = call(app, "GET", "/ping")
    assert ready.status_code == 200
    # Which model answered: a name and version repeat across stores, the run id does not.
    assert loaded.run_id
    assert strict_json(ready) == {"status": "ok", "model_name": "adult-income", "model_version": loaded.version,
                                  "run_id": loaded.run_id}
    assert (ready.headers["x-model-name"], ready.headers["x-model-version"]) == ("adult-income", loaded.version)
    assert invoke(app, {"dataframe_records": sample_rows[:1]}).status_code == 200


def test_draining_says_so_on_ping_and_closes_every_connection(loaded: Any, sample_rows: list) -> None:
    app = ServingApp(loaded, AppSettings())
    app.drain()
    ping = call(app, "GET", "/ping")
    assert ping.status_code == 503 and strict_json(ping)["status"] == "draining"
    assert call(app, "GET", "/livez").status_code == 200
    served = invoke(app, {"dataframe_records": sample_rows[:1]})
    assert served.status_code == 200 and served.headers["connection"] == "close"


def test_closing_the_pool_is_bounded_even_with_a_request_stuck_in_a_worker(loaded: Any, sample_rows: list) -> None:
    def stuck(batch: Any) -> Prediction:
        time.sleep(60)
        return Prediction([0] * batch.n_rows, None)

    app = ServingApp(replace(loaded, predict=stuck), AppSettings(inline_max_bytes=0, thread_max_bytes=0, request_timeout_s=0.5))
    assert invoke(app, {"dataframe_records": sample_rows[:2]}).status_code == 504
    pids = app.pool.pids()
    started = time.monotonic()
    app.close()
    assert time.monotonic() - started < 5
    import psutil

    assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]


def test_large_bodies_past_their_limit_are_503_before_being_read(loaded: Any, sample_rows: list) -> None:
    def slow(batch: Any) -> Prediction:
        time.sleep(1.0)
        return Prediction([0] * batch.n_rows, None)

    app = ServingApp(replace(loaded, predict=slow),
                     AppSettings(inline_max_bytes=0, thread_max_bytes=0, workers=1, max_large_in_flight=1))
    body = json.dumps({"dataframe_records": sample_rows[:2]}).encode()

    async def go() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            post = lambda: client.post("/invocations", content=body, headers={"content-type": "application/json"})  # noqa: E731
            first = asyncio.ensure_future(post())
            await asyncio.sleep(0.2)
            second = await post()
            small = await client.get("/ping")
            return await first, second, small

    try:
        first, second, ping = asyncio.run(go())
    finally:
        app.close()
    assert first.status_code == 200 and ping.status_code == 200
    assert second.status_code == 503 and second.headers["retry-after"] == "1"
    assert strict_json(second)["error"] == "overloaded" and "the limit is 1" in strict_json(second)["message"]
    assert app.large_in_flight == 0 and app.in_flight == 0
