"""What a ``python -m pipeline`` command shows a person, and where.

Every command shares one convention, decided here once: results go to stdout (with
``--json``, one JSON document and nothing else: any other line a command prints moves to
stderr); progress lines and notes go to stderr; ``--quiet`` leaves stderr to warnings
and errors; ``--verbose`` adds the libraries' own logging (MLflow's INFO and WARNING
lines, which are quiet by default) and a traceback with an unexpected error. Library
callers that never call :func:`configure` get the old behaviour: progress on stderr,
MLflow's logging untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from enum import IntEnum
from typing import Any, TextIO


class Verbosity(IntEnum):
    """How much a command says besides its result."""

    QUIET = 0
    NORMAL = 1
    VERBOSE = 2


_state: dict[str, Any] = {"verbosity": None, "stdout": None, "emitted": False, "env_set": [], "mlflow_off": False}


def add_common_options(parser: argparse.ArgumentParser, *, result: bool = True) -> None:
    """``--quiet``/``--verbose`` (exclusive) and, for a command that prints a result,
    ``--json``; options the command already defines are kept."""
    present = set(parser._option_string_actions)  # argparse has no public lookup
    if not {"--quiet", "--verbose"} & present:
        noise = parser.add_mutually_exclusive_group()
        noise.add_argument("-q", "--quiet", action="store_true",
                           help="no progress lines or notes on stderr, only warnings and errors")
        noise.add_argument("-v", "--verbose", action="store_true",
                           help="also show MLflow's own log lines and a traceback with an unexpected error")
    if result and "--json" not in present:
        parser.add_argument("--json", action="store_true",
                            help="print the result as one JSON document on stdout (everything else goes to stderr)")


def verbosity_of(args: argparse.Namespace) -> Verbosity:
    if getattr(args, "quiet", False):
        return Verbosity.QUIET
    if getattr(args, "verbose", False):
        return Verbosity.VERBOSE
    return Verbosity.NORMAL


def configure(verbosity: Verbosity) -> None:
    """Apply ``verbosity`` to this process before any library is imported.

    MLflow reads ``MLFLOW_LOGGING_LEVEL`` when it is first imported (an explicit setting
    by the user wins); its ``eprint`` lines ("Successfully registered model ...") bypass
    logging and are switched off by :func:`quiet_mlflow_prints` where MLflow is used.
    ``PIPELINE_DEBUG`` (tracebacks of step errors) follows ``--verbose``."""
    _state["verbosity"] = verbosity
    name, value = ("PIPELINE_DEBUG", "1") if verbosity >= Verbosity.VERBOSE else ("MLFLOW_LOGGING_LEVEL", "ERROR")
    if name not in os.environ:
        os.environ[name] = value
        _state["env_set"].append(name)


def reset() -> None:
    """Undo :func:`configure` (the CLI calls this when a command returns, so that a
    process that runs commands in turn, such as a test session, starts each afresh)."""
    for name in _state["env_set"]:
        os.environ.pop(name, None)
    if _state["mlflow_off"]:
        from mlflow.utils.logging_utils import MLFLOW_LOGGING_STREAM

        MLFLOW_LOGGING_STREAM.enabled = True
    restore_stdout()
    _state.update(verbosity=None, emitted=False, env_set=[], mlflow_off=False)


def verbosity() -> Verbosity | None:
    """The configured verbosity, or None in a library caller that never configured one."""
    return _state["verbosity"]


def quiet_mlflow_prints() -> None:
    """Switch off MLflow's event prints unless ``--verbose`` (or nothing) was configured.

    Called after ``import mlflow`` by the code that uses it; importing MLflow here would
    cost a cached run seconds. Known gap: ``mlflow.sklearn.log_model`` switches the
    stream back on when it returns, so register's "Successfully registered model" and
    "Created version" lines still show."""
    level = verbosity()
    if level is None or level >= Verbosity.VERBOSE or "mlflow" not in sys.modules:
        return
    from mlflow.utils.logging_utils import MLFLOW_LOGGING_STREAM

    if MLFLOW_LOGGING_STREAM.enabled:
        MLFLOW_LOGGING_STREAM.enabled = False
        _state["mlflow_off"] = True


def progress_sink() -> Callable[[str], None]:
    """Where progress lines go: stderr, or nowhere with ``--quiet``."""
    if verbosity() == Verbosity.QUIET:
        return lambda line: None
    return info


def info(line: str) -> None:
    """A progress line or note on stderr (suppressed by ``--quiet`` for callers that check)."""
    if verbosity() != Verbosity.QUIET:
        print(line, file=sys.stderr, flush=True)


def result_stream() -> TextIO:
    """The stream results are written to: stdout, also while ``--json`` diverts other prints."""
    return _state["stdout"] or sys.stdout


def divert_stdout_for_json() -> TextIO:
    """Keep stdout for the JSON document alone: remember it, and send ``print`` to stderr."""
    _state["emitted"] = False
    _state["stdout"] = sys.stdout
    sys.stdout = sys.stderr
    return _state["stdout"]


def restore_stdout() -> None:
    if _state["stdout"] is not None:
        sys.stdout = _state["stdout"]
        _state["stdout"] = None


def emit_json(document: Any) -> None:
    """Write the result document (``default=str`` for paths and dates)."""
    stream = result_stream()
    stream.write(json.dumps(document, indent=2, default=str) + "\n")
    stream.flush()
    _state["emitted"] = True


def emitted() -> bool:
    """Whether the command wrote its JSON document (else the CLI writes the exit status)."""
    return bool(_state["emitted"])
