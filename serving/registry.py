"""Resolve a ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` URI through the MLflow
registry: the version, its lineage tags and run, and local copies of the model directory
and of the monitoring baseline.

This is the only part of loading that needs MLflow, and MLflow's import plus its store's
(SQLAlchemy, alembic) cost three to four seconds of CPU, as much as importing
scikit-learn, XGBoost and skops for the model itself. :class:`RegistryResolver` therefore
runs :func:`resolve` in a helper process (``python -m serving.registry``), so on a
machine with a second core the two overlap and ``/ping`` says 200 seconds earlier. The helper lives as long as the resolver, so the retries of a model that does not exist
yet cost a registry call, not another import. Errors cross the process boundary as
:class:`~serving.model.ModelLoadError` / :class:`~serving.model.ModelNotYetAvailable`.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from serving.model import BASELINE_ARTIFACT, ModelLoadError, ModelNotYetAvailable

log = logging.getLogger("serving.registry")


@dataclass(frozen=True)
class Resolved:
    """A registry version and local paths of what the server loads from it."""

    name: str
    version: str
    run_id: str | None
    tags: dict[str, str] = field(default_factory=dict)
    model_dir: str = ""
    baseline_path: str | None = None
    """The downloaded baseline parquet, or None when the version has none."""
    baseline_note: str | None = None
    """Why there is no baseline (for the log), when there is none."""


def _version(client: object, model_uri: str) -> tuple[str, object]:
    from mlflow.tracking import MlflowClient

    assert isinstance(client, MlflowClient)
    rest = model_uri[len("models:/"):]
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return name, client.get_model_version_by_alias(name, alias)
    name, _, version = rest.partition("/")
    if not version.isdigit():
        raise ModelLoadError(f"model URI {model_uri!r}: use models:/NAME@ALIAS or models:/NAME/VERSION or a local directory")
    return name, client.get_model_version(name, version)


def resolve(model_uri: str, tracking_uri: str | None) -> Resolved:
    """Resolve ``model_uri`` once and download the model (and baseline) locally.

    The artifact URI is asked of this registry explicitly: MLflow resolves a ``models:/``
    download against the *global* registry URI, which in a library caller (the deploy
    step) may be another store or a fresh ./mlflow.db. A missing model or alias, or a
    registry that does not answer, raises :class:`ModelNotYetAvailable` for an alias
    (it may appear later) and :class:`ModelLoadError` for a version number."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    by_alias = "@" in model_uri[len("models:/"):]
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        name, found = _version(client, model_uri)
        version = str(found.version)  # type: ignore[attr-defined]
        source = client.get_model_version_download_uri(name, version)
    except MlflowException as exc:
        missing = exc.error_code == "RESOURCE_DOES_NOT_EXIST" or (
            exc.error_code == "INVALID_PARAMETER_VALUE" and "alias" in exc.message)
        unreachable = "API request to" in exc.message
        if by_alias and (missing or unreachable):
            raise ModelNotYetAvailable(f"cannot resolve {model_uri!r} yet: {exc.message}") from None
        raise ModelLoadError(f"cannot resolve {model_uri!r} in the registry: {exc.message}") from None
    except OSError as exc:  # a registry that does not answer at all
        if by_alias:
            raise ModelNotYetAvailable(f"cannot reach the registry for {model_uri!r}: {exc}") from None
        raise ModelLoadError(f"cannot reach the registry for {model_uri!r}: {exc}") from None
    try:
        model_dir = mlflow.artifacts.download_artifacts(artifact_uri=source, tracking_uri=tracking_uri)
    except Exception as exc:
        raise ModelLoadError(f"cannot download models:/{name}/{version}: {exc}") from None
    tags = dict(found.tags)  # type: ignore[attr-defined]
    run_id = found.run_id  # type: ignore[attr-defined]
    baseline, note = None, None
    try:
        if tags.get("baseline_uri"):
            baseline = mlflow.artifacts.download_artifacts(artifact_uri=tags["baseline_uri"], tracking_uri=tracking_uri)
        elif run_id:
            baseline = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=BASELINE_ARTIFACT,
                                                           tracking_uri=tracking_uri)
        else:
            note = "the version has no run"
    except Exception as exc:  # a missing baseline only switches the drift gauge off
        note = type(exc).__name__
    return Resolved(name, version, run_id, tags, str(model_dir), baseline, note)


class RegistryResolver:
    """:func:`resolve` in a helper process (``python -m serving.registry``), kept for
    retries until :meth:`close`.

    A plain subprocess speaking JSON lines rather than a multiprocessing pool: a spawned
    pool re-imports the parent's main script, which breaks any embedding script without
    a ``__main__`` guard; this helper depends on nothing but the ``serving`` package."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._calls = ThreadPoolExecutor(1, thread_name_prefix="registry")

    def start(self) -> None:
        """Start the helper now, before the first request: it imports MLflow while the
        caller does other work (the server: its own imports)."""
        self._calls.submit(self._helper).result()

    def _helper(self) -> subprocess.Popen[str]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen([sys.executable, "-m", "serving.registry"], stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, text=True, env=_helper_environment())
        return self._process

    def submit(self, model_uri: str, tracking_uri: str | None) -> Future[Resolved]:
        """Start resolving ``model_uri``; the future raises what :func:`resolve` raises."""
        return self._calls.submit(self._ask, model_uri, tracking_uri)

    def _ask(self, model_uri: str, tracking_uri: str | None) -> Resolved:
        process = self._helper()
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(json.dumps({"model_uri": model_uri, "tracking_uri": tracking_uri}) + "\n")
            process.stdin.flush()
            line = process.stdout.readline()
        except OSError:
            line = ""
        if not line:
            code = process.wait()
            raise ModelLoadError(f"the registry helper (python -m serving.registry) exited with status {code} "
                                 f"while resolving {model_uri!r}; its error is in the log above")
        return _answer(json.loads(line))

    def close(self) -> None:
        """Close the helper's pipes (before the server forks its workers, which must not
        inherit them) and let it exit at the end of its input, reaped in the background:
        an interpreter with MLflow loaded takes most of a second to shut down."""
        self._calls.shutdown(wait=True, cancel_futures=True)
        process, self._process = self._process, None
        if process is None:
            return
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                with suppress(OSError):
                    pipe.close()
        threading.Thread(target=_reap, args=(process,), name="registry-reaper", daemon=True).start()

    def __enter__(self) -> RegistryResolver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _helper_environment() -> dict[str, str]:
    """This environment, with the folder this ``serving`` package was imported from first
    on ``PYTHONPATH``: the helper must run the same code as the server, whatever its
    working directory."""
    root = str(Path(__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


def _reap(process: subprocess.Popen[str], grace_s: float = 10.0) -> None:
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _answer(reply: dict[str, Any]) -> Resolved:
    """The helper's reply as :class:`Resolved`, or the error it reported, raised."""
    if "resolved" in reply:
        return Resolved(**reply["resolved"])
    if "not_yet" in reply:
        raise ModelNotYetAvailable(reply["not_yet"])
    raise ModelLoadError(reply.get("error", f"the registry helper answered {reply!r}"))


def _serve_requests() -> int:
    """The helper: one JSON request per stdin line, one JSON reply per stdout line."""
    # Ctrl-C reaches the whole process group: the server decides; the helper ends with its input.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    # Anything a library prints goes to the log (stderr), never into the replies.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # MLflow's import is most of this helper's life: made before the first request
    # arrives, with the cyclic collector off meanwhile (pipeline/gc_tuning.py says why).
    gc.disable()
    import mlflow.artifacts  # noqa: F401
    from mlflow.tracking import MlflowClient  # noqa: F401
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply: dict[str, Any] = {"resolved": asdict(resolve(request["model_uri"], request["tracking_uri"]))}
        except ModelNotYetAvailable as exc:
            reply = {"not_yet": str(exc)}
        except ModelLoadError as exc:
            reply = {"error": str(exc)}
        except Exception as exc:  # a bug: the server reports it and exits 1
            log.exception("resolving %s failed", request.get("model_uri"))
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()
        if not gc.isenabled():
            # Further requests are retries, maybe for hours: collect again, the imported
            # objects frozen.
            gc.freeze()
            gc.enable()
    return 0


if __name__ == "__main__":
    from pipeline.gc_tuning import skip_the_final_collection

    try:
        sys.exit(_serve_requests())
    finally:
        skip_the_final_collection()
