"""Tracking URIs are checked before any training: a typo never creates a registry, an
unreachable server fails in seconds, a malformed URI is a usage error (exit 2)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.exit_codes import ExitCode
from pipeline.tracking_uri import TrackingUnreachable, TrackingUriError, check_tracking_uri, redacted


def _run(capsys: pytest.CaptureFixture[str], store: Path, data: Path, *args: str) -> tuple[int, str]:
    store.mkdir(exist_ok=True)
    code = main(["run", "--data", str(data), "--store", str(store), "--no-deploy", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _trained(store: Path) -> bool:
    return (store / "cache" / "train").exists()


def test_a_mistyped_sqlite_registry_is_refused_and_not_created(
    tmp_path: Path, adult_sample_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "registy" / "mlflow.db"
    code, output = _run(capsys, tmp_path / "store", adult_sample_csv, "--tracking-uri", f"sqlite:///{typo}")
    assert code == ExitCode.USAGE, output
    assert str(typo) in output and "--create-registry" in output
    assert not typo.exists() and not typo.parent.exists(), "a registry was created from a typo"
    assert not _trained(tmp_path / "store")


@pytest.mark.parametrize(
    "uri",
    ["sqllite:///x.db", "sqlite://", "sqlite:///:memory:", "http://", "http://127.0.0.1:port", "mysql://", "  "],
)
def test_malformed_uris_are_usage_errors_before_training(
    uri: str, tmp_path: Path, adult_sample_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = _run(capsys, tmp_path / "store", adult_sample_csv, "--tracking-uri", uri)
    assert code == ExitCode.USAGE, output
    assert "tracking URI" in output
    assert not _trained(tmp_path / "store")


def test_an_unreachable_server_fails_fast_before_training(
    tmp_path: Path, adult_sample_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens
    code, output = _run(capsys, tmp_path / "store", adult_sample_csv, "--tracking-uri", f"http://127.0.0.1:{port}")
    assert code == ExitCode.ERROR, output
    assert f"127.0.0.1:{port}" in output and "did not answer" in output
    assert not _trained(tmp_path / "store")


def test_a_server_that_never_answers_is_given_up_on_after_the_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # accepts connections into the backlog, never reads or answers
        with pytest.raises(TrackingUnreachable, match="within 0.5 s"):
            check_tracking_uri(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout_s=0.5)


@pytest.fixture
def answering_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(401)  # authentication on: still a server that answers
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_server_that_answers_is_accepted(answering_server: str) -> None:
    check_tracking_uri(answering_server, timeout_s=2)


def test_create_registry_makes_only_what_it_was_asked_for(tmp_path: Path) -> None:
    target = tmp_path / "new" / "mlflow.db"
    with pytest.raises(TrackingUriError, match="no SQLite registry"):
        check_tracking_uri(f"sqlite:///{target}")
    check_tracking_uri(f"sqlite:///{target}", create=True)
    assert target.parent.is_dir()
    with pytest.raises(TrackingUriError, match="is not a file"):
        check_tracking_uri(f"sqlite:///{tmp_path}")


def test_a_missing_store_folder_is_refused(tmp_path: Path, adult_sample_csv: Path, capsys) -> None:
    store = tmp_path / "no-such-store"
    code = main(["run", "--data", str(adult_sample_csv), "--store", str(store), "--no-deploy"])
    output = capsys.readouterr().err
    assert code == ExitCode.USAGE and str(store) in output and "--create-registry" in output
    assert not store.exists()


def test_monitor_never_creates_a_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    typo = tmp_path / "typo.db"
    code = main(["monitor", "--tracking-uri", f"sqlite:///{typo}", "--capture", str(tmp_path), "--no-mlflow"])
    assert code == ExitCode.USAGE, capsys.readouterr()
    assert not typo.exists()


def test_passwords_are_redacted_from_messages() -> None:
    assert redacted("postgresql://mlflow:s3cret@db:5432/mlflow") == "postgresql://mlflow:***@db:5432/mlflow"
    with pytest.raises(TrackingUriError) as caught:
        check_tracking_uri("postgres://mlflow:s3cret@db/mlflow")
    assert "s3cret" not in str(caught.value)
