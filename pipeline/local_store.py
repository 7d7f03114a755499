"""Where the embedded default keeps its state on a laptop or a CI machine.

Everything lives under one git-ignored folder (``.mlops/`` at the repository root unless
``MLOPS_HOME`` says otherwise): the MLflow SQLite database and artifact folder, the step
cache, run reports and the serving capture. Deleting the folder resets the platform.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.schema import REPO_ROOT


@dataclass(frozen=True)
class LocalStore:
    """Paths of the embedded default's state, all under ``root``."""

    root: Path

    @classmethod
    def default(cls) -> LocalStore:
        """The store named by ``MLOPS_HOME``, else ``.mlops/`` in the repository."""
        return cls(Path(os.environ.get("MLOPS_HOME", REPO_ROOT / ".mlops")).resolve())

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking and registry URI of the local SQLite backend."""
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.root / "artifacts"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def capture_dir(self) -> Path:
        return self.root / "capture"

    def ensure(self) -> LocalStore:
        """Create the folders; returns self so callers can chain."""
        for path in (self.root, self.artifact_root, self.cache_dir, self.reports_dir, self.capture_dir):
            path.mkdir(parents=True, exist_ok=True)
        return self
