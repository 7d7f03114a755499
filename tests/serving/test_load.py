"""Bounded load and graceful shutdown on a real server on 127.0.0.1.

Eight clients with keep-alive connections send single-row and 20-row requests for 20 s;
the test asserts zero errors and that the server's RSS grows by less than
``RSS_GROWTH_BOUND`` between the end of warm-up and the end of the run (a leak of even
a few hundred bytes per request would cross it). Then one large request is put in
flight and the server gets SIGTERM: the request must still be answered and the process
must exit 0 well inside SageMaker's 30 s. Throughput numbers belong to
benchmarks/serving.py, not here.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from typing import Any

import psutil
import pytest

from serving.process import running_server, stop

pytestmark = pytest.mark.slow

CLIENTS = 8
DURATION_S = 20.0
WARMUP_S = 3.0
RSS_GROWTH_BOUND = 48 * 1024 * 1024


def _client(port: int, bodies: list[bytes], until: float, results: dict[str, int], errors: list[str]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    sent = 0
    try:
        while time.monotonic() < until:
            connection.request(
                "POST", "/invocations", body=bodies[sent % len(bodies)], headers={"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            payload = response.read()
            if response.status != 200:
                errors.append(f"{response.status}: {payload[:200]!r}")
            sent += 1
    except Exception as exc:  # any transport failure is an error of the run
        errors.append(repr(exc))
    finally:
        connection.close()
        results[threading.current_thread().name] = sent


def test_load_then_graceful_sigterm(registered: Any, sample_rows: list, tmp_path: Any) -> None:
    bodies = [
        json.dumps({"dataframe_records": sample_rows[:1]}).encode(),
        json.dumps({"instances": (sample_rows * 2)}).encode(),
    ]
    extra = ["--capture-dir", str(tmp_path / "capture"), "--capture-sample-rate", "0.2"]
    with running_server(
        "models:/adult-income@champion", tracking_uri=registered.tracking_uri, extra_args=extra,
        log_path=tmp_path / "server.log",
    ) as server:
        proc = psutil.Process(server.process.pid)
        results: dict[str, int] = {}
        errors: list[str] = []
        until = time.monotonic() + DURATION_S
        threads = [
            threading.Thread(target=_client, args=(server.port, bodies, until, results, errors), name=f"client-{i}")
            for i in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        time.sleep(WARMUP_S)
        rss_after_warmup = proc.memory_info().rss
        for thread in threads:
            thread.join(DURATION_S + 30)
        rss_at_end = proc.memory_info().rss
        total = sum(results.values())
        assert errors == [], errors[:5]
        assert total > CLIENTS * 20, f"only {total} requests completed"
        growth = rss_at_end - rss_after_warmup
        assert growth < RSS_GROWTH_BOUND, f"RSS grew {growth / 2**20:.1f} MiB over {total} requests"

        # Graceful shutdown: a request whose body is still arriving when SIGTERM lands is
        # answered in full, and only then does the server exit.
        body = json.dumps({"instances": sample_rows * 300}).encode()
        head = (
            f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        sock.sendall(head + body[: len(body) // 2])
        time.sleep(0.5)
        stopped: dict[str, Any] = {}
        stopper = threading.Thread(
            target=lambda: stopped.update(code=stop(server.process, grace_s=30), at=time.monotonic())
        )
        signalled_at = time.monotonic()
        stopper.start()
        time.sleep(1.0)
        assert server.process.poll() is None, "the server exited with a request in flight"
        sock.sendall(body[len(body) // 2 :])
        reply = http.client.HTTPResponse(sock)
        reply.begin()
        payload = json.loads(reply.read())
        answered_at = time.monotonic()
        sock.close()
        stopper.join(30)
        assert reply.status == 200 and len(payload["predictions"]) == len(sample_rows) * 300
        assert stopped["code"] == 0, server.log_tail()
        assert answered_at <= stopped["at"] and stopped["at"] - signalled_at < 25
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
