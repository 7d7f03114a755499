"""The local runner: runs a list of steps in order, caching each by what went into it.

A step's cache key is the SHA-256 of its source code (every first-party module it
imports, transitively: ``pipeline.step_code``), its parameters and the digests of its
inputs (docs/contracts.md, "The step cache"); a hit reuses its outputs from
``cache/<step>/<key>/`` without loading them, so a re-run with nothing changed touches
only file hashes and a read-only registry query. Steps marked ``locked`` run while
holding the registry lock, so two runs on one store gate and promote one after the
other. The step list is data: appending a step (deploy, smoke test) after register
needs no change here.

This module imports only the standard library and small pipeline modules: pandas,
MLflow and XGBoost are imported inside the steps that need them.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.digest import combine, file_digest, json_digest, source_digest
from pipeline.exit_codes import ExitCode
from pipeline.local_store import LocalStore
from pipeline.schema import DEFAULT_DATASET
from pipeline import schema
from pipeline.step_code import code_files


@dataclass(frozen=True)
class Artifact:
    """A step output: a file or folder in the cache, named by a digest of its content or recipe."""

    name: str
    path: Path
    digest: str


@dataclass
class Outcome:
    """What the run amounts to so far; steps update it, cached steps replay their updates."""

    exit_code: ExitCode = ExitCode.OK
    status: str = "running"
    gate_passed: bool | None = None
    reasons: list[str] = field(default_factory=list)
    champion_version: str | None = None
    model_version: str | None = None
    report_path: Path | None = None
    message: str = ""
    notes: list[str] = field(default_factory=list)

    def update(self, changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            if key == "exit_code":
                value = ExitCode(value)
            elif key == "report_path" and value is not None:
                value = Path(value)
            elif key == "notes":
                value = [*self.notes, *value]
            setattr(self, key, value)


class StopPipeline(Exception):
    """Raised by a step to end the run early with a decided outcome (not an error)."""

    def __init__(self, changes: dict[str, Any]) -> None:
        super().__init__(changes.get("message", "stopped"))
        self.changes = changes


@dataclass
class StepContext:
    """What a step sees: the run's config, its inputs, a folder for outputs, and the outcome."""

    config: Any
    store: LocalStore
    tracking_uri: str
    inputs: dict[str, Artifact]
    output_dir: Path
    report_dir: Path
    key: str
    keys: dict[str, str]
    outcome_changes: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[str], None] = lambda phase: None
    """Say what the step is doing now ("logging the model to MLflow"); the runner shows it
    once the step has run for a while (``PROGRESS_AFTER_S``)."""
    skipped: str | None = None

    def set_outcome(self, **changes: Any) -> None:
        """Record outcome fields; they are replayed when this step is later a cache hit."""
        self.outcome_changes.update(changes)

    def skip(self, reason: str) -> None:
        """Mark the step as not run (shown as ``skipped: reason``, never ``done``)."""
        self.skipped = reason


@dataclass(frozen=True)
class Step:
    """One node of the pipeline: what it consumes, what it runs, how it is keyed."""

    name: str
    run: Callable[[StepContext], dict[str, Artifact]]
    sources: tuple[str, ...]
    """Modules whose source code is part of the cache key, with every first-party module
    they import; the module of ``run`` is added, followed from ``run`` only."""
    inputs: tuple[str, ...] = ()
    """Artifacts of earlier steps this step consumes (their digests enter the key)."""
    params: Callable[[Any], dict[str, Any]] = lambda config: {}
    external: Callable[[Any], dict[str, str]] = lambda config: {}
    """Digests of things outside the cache (an input file), computed before the key."""
    cache: bool = True
    what: str = ""
    """What the step does, in a few words, for the progress line of a long step."""
    locked: bool = False
    effects: tuple[str, ...] = ()
    """What outside the cache the step changes ("registry", "process"): such a step always
    runs, because replaying its recorded outcome would claim an effect that may since have
    been undone (an operator moved ``champion`` back) or never have happened here."""

    @property
    def cacheable(self) -> bool:
        """Whether a hit may replay this step: caching on, and no outside effects."""
        return self.cache and not self.effects


@dataclass(frozen=True)
class StepRecord:
    name: str
    state: str
    seconds: float


@dataclass(frozen=True)
class RunResult:
    """The run's outcome: exit code, gate decision, champion, report and what each step did."""

    exit_code: ExitCode
    status: str
    gate_passed: bool | None
    reasons: list[str]
    champion_version: str | None
    model_version: str | None
    report_path: Path | None
    tracking_uri: str
    store: Path
    steps: list[StepRecord]
    message: str = ""
    notes: list[str] = field(default_factory=list)
    """What the run did besides its outcome (an interrupted deploy finished, an orphaned
    server stopped)."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["exit_code"] = int(self.exit_code)
        data["report_path"] = str(self.report_path) if self.report_path else None
        data["store"] = str(self.store)
        return data


def _write_manifest(directory: Path, artifacts: dict[str, Artifact], outcome: dict[str, Any]) -> None:
    manifest = {
        "artifacts": {n: {"path": str(a.path.relative_to(directory)), "digest": a.digest} for n, a in artifacts.items()},
        "outcome": {k: (str(v) if isinstance(v, Path) else v) for k, v in outcome.items()},
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))


def _read_manifest(directory: Path) -> tuple[dict[str, Artifact], dict[str, Any]] | None:
    path = directory / "manifest.json"
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    artifacts = {
        n: Artifact(n, directory / entry["path"], entry["digest"]) for n, entry in manifest["artifacts"].items()
    }
    if not all(a.path.exists() for a in artifacts.values()):
        return None
    return artifacts, manifest["outcome"]


def _rebase(artifacts: dict[str, Artifact], old: Path, new: Path) -> dict[str, Artifact]:
    return {n: Artifact(n, new / a.path.relative_to(old), a.digest) for n, a in artifacts.items()}


def sweep_stale_work_dirs(cache_dir: Path) -> list[Path]:
    """Remove the half-written step folders (``.tmp-<key>-<pid>``) of runs that were killed.

    A live run's folder is left alone: its pid is still running (a reused pid only
    delays the sweep to a later run). Returns what was removed."""
    removed = []
    for work_dir in cache_dir.glob("*/.tmp-*-*"):
        pid = work_dir.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        shutil.rmtree(work_dir, ignore_errors=True)
        removed.append(work_dir)
    return removed


def _champion_version(tracking_uri: str, config: Any) -> str | None:
    """The champion now, for the summary of a run that stopped before looking (invalid data)."""
    from pipeline.registry import current_champion

    try:
        champion = current_champion(tracking_uri, getattr(config, "model_name", schema.DEFAULT_MODEL_NAME))
    except Exception:  # noqa: BLE001 - the summary must not turn an outcome into a crash
        return None
    return champion.version if champion else None


PROGRESS_AFTER_S = 2.0
"""A step running longer than this gets progress lines: what it does, then each phase."""
PROGRESS_EVERY_S = 10.0
"""While a phase lasts, its line is repeated this often with the time so far."""


class StepProgress:
    """Progress lines of one running step, from a timer thread: nothing for a step that
    ends within ``after_s``; then ``[i/n] step: what it does (3s)``, each new phase as the
    step reports it, and the current phase again every ``every_s`` while it lasts."""

    def __init__(self, label: str, what: str, sink: Callable[[str], None], *,
                 after_s: float = PROGRESS_AFTER_S, every_s: float = PROGRESS_EVERY_S) -> None:
        import threading

        self.label, self.sink, self.after_s, self.every_s = label, sink, after_s, every_s
        self.phase = what or "running"
        self.started = time.perf_counter()
        self._shown: str | None = None
        self._last = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name=f"progress-{label}", daemon=True)
        self._thread.start()

    def _show(self, force: bool = False) -> None:
        elapsed = time.perf_counter() - self.started
        with self._lock:
            if elapsed < self.after_s:
                return
            if self._shown == self.phase and not force and elapsed - self._last < self.every_s:
                return
            self._shown, self._last = self.phase, elapsed
            self.sink(f"{self.label}: {self.phase} ({elapsed:.0f}s)")

    def _tick(self) -> None:
        while not self._stop.wait(min(0.25, self.after_s)):
            self._show()

    def update(self, phase: str) -> None:
        """The step's new phase; shown now when the step is past ``after_s``."""
        with self._lock:
            self.phase = phase
        self._show()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def default_progress(line: str) -> None:
    """Progress lines go to stderr so stdout stays free for machine-readable output."""
    print(line, file=sys.stderr, flush=True)


def execute(
    steps: Sequence[Step],
    config: Any,
    *,
    store: LocalStore,
    tracking_uri: str,
    force: bool = False,
    progress: Callable[[str], None] = default_progress,
    progress_after_s: float = PROGRESS_AFTER_S,
) -> RunResult:
    """Run ``steps`` in order with caching and the registry lock; never raises for step errors.

    Errors are mapped to exit codes here: ``StopPipeline`` ends the run with the step's
    outcome, a data error gives INVALID_DATA (its report already written by the step),
    any other exception gives ERROR with the exception in the message.
    """
    from pipeline.registry import registry_lock

    store.ensure()
    sweep_stale_work_dirs(store.cache_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    report_dir = store.reports_dir / f"{stamp}-{os.getpid()}"
    outcome = Outcome()
    artifacts: dict[str, Artifact] = {}
    keys: dict[str, str] = {}
    records: list[StepRecord] = []
    total = len(steps)
    # Every step reads the project configuration (``pipeline.schema``): an edited
    # contract, gate or trainer re-runs what it changes. Read once per run.
    project_digest = file_digest(schema.PROJECT_PATH)
    with ExitStack() as locks:
        held = [False]
        for index, step in enumerate(steps, start=1):
            started = time.perf_counter()
            label = f"[{index}/{total}] {step.name}"
            ctx: StepContext | None = None
            try:
                if step.locked and not held[0]:
                    locks.enter_context(registry_lock(store.root / "registry.lock"))
                    held[0] = True
                elif not step.locked and held[0]:
                    locks.close()
                    held[0] = False
                missing = [name for name in step.inputs if name not in artifacts]
                if missing:
                    raise RuntimeError(f"step {step.name} needs {missing}, which no earlier step produced")
                key = combine(
                    {
                        "code": source_digest(code_files(step.sources, step.run)),
                        "project": project_digest,
                        "params": json_digest(step.params(config)),
                        "external": json_digest(step.external(config)),
                        **{f"input:{n}": artifacts[n].digest for n in step.inputs},
                    }
                )
                keys[step.name] = key
                final_dir = store.cache_dir / step.name / key
                cached = None if (force or not step.cacheable) else _read_manifest(final_dir)
                if cached is not None:
                    produced, changes = cached
                    outcome.update(changes)
                    state = "cached"
                else:
                    work_dir = store.cache_dir / step.name / f".tmp-{key[:16]}-{os.getpid()}"
                    shutil.rmtree(work_dir, ignore_errors=True)
                    work_dir.mkdir(parents=True)
                    ctx = StepContext(
                        config=config,
                        store=store,
                        tracking_uri=tracking_uri,
                        inputs={n: artifacts[n] for n in step.inputs},
                        output_dir=work_dir,
                        report_dir=report_dir,
                        key=key,
                        keys=dict(keys),
                    )
                    heartbeat = StepProgress(label, step.what, progress, after_s=progress_after_s)
                    ctx.progress = heartbeat.update
                    try:
                        produced = step.run(ctx)
                    except BaseException:
                        shutil.rmtree(work_dir, ignore_errors=True)
                        raise
                    finally:
                        heartbeat.stop()
                    outcome.update(ctx.outcome_changes)
                    if step.cacheable:
                        _write_manifest(work_dir, produced, ctx.outcome_changes)
                        if final_dir.exists():
                            # Another run finished the same step first: keep its copy.
                            shutil.rmtree(work_dir, ignore_errors=True)
                            reread = _read_manifest(final_dir)
                            produced = reread[0] if reread else produced
                        else:
                            work_dir.rename(final_dir)
                            produced = _rebase(produced, work_dir, final_dir)
                    state = f"skipped: {ctx.skipped}" if ctx.skipped else "done"
                artifacts.update(produced)
            except StopPipeline as stop:
                outcome.update({"status": "stopped", **stop.changes})
                records.append(StepRecord(step.name, "stopped", time.perf_counter() - started))
                progress(f"{label}: {outcome.message or 'stopped'} ({records[-1].seconds:.1f}s)")
                break
            except Exception as exc:  # noqa: BLE001 - every failure becomes an exit code and a message
                from pipeline.data import DataLoadError
                from pipeline.steps.validate import DataValidationError

                records.append(StepRecord(step.name, "failed", time.perf_counter() - started))
                if ctx is not None:
                    outcome.update(ctx.outcome_changes)
                from pipeline.steps.validate import ConfigurationContradictsData
                from training.entry_point import TrainerError

                if isinstance(exc, (DataLoadError, DataValidationError)):
                    outcome.update({"exit_code": ExitCode.INVALID_DATA, "status": "invalid_data", "message": str(exc)})
                elif isinstance(exc, (ConfigurationContradictsData, TrainerError)):
                    # The project file is wrong, not the data or the code: exit 2, nothing registered.
                    outcome.update({"exit_code": ExitCode.USAGE, "status": "bad_configuration", "message": str(exc)})
                else:
                    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                    outcome.update({"exit_code": ExitCode.ERROR, "status": "error", "message": f"step {step.name} failed: {detail}"})
                    if os.environ.get("PIPELINE_DEBUG"):
                        traceback.print_exc()
                progress(f"{label}: FAILED ({records[-1].seconds:.1f}s)")
                break
            records.append(StepRecord(step.name, state.split(":", 1)[0], time.perf_counter() - started))
            progress(f"{label}: {state} ({records[-1].seconds:.1f}s)")
    if outcome.status == "running":
        outcome.status = "completed"
    if outcome.champion_version is None and outcome.exit_code != ExitCode.ERROR:
        outcome.champion_version = _champion_version(tracking_uri, config)
    return RunResult(
        exit_code=outcome.exit_code,
        status=outcome.status,
        gate_passed=outcome.gate_passed,
        reasons=list(outcome.reasons),
        champion_version=outcome.champion_version,
        model_version=outcome.model_version,
        report_path=outcome.report_path,
        tracking_uri=tracking_uri,
        store=store.root,
        steps=records,
        message=outcome.message,
        notes=list(outcome.notes),
    )


@dataclass(frozen=True)
class RunConfig:
    """Everything one pipeline run depends on; defaults give the embedded-default run.

    ``tracking_uri`` None means the local store's SQLite registry. Thresholds and
    hyperparameters are typed dataclasses from the step modules, built lazily so that
    constructing a config imports nothing heavy.
    """

    data: Path = DEFAULT_DATASET
    tracking_uri: str | None = None
    model_name: str = field(default_factory=lambda: schema.DEFAULT_MODEL_NAME)
    store: LocalStore | None = None
    force: bool = False
    hyperparameters: Any = None
    split: Any = None
    validation: Any = None
    gate: Any = None
    deploy: bool = True
    """Serve and smoke-test a newly promoted champion on 127.0.0.1 (rolls back on failure)."""
    release_alias: str = "champion"
    """The alias a version that passed the gate gets: ``champion`` (this laptop loop, whose
    deploy follows in-process) or ``candidate`` (the release path: ``deliver rehearse``)."""
    create_registry: bool = False
    """Create the registry an explicit ``sqlite:``/file tracking URI names when it does not
    exist (the local store's own registry is always created with the store)."""

    def resolved(self) -> RunConfig:
        """A copy with every ``None`` replaced by its default (tracking URI: argument, else
        ``MLFLOW_TRACKING_URI``, else the local store's SQLite file)."""
        from pipeline.steps.split import SplitParams
        from pipeline.steps.validate import ValidationThresholds
        from training.model import project_hyperparameters

        store = self.store or LocalStore.default()
        return RunConfig(
            data=Path(self.data).resolve(),
            tracking_uri=self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or store.tracking_uri,
            model_name=self.model_name,
            store=store,
            force=self.force,
            hyperparameters=self.hyperparameters or project_hyperparameters(),
            split=self.split or SplitParams(),
            validation=self.validation or ValidationThresholds(),
            gate=self.gate or schema.THRESHOLDS,
            deploy=self.deploy,
            release_alias=self.release_alias,
            create_registry=self.create_registry,
        )


def run_pipeline(config: RunConfig, steps: Sequence[Step] | None = None,
                 progress: Callable[[str], None] = default_progress) -> RunResult:
    """Run the commit pipeline (``pipeline.wiring.commit_pipeline`` unless ``steps`` is given).

    The tracking URI is ``config.tracking_uri``, else ``MLFLOW_TRACKING_URI``, else the
    local store's SQLite file; the cache and reports always live in the local store.
    Raises ``pipeline.tracking_uri.TrackingUriError`` (bad URI, registry missing) or
    ``TrackingUnreachable`` before any step runs.
    """
    from pipeline.wiring import commit_pipeline

    from pipeline.tracking_uri import check_tracking_uri

    config = config.resolved()
    store = config.store or LocalStore.default()
    tracking_uri = config.tracking_uri or store.tracking_uri
    # Before any step: a mistyped URI must not train first and fail (or create) later.
    check_tracking_uri(tracking_uri, create=config.create_registry or tracking_uri == store.tracking_uri)
    preparation = None
    if tracking_uri == store.tracking_uri:
        if moved := store.relocate():
            progress(moved)
        from pipeline import fresh_registry

        # A new store: MLflow's schema is made in a helper while the first steps run;
        # register waits for it (pipeline/fresh_registry.py).
        preparation = fresh_registry.start(store.ensure().root / "mlflow.db")
    try:
        return execute(
            steps if steps is not None else commit_pipeline(),
            config,
            store=store,
            tracking_uri=tracking_uri,
            force=config.force,
            progress=progress,
        )
    finally:
        if preparation is not None:
            preparation.close()
