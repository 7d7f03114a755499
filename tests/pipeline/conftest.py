"""Shared fixtures of the commit-pipeline tests: small real-data samples and a fast model.

Most tests run on a stratified sample of the real Adult data (big enough that every
gate slice judged by default has a few hundred holdout rows) and a small XGBoost, so the
whole suite stays within its time budget on two cores.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from pipeline.schema import DEFAULT_DATASET


@pytest.fixture(scope="session")
def adult_frame() -> pd.DataFrame:
    """The real default dataset, read once."""
    return pd.read_csv(DEFAULT_DATASET)


@pytest.fixture(scope="session")
def adult_sample(adult_frame: pd.DataFrame) -> pd.DataFrame:
    """A 16,000-row random sample of the real data (fixed seed)."""
    return adult_frame.sample(n=16_000, random_state=7).reset_index(drop=True)


@pytest.fixture(scope="session")
def adult_sample_csv(adult_sample: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "adult_sample.csv"
    adult_sample.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def fast_hyperparameters():
    """A small CPU model: enough to reach ~0.9 AUC on the sample in a second or two."""
    from training.model import Hyperparameters

    return Hyperparameters(n_estimators=80, max_depth=5, learning_rate=0.15, device="cpu")


@pytest.fixture()
def fresh_console(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI's console as a new process has it: no verbosity from the environment
    before the test, the module's state reset after it (``--quiet``/``--json`` set it)."""
    from pipeline import console

    monkeypatch.delenv("MLFLOW_LOGGING_LEVEL", raising=False)
    monkeypatch.delenv("PIPELINE_DEBUG", raising=False)
    yield
    console.reset()
