"""The deploy server's pidfile: a server a killed run left behind is stopped by the next
run, and a pid the kernel has given to another process is never signalled."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from pipeline.deploy_server import reap_orphan


def _orphan_like(tmp_path: Path) -> tuple[subprocess.Popen[bytes], list[str]]:
    command = [sys.executable, "-c", "import time; time.sleep(300)", "deploy-server-stand-in"]
    return subprocess.Popen(command, start_new_session=True), command


def test_a_recorded_server_is_stopped_and_the_pidfile_removed(tmp_path: Path) -> None:
    process, command = _orphan_like(tmp_path)
    pidfile = tmp_path / "deploy-server.json"
    pidfile.write_text(json.dumps({"pid": process.pid, "cmdline": command}))
    try:
        time.sleep(0.2)
        note = reap_orphan(pidfile, grace_s=5)
        assert note is not None and f"pid {process.pid}" in note
        assert process.wait(5) is not None
        assert not pidfile.exists()
    finally:
        process.kill()
        process.wait()


def test_a_reused_pid_is_left_alone(tmp_path: Path) -> None:
    process, command = _orphan_like(tmp_path)
    pidfile = tmp_path / "deploy-server.json"
    pidfile.write_text(json.dumps({"pid": process.pid, "cmdline": [sys.executable, "-m", "serving", "--port", "1"]}))
    try:
        time.sleep(0.2)
        note = reap_orphan(pidfile, grace_s=1)
        assert note is not None and "stale" in note
        assert process.poll() is None, "a process that is not the recorded server was signalled"
        assert not pidfile.exists()
    finally:
        process.kill()
        process.wait()


def test_no_pidfile_is_nothing_to_do(tmp_path: Path) -> None:
    assert reap_orphan(tmp_path / "deploy-server.json") is None


def test_an_unreadable_pidfile_is_removed_and_named(tmp_path: Path) -> None:
    pidfile = tmp_path / "deploy-server.json"
    pidfile.write_text("{not json")
    note = reap_orphan(pidfile)
    assert note is not None and "unreadable" in note and not pidfile.exists()


def test_half_written_step_folders_of_killed_runs_are_swept(tmp_path: Path) -> None:
    import os

    from pipeline.runner import sweep_stale_work_dirs

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / "train" / f".tmp-0123456789abcdef-{dead.pid}"
    live = tmp_path / "train" / f".tmp-0123456789abcdef-{os.getpid()}"
    for folder in (stale, live):
        folder.mkdir(parents=True)
        (folder / "model.joblib").write_bytes(b"x" * 1024)
    assert sweep_stale_work_dirs(tmp_path) == [stale]
    assert not stale.exists() and live.exists()
