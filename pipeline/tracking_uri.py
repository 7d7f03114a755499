"""Check a tracking URI before any work: it parses, it names a registry that exists, it answers.

MLflow accepts almost any string and acts on it late: ``sqlite:///typo.db`` silently
creates an empty registry (the run then promotes with no champion to compare against),
an unknown scheme fails only after training, and an unreachable server is retried with
backoff for about four minutes. So every command that talks to a registry calls
:func:`check_tracking_uri` first. Nothing is created unless the caller says so
(``--create-registry``); a server is probed once with a short timeout.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlparse

PROBE_TIMEOUT_S: Final = 5.0
"""How long a registry server may take to answer the probe (connect and first byte)."""
DATABASE_PORTS: Final = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
KNOWN_SCHEMES: Final = ("sqlite", "http", "https", "file", *DATABASE_PORTS, "databricks")
HTTP_RETRY_ENV: Final = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
"""MLflow's HTTP client defaults (7 retries with exponential backoff, 120 s timeout) turn a
server that goes away mid-run into minutes of silence; the commands bound them, unless the
environment already sets them."""


class TrackingUriError(ValueError):
    """The URI is malformed, of an unknown scheme, or names a registry that does not exist
    (a usage error: exit 2)."""


class TrackingUnreachable(RuntimeError):
    """The registry server (or database host) did not answer the probe (exit 1)."""


def _local_path(text: str) -> Path:
    return Path(unquote(text)).expanduser()


def redacted(uri: str) -> str:
    """``uri`` with any password replaced by ``***``, for messages and logs."""
    parsed = urlparse(uri)
    if parsed.password is None:
        return uri
    return parsed._replace(netloc=parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)).geturl()


def check_tracking_uri(uri: str, *, create: bool = False, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Refuse ``uri`` unless it names a registry that exists and answers.

    ``sqlite:///PATH`` and ``file:``/plain paths must exist unless ``create`` (then the
    SQLite file's folder is made); ``http(s)://`` servers must answer an HTTP request
    (any status: authentication is checked later, by the calls that need it), database
    URIs must accept a TCP connection, each within ``timeout_s``. Raises
    ``TrackingUriError`` or ``TrackingUnreachable`` naming the URI and what is wrong.
    """
    if not uri or not uri.strip():
        raise TrackingUriError("the tracking URI is empty")
    try:
        parsed = urlparse(uri)
        parsed.port  # noqa: B018 - a non-numeric port raises here, not deep inside MLflow
    except ValueError as exc:
        raise TrackingUriError(f"tracking URI {redacted(uri)!r} does not parse: {exc}") from exc
    scheme = parsed.scheme.lower()
    base = scheme.split("+", 1)[0]
    if scheme and base not in KNOWN_SCHEMES:
        raise TrackingUriError(
            f"tracking URI {redacted(uri)!r} has an unknown scheme {scheme!r}; expected one of {', '.join(KNOWN_SCHEMES)}"
        )
    if base == "sqlite":
        if not uri.startswith("sqlite:///") or not parsed.path or parsed.path in ("/", "/:memory:"):
            raise TrackingUriError(
                f"tracking URI {uri!r} names no database file; expected sqlite:///ABSOLUTE/PATH or sqlite:///RELATIVE/PATH"
            )
        # sqlite:///rel.db is a relative path, sqlite:////abs.db an absolute one (SQLAlchemy).
        path = _local_path(uri[len("sqlite:///"):].split("?", 1)[0])
        _existing_or_created(uri, path, create, "SQLite registry", is_file=True)
    elif base in ("", "file"):
        path = _local_path(parsed.path if base == "file" else uri)
        _existing_or_created(uri, path, create, "file-store registry", is_file=False)
    elif base in ("http", "https"):
        if not parsed.hostname:
            raise TrackingUriError(f"tracking URI {uri!r} names no host")
        _probe_http(uri, timeout_s)
    elif base in DATABASE_PORTS:
        if not parsed.hostname:
            raise TrackingUriError(f"tracking URI {redacted(uri)!r} names no database host")
        _probe_tcp(uri, parsed.hostname, parsed.port or DATABASE_PORTS[base], timeout_s)


def _existing_or_created(uri: str, path: Path, create: bool, what: str, *, is_file: bool) -> None:
    if path.exists():
        if is_file and not path.is_file():
            raise TrackingUriError(f"tracking URI {uri!r}: {path} is not a file")
        return
    if not create:
        raise TrackingUriError(
            f"tracking URI {uri!r}: no {what} at {path} (a typo would otherwise create an empty one and "
            "promote with no champion to compare against); pass --create-registry to create it"
        )
    (path.parent if is_file else path).mkdir(parents=True, exist_ok=True)


def _probe_http(uri: str, timeout_s: float) -> None:
    url = uri.rstrip("/") + "/health"
    # Proxies from the environment apply: they are how this machine reaches the server.
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):
            return
    except urllib.error.HTTPError:
        return  # it answered; 401/403/404 are for the real calls to judge
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingUnreachable(
            f"tracking server {uri} did not answer within {timeout_s:g} s ({reason}); nothing was trained"
        ) from exc


def _probe_tcp(uri: str, host: str, port: int, timeout_s: float) -> None:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as exc:
        raise TrackingUnreachable(
            f"tracking database {redacted(uri)} did not accept a connection within {timeout_s:g} s ({exc})"
        ) from exc
