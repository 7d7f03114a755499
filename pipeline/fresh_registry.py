"""A fresh local store's SQLite registry, created in a helper process while the first
steps run.

Why: on a new store (a laptop's first run, every CI run) MLflow creates its schema the
first time a client opens the database: the initial tables and then every one of its
alembic migrations, more than a second of the cold run, and before it the import of MLflow
and its SQLAlchemy store. The run needs the registry only at *register*, after ingest,
validation, split and training, which leave the second core mostly idle. So the runner
starts ``python -m pipeline.fresh_registry DB`` when the database does not exist yet,
and *register* waits for it (:func:`wait_for`) before it opens the registry.

Nothing here can leave a half-made registry where a reader looks:

- The helper creates the schema in a private file beside the database, with MLflow's own
  client (as *register* would), and publishes it with a hard link, which fails rather
  than replace a database that appeared meanwhile (another run, or this run's own
  fallback). A reader sees no database (no champion yet) or a complete one.
- A helper that fails, or is still running when the run ends (invalid data stops before
  *register*), costs nothing but its private file, which is removed: without a
  published database, *register* creates the schema itself, as it always did.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

WAIT_LIMIT_S = 300.0
"""How long *register* waits for the helper before going on without it."""

_PENDING: dict[Path, Preparation] = {}
"""The helpers this process started, by database path (one run per process at a time)."""


@dataclass
class Preparation:
    """One helper creating ``database`` through ``private``."""

    database: Path
    private: Path
    process: subprocess.Popen[bytes]

    def wait(self, limit_s: float = WAIT_LIMIT_S) -> bool:
        """Wait for the helper; True when the database is there (its or another's)."""
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(limit_s)
        self.close()
        return self.database.is_file()

    def close(self) -> None:
        """Stop the helper if it still runs, and remove its private file."""
        _PENDING.pop(self.database, None)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for leftover in (self.private, self.private.with_name(self.private.name + "-journal")):
            leftover.unlink(missing_ok=True)


def start(database: Path) -> Preparation | None:
    """Start creating ``database`` in the background, unless it exists; the helper's
    output goes nowhere (its failure only means *register* does the work)."""
    database = Path(database)
    if database.exists() or database in _PENDING:
        return None
    private = database.with_name(f".{database.name}.{os.getpid()}-{time.monotonic_ns()}.creating")
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.fresh_registry", str(database), str(private)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    preparation = Preparation(database, private, process)
    _PENDING[database] = preparation
    return preparation


def wait_for(database: Path | None) -> None:
    """Before opening ``database`` with MLflow: let this process's helper finish first,
    so the schema is not created twice at once. No-op when there is none."""
    preparation = _PENDING.get(Path(database)) if database is not None else None
    if preparation is not None:
        preparation.wait()


def create(database: Path, private: Path) -> int:
    """The helper: MLflow's schema in ``private``, then published as ``database``."""
    from pipeline.gc_tuning import skip_the_final_collection, tune_for_a_command

    # The lowest priority: the run's own steps (training's threads most of all) come
    # first; the helper takes the core they leave idle, and all of it while register waits.
    os.nice(19)

    tune_for_a_command()
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{private}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    # Both stores, through public calls: the tracking store creates the tables and the
    # default experiment, the registry store checks the same schema.
    client.search_experiments(max_results=1)
    client.search_registered_models(max_results=1)
    try:
        os.link(private, database)
    except FileExistsError:
        pass  # another creator published first: its database is as good
    finally:
        private.unlink(missing_ok=True)
        skip_the_final_collection()
    return 0


if __name__ == "__main__":
    sys.exit(create(Path(sys.argv[1]), Path(sys.argv[2])))
