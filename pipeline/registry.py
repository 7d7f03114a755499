"""The model registry side of the pipeline: who is champion, and the lock around promotion.

MLflow aliases (``challenger``, ``champion``) name the versions; stages are never used
(docs/contracts.md, "The model"). Reading the champion of a local SQLite store goes
straight to the database with the standard library, because importing MLflow costs
seconds and a re-run with nothing changed must finish in under three. Every write goes
through MLflow, inside ``registry_lock`` so that two runs on one store cannot both
promote from the same stale view of the champion.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

CHAMPION = "champion"
CHALLENGER = "challenger"
CANDIDATE = "candidate"
"""The delivery path's release alias: passed the gate, not yet canaried or promoted."""
LOCK_TIMEOUT_S = 1800.0

SMOKE_TAG = "deploy_smoke_test"
"""Model version tag recording the local deploy's verdict (``pending``/``passed``/``failed``)."""
PENDING = "pending"
"""``SMOKE_TAG`` value from promotion until the deploy's verdict: a run that dies in
between leaves it, and the next run finishes the deploy (``pipeline.steps.deploy``)."""
REPLACED_TAG = "replaced_champion"
"""Model version tag naming the version this one replaced as champion (``none`` if none)."""
GATE_CHAMPION_TAG = "gate_champion"
"""Model version tag naming the champion the gate judged this version against (``none``)."""


@dataclass(frozen=True)
class ChampionRef:
    """The version the ``champion`` alias points at, with its tags."""

    version: str
    run_id: str
    source: str
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """What the gate's cache key depends on: which version, from which run."""
        return f"{self.version}:{self.run_id}"


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or None for any other scheme."""
    if not tracking_uri.startswith("sqlite:"):
        return None
    parsed = urlparse(tracking_uri)
    return Path(unquote(parsed.path)) if parsed.path else None


def _version_from_sqlite(db: Path, model_name: str, query: str, params: tuple[str, ...]) -> ChampionRef | None:
    """The version ``query`` selects (``version, run_id, source``) with its tags, read-only.

    A read-only URI: never create or migrate the database from this path; a fresh
    database without the registry tables yet has no version.
    """
    if not db.is_file():
        return None
    with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=30) as conn:
        try:
            row = conn.execute(query, params).fetchone()
        except sqlite3.OperationalError:
            return None
        if row is None:
            return None
        tags = dict(
            conn.execute(
                "SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?", (model_name, row[0])
            ).fetchall()
        )
    return ChampionRef(version=str(row[0]), run_id=str(row[1] or ""), source=str(row[2] or ""), tags=tags)


def _champion_from_sqlite(db: Path, model_name: str) -> ChampionRef | None:
    return _version_from_sqlite(
        db, model_name,
        "SELECT a.version, v.run_id, v.source FROM registered_model_aliases a "
        "JOIN model_versions v ON v.name = a.name AND v.version = a.version "
        "WHERE a.name = ? AND a.alias = ?",
        (model_name, CHAMPION),
    )


def _champion_from_mlflow(tracking_uri: str, model_name: str) -> ChampionRef | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        version = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    return ChampionRef(
        version=str(version.version), run_id=version.run_id or "", source=version.source or "", tags=dict(version.tags)
    )


def _candidate_from_sqlite(db: Path, model_name: str, candidate_key: str) -> ChampionRef | None:
    return _version_from_sqlite(
        db, model_name,
        "SELECT v.version, v.run_id, v.source FROM model_versions v JOIN model_version_tags t "
        "ON t.name = v.name AND t.version = v.version "
        "WHERE v.name = ? AND t.key = 'candidate_key' AND t.value = ? ORDER BY v.version DESC LIMIT 1",
        (model_name, candidate_key),
    )


def _candidate_from_mlflow(tracking_uri: str, model_name: str, candidate_key: str) -> ChampionRef | None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    quoted = model_name.replace("'", "\\'")
    found = client.search_model_versions(f"name = '{quoted}' and tags.candidate_key = '{candidate_key}'")
    if not found:
        return None
    latest = max(found, key=lambda v: int(v.version))
    return ChampionRef(str(latest.version), latest.run_id or "", latest.source or "", dict(latest.tags))


def registered_candidate(tracking_uri: str, model_name: str, candidate_key: str) -> ChampionRef | None:
    """The latest version registered from ``candidate_key`` (same data, code and parameters),
    or None. The registry, not the step cache, says whether a candidate was registered."""
    db = sqlite_path(tracking_uri)
    if db is not None:
        return _candidate_from_sqlite(db, model_name, candidate_key)
    return _candidate_from_mlflow(tracking_uri, model_name, candidate_key)


def current_champion(tracking_uri: str, model_name: str) -> ChampionRef | None:
    """The champion of ``model_name``, or None when there is none (or no registry yet)."""
    db = sqlite_path(tracking_uri)
    if db is not None:
        return _champion_from_sqlite(db, model_name)
    return _champion_from_mlflow(tracking_uri, model_name)


@contextmanager
def registry_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive inter-process lock while gating and promoting against one registry.

    A file lock serialises runs on one machine; runs on different machines against one
    remote tracking server are serialised by the delivery pipeline, not by this lock.
    """
    from filelock import FileLock

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_path), timeout=LOCK_TIMEOUT_S):
        yield
