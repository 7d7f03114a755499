"""The collector settings of a command's process (pipeline/gc_tuning.py): applied by
``python -m pipeline``, and only there; a library caller's process keeps its own."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from pipeline.gc_tuning import COMMAND_THRESHOLDS
from pipeline.schema import REPO_ROOT

PROBE = """
import gc, runpy, sys
sys.argv = ["pipeline", "--version"]
try:
    runpy.run_module("pipeline", run_name="__main__")
except SystemExit as exit_:
    print(gc.get_threshold(), gc.get_freeze_count() > 0, exit_.code)
"""


def test_a_command_collects_less_often_and_leaves_nothing_for_the_exit_to_scan() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"{COMMAND_THRESHOLDS} True 0"


def test_a_library_caller_keeps_its_collector_settings() -> None:
    from pipeline.cli import main

    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert (gc.get_threshold(), gc.get_freeze_count()) == (before, frozen) and gc.isenabled()
