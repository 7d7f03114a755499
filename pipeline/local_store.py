"""Where the embedded default keeps its state on a laptop or a CI machine.

Everything lives under one git-ignored folder (``.mlops/`` at the repository root unless
``MLOPS_HOME`` says otherwise): the MLflow SQLite database and artifact folder, the step
cache, run reports and the serving capture. Deleting the folder resets the platform.

MLflow records artifact locations as absolute ``file://`` URIs, so moving or copying the
store (or renaming the checkout that holds ``.mlops/``) once left every artifact "not
found": ``serve`` broke and every later run was refused by its gate. The store therefore
records its own root in ``store.json``, and :meth:`LocalStore.relocate` rewrites the old
root to the new one in the SQLite registry's path columns when they differ.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pipeline.schema import REPO_ROOT

MARKER: Final = "store.json"
PATH_COLUMNS: Final = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
    ("model_versions", "source"),
    ("model_version_tags", "value"),
    ("tags", "value"),
)
"""Columns of MLflow's SQLite schema that hold artifact paths or URIs."""


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

    def _recorded_root(self, conn: sqlite3.Connection) -> str | None:
        marker = self.root / MARKER
        try:
            return str(json.loads(marker.read_text())["root"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        # A store from before the marker: its experiments were created at <root>/artifacts.
        from urllib.parse import unquote, urlparse

        for (location,) in conn.execute(
            "SELECT artifact_location FROM experiments WHERE artifact_location LIKE 'file://%/artifacts'"
        ):
            return str(Path(unquote(urlparse(location).path)).parent)
        return None

    def relocate(self) -> str | None:
        """Rewrite artifact paths in the registry when the store has moved since it last
        looked; returns a note saying so, or None when nothing had to change."""
        db = self.root / "mlflow.db"
        if not db.is_file():
            return None
        with sqlite3.connect(db, timeout=30) as conn:
            try:
                recorded = self._recorded_root(conn)
            except sqlite3.OperationalError:  # no MLflow tables yet
                recorded = None
            current = str(self.root)
            note = None
            if recorded is not None and recorded != current:
                tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                pairs = ((Path(recorded).as_uri() + "/", self.root.as_uri() + "/"), (recorded + "/", current + "/"))
                changed = 0
                for table, column in PATH_COLUMNS:
                    if table not in tables:
                        continue
                    for old, new in pairs:
                        changed += conn.execute(
                            f'UPDATE "{table}" SET "{column}" = ? || substr("{column}", ?) '
                            f'WHERE substr("{column}", 1, ?) = ?',
                            (new, len(old) + 1, len(old), old),
                        ).rowcount
                note = f"the store moved from {recorded} to {current}: {changed} artifact path(s) in its registry rewritten"
        marker = self.root / MARKER
        if recorded != current or not marker.exists():
            temporary = marker.with_name(MARKER + ".tmp")
            temporary.write_text(json.dumps({"root": current}))
            temporary.replace(marker)
        return note
