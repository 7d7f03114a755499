"""Every ``python -m pipeline`` command follows the same conventions (issue 15): a
``--version``; ``--quiet`` and ``--verbose``; ``--json`` wherever a result is printed,
with stdout holding that one document; MLflow's own logging quiet unless ``--verbose``;
progress lines for long steps that ``--quiet`` silences; exit codes as README's table."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pipeline import cli, console
from pipeline.exit_codes import ExitCode
from pipeline.local_store import LocalStore
from pipeline.runner import StepProgress, Step, StepContext, execute


pytestmark = pytest.mark.usefixtures("fresh_console")


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"python -m pipeline {cli.version()}"


def test_every_command_has_quiet_verbose_and_json_where_it_prints_a_result() -> None:
    leaves = cli._leaf_parsers(cli.build_parser())
    assert {name for name, _ in leaves} == {m.rsplit(".", 1)[-1] for m in cli.COMMAND_MODULES}
    assert len(leaves) > len(cli.COMMAND_MODULES), "deliver's stages are commands too"
    for name, parser in leaves:
        options = set(parser._option_string_actions)
        assert {"--quiet", "-q", "--verbose", "-v"} <= options, parser.prog
        assert ("--json" in options) == (name not in cli.NO_RESULT), parser.prog


def test_quiet_and_verbose_together_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["synth", "--rows", "10", "--out", "x.csv", "--quiet", "--verbose"])
    assert exit_.value.code == ExitCode.USAGE
    assert "not allowed with argument" in capsys.readouterr().err


def test_json_result_is_the_only_thing_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "synth.csv"
    assert cli.main(["synth", "--rows", "50", "--seed", "3", "--out", str(out), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document == {"exit_code": 0, "rows": 50, "drift": 0.0, "seed": 3, "path": str(out)}
    assert cli.main(["synth", "--rows", "50", "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith("wrote 50 rows")


def test_json_on_a_refused_command_still_answers_with_its_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # step validate takes exactly one --input: a usage error, printed to stderr, and
    # stdout still holds one JSON document saying so.
    code = cli.main(["step", "validate", "--output", str(tmp_path / "out"), "--json"])
    captured = capsys.readouterr()
    assert code == ExitCode.USAGE
    assert json.loads(captured.out) == {"command": "step", "name": "validate", "exit_code": 2, "status": "usage"}
    assert "takes 1 --input" in captured.err


def test_deliver_stage_json_carries_the_stage_outcome(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIPELINE_DATA_URI", raising=False)
    data = tmp_path / "d.csv"
    data.write_text("a\n1\n")
    code = cli.main(["deliver", "push-data", str(data), "--json"])
    document = json.loads(capsys.readouterr().out)
    assert code == ExitCode.USAGE
    assert document["stage"] == "push-data" and document["ok"] is False and document["exit_code"] == 2
    assert "--data-uri" in document["detail"]


def test_mlflow_logging_is_quiet_by_default_and_shown_with_verbose(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.utils.logging_utils import MLFLOW_LOGGING_STREAM

    monkeypatch.setattr(MLFLOW_LOGGING_STREAM, "_enabled", True)
    console.configure(console.Verbosity.NORMAL)
    console.quiet_mlflow_prints()
    import os

    assert os.environ["MLFLOW_LOGGING_LEVEL"] == "ERROR"
    assert MLFLOW_LOGGING_STREAM.enabled is False, "MLflow's eprint lines must be off by default"

    console.reset()
    assert "MLFLOW_LOGGING_LEVEL" not in os.environ and MLFLOW_LOGGING_STREAM.enabled is True
    console.configure(console.Verbosity.VERBOSE)
    console.quiet_mlflow_prints()
    assert "MLFLOW_LOGGING_LEVEL" not in os.environ and MLFLOW_LOGGING_STREAM.enabled is True
    assert os.environ["PIPELINE_DEBUG"] == "1"


def test_a_users_own_mlflow_logging_level_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_LOGGING_LEVEL", "DEBUG")
    console.configure(console.Verbosity.NORMAL)
    import os

    assert os.environ["MLFLOW_LOGGING_LEVEL"] == "DEBUG"


def test_quiet_sends_progress_nowhere(capsys: pytest.CaptureFixture[str]) -> None:
    console.configure(console.Verbosity.QUIET)
    console.progress_sink()("[1/1] step: done (3.0s)")
    console.info("note: something")
    assert capsys.readouterr().err == ""
    console.configure(console.Verbosity.NORMAL)
    console.progress_sink()("[1/1] step: done (3.0s)")
    assert capsys.readouterr().err == "[1/1] step: done (3.0s)\n"


def _steps(seconds: float) -> list[Step]:
    def slow(ctx: StepContext) -> dict:
        ctx.progress("phase one")
        time.sleep(seconds / 2)
        ctx.progress("phase two")
        time.sleep(seconds / 2)
        return {}

    def quick(ctx: StepContext) -> dict:
        ctx.progress("never shown")
        return {}

    def skipped(ctx: StepContext) -> dict:
        ctx.skip("nothing to deploy")
        return {}

    return [
        Step("quick", quick, sources=(), cache=False, what="doing little"),
        Step("slow", slow, sources=(), cache=False, what="doing a lot"),
        Step("deploy", skipped, sources=(), cache=False, what="serving"),
    ]


def test_a_long_step_shows_what_it_does_and_each_phase_a_short_one_does_not(tmp_path: Path) -> None:
    lines: list[str] = []
    result = execute(_steps(1.2), None, store=LocalStore(tmp_path / "store"),
                     tracking_uri=f"sqlite:///{tmp_path}/none.db", progress=lines.append, progress_after_s=0.3)
    assert lines[0].startswith("[1/3] quick: done (")
    slow = [line for line in lines if line.startswith("[2/3] slow: ")]
    assert slow[0].startswith("[2/3] slow: phase one ("), slow
    assert any(line.startswith("[2/3] slow: phase two (") for line in slow)
    assert slow[-1].startswith("[2/3] slow: done (")
    assert not any("never shown" in line for line in lines)
    # A step that did not run says so, and why; it is never "done".
    assert lines[-1].startswith("[3/3] deploy: skipped: nothing to deploy (")
    assert [r.state for r in result.steps] == ["done", "done", "skipped"]


def test_progress_repeats_a_long_phase_with_the_time_so_far() -> None:
    lines: list[str] = []
    heartbeat = StepProgress("[1/1] train", "training", lines.append, after_s=0.1, every_s=0.3)
    time.sleep(1.0)
    heartbeat.stop()
    assert len(lines) >= 2 and all(line.startswith("[1/1] train: training (") for line in lines)
