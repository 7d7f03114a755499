"""Run the server as a child process on 127.0.0.1 and always stop it.

The deploy step, the tests and the benchmark all need "a real server on a free loopback
port, ready, then gone": :func:`running_server` starts ``python -m serving`` (or any
command) with its output in a log file, waits until ``/ping`` answers 200, and on exit
sends SIGTERM, waits for the graceful shutdown and kills only if it overstays. Health
checks go through a proxy-less opener so a developer's ``HTTP_PROXY`` can never route
loopback traffic elsewhere.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"


class ServerStartError(RuntimeError):
    """The server exited or never became healthy; the message carries its log tail."""


@dataclass(frozen=True)
class RunningServer:
    """A started server: where it answers, its process and its log file."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server's log."""
        return tail(self.log_path, lines)


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file, or '' when it does not exist."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port the OS reports free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def loopback_opener() -> urllib.request.OpenerDirector:
    """A urllib opener that ignores proxy settings."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float, path: str = "/ping") -> None:
    """Poll ``url + path`` until 200; raise :class:`ServerStartError` on exit or timeout."""
    opener = loopback_opener()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerStartError(f"server exited with code {process.returncode} before becoming healthy")
        try:
            with opener.open(url + path, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.2)
    raise ServerStartError(f"server not healthy at {url}{path} after {timeout_s:g} s")


def stop(process: subprocess.Popen[bytes], grace_s: float = 30.0) -> int:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    return int(process.returncode)


def serving_command(model_uri: str, port: int, *, tracking_uri: str | None = None, extra: Sequence[str] = ()) -> list[str]:
    """The ``python -m serving`` command line for a model on 127.0.0.1:``port``."""
    command = [sys.executable, "-m", "serving", "--model-uri", model_uri, "--host", LOOPBACK, "--port", str(port)]
    if tracking_uri:
        command += ["--tracking-uri", tracking_uri]
    return command + list(extra)


@contextmanager
def running_server(
    model_uri: str | None = None,
    *,
    tracking_uri: str | None = None,
    extra_args: Sequence[str] = (),
    command: Sequence[str] | None = None,
    port: int | None = None,
    log_path: Path | None = None,
    env: dict[str, str] | None = None,
    startup_timeout_s: float = 90.0,
    health_path: str = "/ping",
) -> Iterator[RunningServer]:
    """Start a server on 127.0.0.1 and yield it once healthy; always stop it.

    Give ``model_uri`` for our server, or a full ``command`` (with ``port`` already in
    it) for another one such as ``mlflow models serve``. Raises
    :class:`ServerStartError` with the log tail when it does not come up."""
    port = port or free_port()
    if command is None:
        if model_uri is None:
            raise ValueError("running_server needs model_uri or command")
        command = serving_command(model_uri, port, tracking_uri=tracking_uri, extra=extra_args)
    if log_path is None:
        handle, name = tempfile.mkstemp(prefix="serving-", suffix=".log")
        os.close(handle)
        log_path = Path(name)
    child_env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})}
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            list(command), stdout=log_file, stderr=subprocess.STDOUT, env=child_env, start_new_session=True
        )
    url = f"http://{LOOPBACK}:{port}"
    try:
        try:
            wait_healthy(url, process, startup_timeout_s, health_path)
        except ServerStartError as exc:
            raise ServerStartError(f"{exc}; log {log_path}:\n{tail(log_path)}") from None
        yield RunningServer(url, port, process, log_path)
    finally:
        stop(process)
