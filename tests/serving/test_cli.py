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


# --- configuration errors exit 2 before any model work (issue 13) -------------------------------


@pytest.fixture
def no_model_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the server gets as far as loading a model."""
    import serving.model

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded although the configuration is bad")

    monkeypatch.setattr(serving.model, "load_model", refuse)


@pytest.fixture
def registry(tmp_path: Path) -> str:
    database = tmp_path / "mlflow.db"
    database.write_bytes(b"")  # exists: the preflight only checks that it does
    return f"sqlite:///{database}"


def test_a_busy_port_exits_2_before_loading(registry: str, no_model_loading: None, caplog) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code = serving_main(["--model-uri", "models:/adult-income@champion", "--tracking-uri", registry,
                             "--port", str(port)])
    assert code == 2
    assert f"port {port} on 127.0.0.1 is already in use" in caplog.text


def test_an_unusable_capture_folder_exits_2_before_loading(registry: str, tmp_path: Path, no_model_loading: None,
                                                           caplog) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the capture folder should be")
    code = serving_main(["--model-uri", "models:/adult-income@champion", "--tracking-uri", registry,
                         "--port", "0", "--capture-dir", str(blocker / "capture")])
    assert code == 2
    assert "capture folder" in caplog.text and "not usable" in caplog.text


@pytest.mark.parametrize(
    ("model_uri", "message"),
    [
        ("models:/adult-income", "malformed"),
        ("models:/adult-income/latest", "malformed"),
        ("models:/@champion", "malformed"),
        ("s3://bucket/model", "only models:/"),
        ("/nowhere/model", "does not exist"),
    ],
)
def test_a_malformed_model_uri_exits_2_before_loading(registry: str, model_uri: str, message: str,
                                                      no_model_loading: None, caplog) -> None:
    assert serving_main(["--model-uri", model_uri, "--tracking-uri", registry, "--port", "0"]) == 2
    assert message in caplog.text


def test_a_missing_sqlite_registry_exits_2_and_is_not_created(tmp_path: Path, no_model_loading: None, caplog) -> None:
    database = tmp_path / "typo" / "mlflow.db"
    code = serving_main(["--model-uri", "models:/adult-income@champion", "--tracking-uri", f"sqlite:///{database}",
                         "--port", "0"])
    assert code == 2 and "does not exist" in caplog.text
    assert not database.exists() and not database.parent.exists()


def test_a_registry_uri_is_required_for_models_uris(no_model_loading: None, monkeypatch, caplog) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert serving_main(["--model-uri", "models:/adult-income@champion", "--port", "0"]) == 2
    assert "needs a registry" in caplog.text


def test_pipeline_serve_on_an_empty_store_exits_2_and_creates_nothing(tmp_path: Path, monkeypatch,
                                                                     no_model_loading: None, caplog) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    assert pipeline_main(["serve", "--port", "0"]) == 2
    assert "does not exist" in caplog.text
    assert not (home / "mlflow.db").exists()


def test_the_bound_socket_is_tcp_so_asyncio_turns_nagle_off(registry: str) -> None:
    """With proto 0 asyncio leaves Nagle on for accepted connections, and every response
    (head and body written separately) waits ~40 ms for the client's delayed ACK."""
    import socket

    from serving.server import ServerOptions, preflight

    sock = preflight(ServerOptions(model_uri="models:/adult-income@champion", tracking_uri=registry, port=0))
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        sock.close()
