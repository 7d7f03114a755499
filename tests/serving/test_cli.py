"""The serve commands refuse bad flags before loading anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import main as pipeline_main
from serving.server import main as serving_main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--capture-sample-rate", "2"], "sample rate"),
        (["serve", "--max-body-bytes", "0"], "max body bytes"),
        (["serve", "--drain", "45"], "drain must be within"),
        (["serve", "--port", "70000"], "port"),
    ],
)
def test_pipeline_serve_refuses_bad_flags(argv: list[str], message: str, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    assert pipeline_main(argv) == 2
    assert message in capsys.readouterr().err


def test_serving_without_a_model_is_a_usage_error(monkeypatch, capsys) -> None:
    for name in ("MODEL_URI", "MODEL_NAME"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as info:
        serving_main([])
    assert info.value.code == 2
    assert "no model" in capsys.readouterr().err


def test_unloadable_model_exits_1(tmp_path: Path, caplog) -> None:
    assert serving_main(["--model-uri", str(tmp_path), "--port", "0"]) == 1
    assert "no MLmodel" in caplog.text
