"""The real server over real HTTP on 127.0.0.1, started by ``python -m pipeline serve``.

Covers what only a socket shows (a request with no Content-Type header at all, a body
over 6 MiB sent for real, the server still serving after each refusal, capture files on
disk) and fuzzes the server's own OpenAPI description with schemathesis: no 5xx, every
status and body as documented.
"""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from serving.process import RunningServer

pytestmark = pytest.mark.slow


def raw_request(server: RunningServer, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """One request through http.client, which adds no Content-Type on its own."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_ping_version_and_prediction(live_server: RunningServer, registered: Any, sample_rows: list) -> None:
    status, _, body = raw_request(live_server, "GET", "/ping")
    assert status == 200
    status, _, body = raw_request(live_server, "GET", "/version")
    assert json.loads(body)["model_version"] == registered.version
    payload = json.dumps({"dataframe_records": sample_rows}).encode()
    status, headers, body = raw_request(
        live_server, "POST", "/invocations", payload, {"Content-Type": "application/json", "X-Request-Id": "live-1"}
    )
    assert status == 200 and headers["x-request-id"] == json.loads(body)["request_id"] != "live-1"
    assert (headers["x-model-name"], headers["x-model-version"]) == ("adult-income", registered.version)
    assert len(json.loads(body)["probabilities"]) == len(sample_rows)


def test_no_content_type_header_is_415_and_server_keeps_serving(live_server: RunningServer, sample_rows: list) -> None:
    payload = json.dumps({"dataframe_records": sample_rows}).encode()
    status, _, body = raw_request(live_server, "POST", "/invocations", payload)
    assert status == 415 and json.loads(body)["error"] == "unsupported_media_type"
    assert raw_request(live_server, "GET", "/ping")[0] == 200


def test_body_over_6_mib_is_413(live_server: RunningServer) -> None:
    payload = b'{"instances": [' + b"0," * (3_200_000) + b"0]}"
    assert len(payload) > 6_291_456
    status, _, body = raw_request(live_server, "POST", "/invocations", payload, {"Content-Type": "application/json"})
    assert status == 413 and json.loads(body)["error"] == "body_too_large"
    assert raw_request(live_server, "GET", "/ping")[0] == 200


def test_model_error_never_leaks_a_trace(live_server: RunningServer, sample_rows: list) -> None:
    # Every refusal path over the wire answers JSON without internals.
    for payload, content_type in [
        (b"{", "application/json"),
        (b'{"inputs": {"age": [1]}}', "application/json"),
        (b"age\n1\n", "text/csv"),
    ]:
        status, headers, body = raw_request(live_server, "POST", "/invocations", payload, {"Content-Type": content_type})
        assert 400 <= status < 500 and headers["content-type"] == "application/json"
        assert b"Traceback" not in body and b"File \"" not in body


def test_live_capture_files_follow_the_contract(live_server: RunningServer, capture_dir: Path, sample_rows: list) -> None:
    payload = json.dumps({"instances": sample_rows[:2]}).encode()
    raw_request(live_server, "POST", "/invocations", payload, {"Content-Type": "application/json", "X-Request-Id": "cap-live"})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [json.loads(line) for f in capture_dir.glob("capture-*.jsonl") for line in f.read_text().splitlines()]
        found = [line for line in lines if line["client_request_id"] == "cap-live"]
        if found:
            break
        time.sleep(0.3)
    assert found and len(found[0]["rows"]) == 2


def test_metrics_count_live_traffic(live_server: RunningServer) -> None:
    status, headers, body = raw_request(live_server, "GET", "/metrics")
    text = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert 'mlserve_requests_total{status="200"}' in text
    assert 'mlserve_requests_total{status="415"}' in text
    assert "mlserve_model_info{" in text



def test_a_server_starts_without_a_full_collection_and_exports_its_process(registered: Any) -> None:
    """The collector is off while the server imports its libraries and loads the model
    (each full pass would rescan every imported object), then what was loaded is frozen
    before the workers fork: the first ``/metrics`` of a fresh server counts no
    generation-2 pass, and carries the standard process series."""
    from serving.process import running_server

    with running_server(f"models:/{registered.model_name}@champion", tracking_uri=registered.tracking_uri) as server:
        status, _, body = raw_request(server, "GET", "/metrics")
    text = body.decode()
    assert status == 200
    assert 'python_gc_collections_total{generation="2"} 0.0' in text, [
        line for line in text.splitlines() if line.startswith("python_gc_collections_total")]
    assert "process_resident_memory_bytes" in text and "process_open_fds" in text

FUZZ_CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_openapi_fuzz_finds_no_5xx_and_no_schema_violation(live_server: RunningServer, mode: str) -> None:
    """Every operation of /openapi.json, fuzzed with schema-valid and schema-invalid data.

    schemathesis's pytest plugin does not load under pytest 9, so its strategies are
    driven through hypothesis directly; the checks are schemathesis's own. Negative
    cases must also be refused (negative_data_rejection)."""
    from hypothesis import given
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{live_server.url}/openapi.json")
    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    extra = [checks.negative_data_rejection] if mode == "negative" else []
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if mode == "negative" and operation.label != "POST /invocations":
            continue  # the GET routes take no input, so no invalid input exists for them

        @given(case=operation.as_strategy(generation_mode=generation))
        @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def fuzz(case: Any) -> None:
            case.call_and_validate(base_url=live_server.url, checks=FUZZ_CHECKS + extra)

        fuzz()
        tested.append(operation.label)
    expected = {"POST /invocations"} if mode == "negative" else {"GET /ping", "POST /invocations", "GET /version", "GET /metrics"}
    assert expected <= set(tested)
