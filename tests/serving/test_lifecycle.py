"""The server process over real sockets on 127.0.0.1: connection guards, the wait for a
first champion, and the drain on SIGTERM.

What only a socket shows: connections that never finish their head, more connections
than the cap, a head over 16 KiB, requests that arrive around SIGTERM, and a model alias
that appears while the server is already up.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from serving.process import RunningServer, running_server

pytestmark = pytest.mark.slow


def get(server: RunningServer, path: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def closed_by_server(sock: socket.socket, within_s: float) -> bytes | None:
    """What the server sent before closing ``sock`` (b"" for a silent close), or None
    if it was still open after ``within_s``."""
    sock.settimeout(within_s)
    received = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return received
            received += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        return received


@pytest.fixture(scope="module")
def guarded(registered: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    log = tmp_path_factory.mktemp("guarded") / "server.log"
    with running_server("models:/adult-income@champion", tracking_uri=registered.tracking_uri, log_path=log,
                        extra_args=["--header-timeout", "1", "--max-connections", "40"]) as server:
        yield server


def test_heads_that_never_finish_are_closed_and_ping_keeps_answering(guarded: RunningServer) -> None:
    partial = [socket.create_connection(("127.0.0.1", guarded.port)) for _ in range(15)]
    silent = [socket.create_connection(("127.0.0.1", guarded.port)) for _ in range(15)]
    for sock in partial:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n")
    assert get(guarded, "/ping")[0] == 200
    try:
        answers = [closed_by_server(sock, 5.0) for sock in partial]
        quiet = [closed_by_server(sock, 5.0) for sock in silent]
    finally:
        for sock in partial + silent:
            sock.close()
    assert all(a is not None and a.startswith(b"HTTP/1.1 408 ") and b'"header_timeout"' in a for a in answers), answers[:2]
    assert quiet == [b""] * len(silent)
    assert get(guarded, "/ping")[0] == 200


def test_past_the_connection_cap_the_idlest_is_closed_so_ping_still_connects(guarded: RunningServer) -> None:
    idle = [socket.create_connection(("127.0.0.1", guarded.port)) for _ in range(60)]
    try:
        time.sleep(0.3)
        status, _, body = get(guarded, "/ping")
        assert status == 200 and json.loads(body)["status"] == "ok"
        evicted = sum(closed_by_server(sock, 0.2) is not None for sock in idle)
        assert evicted >= 20, f"only {evicted} of 60 idle connections were closed under a cap of 40"
    finally:
        for sock in idle:
            sock.close()


def test_an_oversized_head_is_431_in_json_not_a_reset(guarded: RunningServer) -> None:
    sock = socket.create_connection(("127.0.0.1", guarded.port), timeout=10)
    try:
        head = b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Junk: " + b"a" * 1_000_000 + b"\r\n\r\n"
        try:
            sock.sendall(head)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and stopped reading; its answer is still readable
        answer = closed_by_server(sock, 5.0)
    finally:
        sock.close()
    assert answer is not None and answer.startswith(b"HTTP/1.1 431 "), answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "header_too_large"
    assert get(guarded, "/ping")[0] == 200


def test_a_first_deploy_waits_alive_and_not_ready_then_serves_the_alias(registered: Any, tmp_path: Path) -> None:
    """models:/NAME@ALIAS with no such alias yet: no exit, /livez 200, /ping 503, then
    the alias appears and the server serves it without a restart."""
    from mlflow.tracking import MlflowClient

    alias = "first-deploy"
    client = MlflowClient(registered.tracking_uri, registry_uri=registered.tracking_uri)
    with running_server(f"models:/adult-income@{alias}", tracking_uri=registered.tracking_uri,
                        extra_args=["--resolve-max-interval", "1"], health_path="/livez",
                        log_path=tmp_path / "server.log") as server:
        try:
            deadline = time.monotonic() + 60
            while "first-deploy" not in json.loads(get(server, "/ping")[2])["message"]:  # imports, first try
                assert time.monotonic() < deadline, server.log_tail()
                time.sleep(0.3)
            for _ in range(6):
                status, _, body = get(server, "/ping")
                assert status == 503 and "first-deploy" in json.loads(body)["message"], body
                assert get(server, "/livez")[0] == 200
                assert server.process.poll() is None, server.log_tail()
                time.sleep(0.5)
            client.set_registered_model_alias("adult-income", alias, registered.version)
            deadline = time.monotonic() + 60
            while get(server, "/ping")[0] != 200:
                assert time.monotonic() < deadline, server.log_tail()
                time.sleep(0.3)
            status, headers, body = get(server, "/ping")
            assert json.loads(body) == {"status": "ok", "model_name": "adult-income", "model_version": registered.version,
                                        "run_id": registered.run_id}
            assert headers["x-model-version"] == registered.version
        finally:
            client.delete_registered_model_alias("adult-income", alias)


def _post(port: int, body: bytes, results: list[Any]) -> None:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        connection.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        results.append((response.status, response.getheader("connection")))
        connection.close()
    except ConnectionRefusedError:
        results.append("refused")  # the listener had closed: the client tries elsewhere
    except Exception as exc:  # a reset or a cut response: what the drain must prevent
        results.append(repr(exc))


def test_sigterm_drains_requests_around_the_signal_and_exits_0_within_the_bound(
    registered: Any, sample_rows: list, tmp_path: Path
) -> None:
    body = json.dumps({"dataframe_records": sample_rows * 30}).encode()  # in a worker: a few ms each
    with running_server("models:/adult-income@champion", tracking_uri=registered.tracking_uri,
                        extra_args=["--drain", "3"], log_path=tmp_path / "server.log") as server:
        results: list[Any] = []
        threads = [threading.Thread(target=_post, args=(server.port, body, results)) for _ in range(12)]
        for thread in threads[:6]:  # sent just before the signal
            thread.start()
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        for thread in threads[6:]:  # sent just after it
            thread.start()
            time.sleep(0.01)
        draining = get(server, "/ping")
        for thread in threads:
            thread.join(30)
        code = server.process.wait(15)
        took = time.monotonic() - signalled
        assert draining[0] == 503 and json.loads(draining[2])["status"] == "draining"
        answered = [r for r in results if r != "refused"]
        assert all(isinstance(r, tuple) and r[0] == 200 for r in answered), results
        assert sum(1 for r in answered if r[1] == "close") >= 6, results
        assert len(answered) >= 6, results
        assert code == 0, server.log_tail()
        assert took < 3 + 1.5, f"exit {took:.2f} s after SIGTERM with --drain 3"


def test_ping_answers_when_idle_connections_would_exhaust_the_descriptor_limit(
    registered: Any, tmp_path: Path
) -> None:
    """A hard limit of 256 descriptors and 400 connections that send nothing: the cap
    (192 under the limit: a reserve and one accept burst) closes the idlest, so the probe
    finds a free descriptor. (When connections arrive faster than the loop runs, asyncio
    can still meet EMFILE for a moment; it then pauses accepting for 1 s, and the cap has
    freed descriptors by the time it resumes: the probe is answered, later.)"""
    import shlex

    from serving.process import free_port, serving_command

    port = free_port()
    command = serving_command("models:/adult-income@champion", port, tracking_uri=registered.tracking_uri)
    shell = ["/bin/sh", "-c", f"ulimit -n 256 && exec {shlex.join(command)}"]
    with running_server(command=shell, port=port, log_path=tmp_path / "server.log") as server:
        flood: list[socket.socket] = []
        try:
            for _ in range(400):
                flood.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            time.sleep(0.5)
            for _ in range(5):
                assert get(server, "/ping", timeout=10)[0] == 200, server.log_tail()
            open_now = sum(closed_by_server(sock, 0.05) is None for sock in flood)
            assert open_now <= 256 - 64 - 128, f"{open_now} connections held open under a 256-descriptor limit"
        finally:
            for sock in flood:
                sock.close()
