"""The deploy-time server's lifetime: recorded in a pidfile, always stopped, reaped if orphaned.

The local deploy starts the real server (``python -m serving``, about 400 MB once the
model is loaded) in its own session. A run stopped by SIGTERM stops it on the way out
(``pipeline.commands.run`` turns the signal into an exception that unwinds through
:func:`tracked_server`), but nothing runs after SIGKILL: the server would live on,
reparented to init. So the server's pid and command line go into a pidfile the moment
it is started, before the minutes-long wait for health, and the next run on the store
calls :func:`reap_orphan`, which stops it. The command line is compared before any
signal is sent, so a pid the kernel has since given to another process is left alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Final

from serving.process import (
    LOOPBACK,
    RunningServer,
    ServerStartError,
    free_port,
    serving_command,
    stop,
    tail,
    wait_healthy,
)

PIDFILE_NAME: Final = "deploy-server.json"
"""The pidfile's name inside the local store."""
REAP_GRACE_S: Final = 10.0


@contextmanager
def tracked_server(
    model_uri: str,
    *,
    pidfile: Path,
    tracking_uri: str,
    log_path: Path,
    extra_args: Sequence[str] = (),
    startup_timeout_s: float = 120.0,
) -> Iterator[RunningServer]:
    """Start the server on a free loopback port, yield it once healthy, always stop it.

    ``pidfile`` records the process from its first instant until it has stopped.
    Raises :class:`serving.process.ServerStartError` with the log tail when it does not
    come up."""
    port = free_port()
    command = serving_command(model_uri, port, tracking_uri=tracking_uri, extra=extra_args)
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        # Its own session, so a reaper can signal the whole process group at once.
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        _write_pidfile(pidfile, process.pid, command)
        url = f"http://{LOOPBACK}:{port}"
        try:
            wait_healthy(url, process, startup_timeout_s)
        except ServerStartError as exc:
            raise ServerStartError(f"{exc}; log {log_path}:\n{tail(log_path)}") from None
        yield RunningServer(url, port, process, log_path)
    finally:
        stop(process)
        with suppress(FileNotFoundError):
            pidfile.unlink()


def _write_pidfile(pidfile: Path, pid: int, command: Sequence[str]) -> None:
    temporary = pidfile.with_name(pidfile.name + ".tmp")
    temporary.write_text(json.dumps({"pid": pid, "cmdline": list(command)}))
    temporary.replace(pidfile)


def _cmdline(pid: int) -> list[str] | None:
    """The live process's argv, or None when it is gone or a zombie."""
    try:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return None
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, IndexError):
        return None
    return raw.rstrip(b"\0").decode(errors="replace").split("\0") if raw else None


def reap_orphan(pidfile: Path, grace_s: float = REAP_GRACE_S) -> str | None:
    """Stop the server a killed run left behind; returns what was done, or None.

    The pidfile is removed in every case. A process whose command line differs from the
    recorded one is not ours (the pid was reused) and is not signalled."""
    try:
        record = json.loads(pidfile.read_text())
        pid, command = int(record["pid"]), list(record["cmdline"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        pidfile.unlink(missing_ok=True)
        return f"removed an unreadable deploy pidfile {pidfile}: {exc}"
    try:
        if _cmdline(pid) != command:
            return f"removed a stale deploy pidfile (process {pid} is gone)"
        # start_new_session made the server its group's leader: its group id is its pid.
        with suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and _cmdline(pid) == command:
            time.sleep(0.1)
        if _cmdline(pid) == command:
            with suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            return f"killed the deploy server (pid {pid}) a killed run left behind; it ignored SIGTERM for {grace_s:g} s"
        return f"stopped the deploy server (pid {pid}) a killed run left behind"
    finally:
        pidfile.unlink(missing_ok=True)
