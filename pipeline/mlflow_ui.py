"""How a person opens what a run recorded in MLflow's UI: a command that runs as printed,
and the classic (non-GenAI) view.

The summary's hint used to be a bare ``mlflow ui``: on a fresh clone nothing puts the
virtual environment's ``bin/`` on ``PATH``, so it was "command not found". The hint
names the ``mlflow`` executable installed beside the running interpreter instead.

MLflow 3's UI opens in its GenAI mode unless told otherwise. Two settings say otherwise,
both read by the UI's own code (``mlflow/server/js``): the experiment tag
``mlflow.experimentKind=custom_model_development`` switches an experiment's page to the
classic runs view, and the ``workflowType=machine_learning`` query parameter does the
same for the page it opens. The pipeline tags every experiment it writes to, and the
hint's address carries the parameter.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from mlflow import MlflowClient

EXPERIMENT_KIND_TAG: Final = "mlflow.experimentKind"
CLASSIC_EXPERIMENT_KIND: Final = "custom_model_development"
CLASSIC_EXPERIMENT_TAGS: Final = {EXPERIMENT_KIND_TAG: CLASSIC_EXPERIMENT_KIND}
"""Tags of an experiment that MLflow's UI should show in the classic runs view."""
CLASSIC_VIEW_QUERY: Final = "workflowType=machine_learning"
DEFAULT_UI_ADDRESS: Final = "http://127.0.0.1:5000"
"""Where ``mlflow ui`` listens unless given ``--host``/``--port``."""


def classic_experiment(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """The id of experiment ``name``, created when missing, tagged for the classic view.

    An experiment created before the tag existed (or by someone else) gets it on first
    use; ``artifact_location`` applies only to a new experiment.
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(name, artifact_location=artifact_location, tags=CLASSIC_EXPERIMENT_TAGS)
    if EXPERIMENT_KIND_TAG not in experiment.tags:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, CLASSIC_EXPERIMENT_KIND)
    return experiment.experiment_id


def mlflow_executable() -> str:
    """The ``mlflow`` command of the running interpreter's environment, shell-quoted.

    The script beside ``sys.executable`` (a virtual environment's ``bin/mlflow``), shown
    relative to the working directory when it lies under it; else the one on ``PATH``;
    else ``python -m mlflow`` with this interpreter, which always works.
    """
    beside = Path(sys.executable).parent / "mlflow"
    found = str(beside) if beside.is_file() and os.access(beside, os.X_OK) else shutil.which("mlflow")
    if found is None:
        return f"{shlex.quote(sys.executable)} -m mlflow"
    path = Path(found)
    try:
        shown = str(path.relative_to(Path.cwd()))
    except ValueError:
        shown = str(path)
    # A name without a slash would be looked up on PATH again, not run from here.
    return shlex.quote(shown if "/" in shown else f"./{shown}")


def _sqlite_experiment_id(tracking_uri: str, name: str) -> str | None:
    """The experiment's id from a local SQLite store, read-only with the standard library
    (importing MLflow would cost the no-change re-run seconds)."""
    from pipeline.registry import sqlite_path

    db = sqlite_path(tracking_uri)
    if db is None or not db.is_file():
        return None
    try:
        with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute("SELECT experiment_id FROM experiments WHERE name = ?", (name,)).fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


def ui_hint(tracking_uri: str, experiment_name: str) -> list[str]:
    """The lines that tell a person how to browse ``experiment_name`` in MLflow's UI.

    A tracking server is already a UI: its address. A local store (SQLite file or
    folder) needs ``mlflow ui`` started on it first: the command, then the address.
    """
    if tracking_uri.startswith(("http://", "https://")):
        return [f"open {tracking_uri.rstrip('/')}/#/?{CLASSIC_VIEW_QUERY}"]
    experiment = _sqlite_experiment_id(tracking_uri, experiment_name)
    page = f"/#/experiments/{experiment}" if experiment else "/#/"
    return [
        f"{mlflow_executable()} ui --backend-store-uri {shlex.quote(tracking_uri)}",
        f"then open {DEFAULT_UI_ADDRESS}{page}?{CLASSIC_VIEW_QUERY}",
    ]
