"""The summary's MLflow UI hint runs as printed, and the pipeline's experiments open in
MLflow's classic (non-GenAI) view."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow import MlflowClient

from pipeline.commands.run import summary
from pipeline.mlflow_ui import EXPERIMENT_KIND_TAG, classic_experiment, ui_hint


def _result(tracking_uri: str) -> SimpleNamespace:
    return SimpleNamespace(
        gate_passed=True, status="promoted", exit_code=_Code(), message="", notes=[],
        champion_version="1", model_version="1", reasons=[], report_path=None, tracking_uri=tracking_uri,
    )


def _ui_lines(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("MLflow UI: "))
    return [lines[start].removeprefix("MLflow UI: "), *[line.strip() for line in lines[start + 1:]]]


def test_the_printed_command_runs_as_printed(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command, address = _ui_lines(summary(_result(uri)))
    argv = shlex.split(command)
    binary = Path(argv[0])
    assert "/" in argv[0], f"{argv[0]!r} would be looked up on PATH, which a fresh clone's venv is not on"
    assert binary.is_file(), f"the printed {argv[0]!r} does not exist"
    assert argv[1:] == ["ui", "--backend-store-uri", uri]
    version = subprocess.run([argv[0], "--version"], capture_output=True, text=True, timeout=120, check=False)
    assert version.returncode == 0 and "version" in version.stdout, version.stdout + version.stderr
    assert address == "then open http://127.0.0.1:5000/#/?workflowType=machine_learning"


class _Code:
    """An exit code as the summary uses it."""

    name = "OK"

    def __int__(self) -> int:
        return 0


def test_the_address_names_the_experiment_in_the_classic_view(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = classic_experiment(client, "adult-income", (tmp_path / "artifacts").as_uri())
    assert ui_hint(uri, "adult-income")[1] == (
        f"then open http://127.0.0.1:5000/#/experiments/{experiment}?workflowType=machine_learning"
    )
    assert ui_hint("http://127.0.0.1:5999/", "adult-income") == [
        "open http://127.0.0.1:5999/#/?workflowType=machine_learning"
    ]


def test_experiments_are_tagged_for_the_classic_view_without_overriding_a_choice(tmp_path: Path) -> None:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    new = classic_experiment(client, "new", None)
    assert client.get_experiment(new).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    older = client.create_experiment("older")
    assert classic_experiment(client, "older", None) == older
    assert client.get_experiment(older).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    chosen = client.create_experiment("chosen", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    classic_experiment(client, "chosen", None)
    assert client.get_experiment(chosen).tags[EXPERIMENT_KIND_TAG] == "genai_development"


def test_without_an_mlflow_script_the_hint_uses_the_interpreter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    command = ui_hint("sqlite:///x.db", "adult-income")[0]
    assert command == f"{tmp_path / 'bin' / 'python'} -m mlflow ui --backend-store-uri sqlite:///x.db"
