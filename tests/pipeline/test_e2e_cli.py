"""The README's promise, through the real CLI on the real default dataset: a fresh store
promotes a first champion (exit 0); the same run again finishes from cache (exit 0);
a corrupted dataset exits non-zero and leaves the champion unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline.schema import DEFAULT_DATASET, REPO_ROOT

pytestmark = pytest.mark.slow


def _run(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLOPS_HOME": str(store)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "run", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )


def test_default_dataset_end_to_end(tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = _run(store)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Outcome:   promoted" in first.stdout and "Champion:  v1" in first.stdout
    assert "mlflow ui --backend-store-uri sqlite:///" in first.stdout
    assert "training XGBoost on device=" in first.stderr and "[5/10] train: done" in first.stderr
    # MLflow's own log lines are quiet by default (--verbose shows them).
    for noise in ("INFO mlflow", "WARNING mlflow", "Creating initial MLflow database tables"):
        assert noise not in first.stderr, first.stderr
    assert "[10/10] deploy: done" in first.stderr

    again = _run(store)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to do" in again.stdout
    assert "[5/10] train: cached" in again.stderr
    quiet = _run(store, "--quiet")
    assert quiet.returncode == 0 and "nothing to do" in quiet.stdout
    assert quiet.stderr == "", "--quiet leaves stderr to warnings and errors"

    corrupted = tmp_path / "corrupted.csv"
    frame = pd.read_csv(DEFAULT_DATASET)
    frame.loc[:99, "capital_loss"] = -1
    frame.to_csv(corrupted, index=False)
    bad = _run(store, "--data", str(corrupted))
    assert bad.returncode == 4, bad.stdout + bad.stderr
    assert "capital_loss" in bad.stdout
    assert "Champion:  v1" in bad.stdout
    assert "validation.md" in bad.stdout
    check = _run(store)
    assert check.returncode == 0 and "Champion:  v1" in check.stdout
