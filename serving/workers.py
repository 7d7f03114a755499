"""Worker processes that score large request bodies off the event loop.

Threads are not enough: ``json.loads`` of a 6 MiB body, ``json.dumps`` of 100,000
predictions and of their capture record each hold the GIL for tens of milliseconds in
one C call, so ``/ping`` would still wait behind them. Workers are forked from the
server once the model is loaded, so they share its memory copy-on-write and never load
it again; a request crosses to them as bytes and comes back as bytes
(:class:`~serving.scoring.Scored`).

Two fork hazards are handled in each worker's initializer: XGBoost's OpenMP runtime
(libgomp) hangs in a forked child that starts a thread team once the parent has used
one, so workers score single-threaded (parallelism comes from the number of workers);
and a child inherits every socket the server had open, which would keep closed client
connections half-alive, so workers close their inherited sockets. A worker that dies (an
out-of-memory kill) breaks a ``ProcessPoolExecutor`` for good: the pool is replaced and
the requests it held are answered 503.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import stat
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

from serving.model import LoadedModel
from serving.payload import PayloadError
from serving.scoring import Scored, ScoreRequest, score_request

log = logging.getLogger("serving.workers")

_MODEL: LoadedModel | None = None
"""The model a worker serves: set in the server before the fork, inherited by it."""


class WorkerLost(RuntimeError):
    """A worker process died while it held this request."""


@dataclass(frozen=True)
class Refused:
    """A :class:`PayloadError` as plain data (it crosses the process boundary)."""

    status: int
    code: str
    message: str
    columns: list[str]

    def error(self) -> PayloadError:
        return PayloadError(self.status, self.code, self.message, list(self.columns))


@dataclass(frozen=True)
class Failed:
    """The model (or its output check) raised: the type and traceback, for the log."""

    kind: str
    trace: str


Outcome = Scored | Refused | Failed


def run_one(model: LoadedModel, request: ScoreRequest) -> Outcome:
    """:func:`score_request` with every exception turned into data."""
    try:
        return score_request(model, request)
    except PayloadError as exc:
        return Refused(exc.status, exc.code, exc.message, list(exc.columns))
    except Exception as exc:  # the caller logs it with an error id and answers 500
        return Failed(type(exc).__name__, traceback.format_exc())


def _model() -> LoadedModel:
    if _MODEL is None:
        raise RuntimeError("scoring worker started without a model (forked before ScoringPool set it)")
    return _MODEL


def _work(request: ScoreRequest) -> Outcome:
    return run_one(_model(), request)


def _ready() -> int:
    return os.getpid()


def single_threaded(model: LoadedModel) -> None:
    """Make every OpenMP user in this (forked) process run one thread."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)
    except ImportError:  # scikit-learn brings threadpoolctl; without it only XGBoost is pinned
        pass
    steps = getattr(model.sklearn_model, "steps", None) or [(None, model.sklearn_model)]
    for _, step in steps:
        get_booster = getattr(step, "get_booster", None)
        if callable(get_booster):
            get_booster().set_param({"nthread": 1})


def _close_inherited_sockets() -> None:
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:  # not Linux: nothing to enumerate
        return
    for name in names:
        fd = int(name)
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.close(fd)
        except OSError:
            pass


def _init_worker() -> None:
    # Ctrl-C reaches the whole process group: the server drains, its workers must not die first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _close_inherited_sockets()
    single_threaded(_model())


class ScoringPool:
    """``workers`` forked processes scoring with the model they were forked with."""

    def __init__(self, model: LoadedModel, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.model = model
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self.replaced = 0

    def _new_executor(self) -> ProcessPoolExecutor:
        global _MODEL
        _MODEL = self.model
        return ProcessPoolExecutor(self.workers, mp_context=get_context("fork"), initializer=_init_worker)

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = self._new_executor()
            return self._executor

    def start(self) -> list[int]:
        """Fork the workers now (a ProcessPoolExecutor forks them all at its first task);
        returns their pids."""
        executor = self._current()
        return sorted({executor.submit(_ready).result(timeout=60) for _ in range(self.workers)})

    async def score(self, request: ScoreRequest) -> Outcome:
        """Score ``request`` in a worker; :class:`WorkerLost` when its worker died."""
        executor = self._current()
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, _work, request)
        except BrokenProcessPool:
            with self._lock:
                if self._executor is executor:
                    self._executor = None
                    self.replaced += 1
                    log.error("a scoring worker died (killed or out of memory); starting a new pool of %d",
                              self.workers)
            executor.shutdown(wait=False, cancel_futures=True)
            raise WorkerLost("the worker scoring this request died") from None

    def close(self, grace_s: float = 1.0) -> None:
        """Stop the workers: queued tasks are cancelled, a running one gets ``grace_s``
        to finish (its request was answered 504 or cancelled by the drain already), then
        the worker is terminated, so shutdown stays inside the drain bound."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is None:
            return
        # ProcessPoolExecutor has no bounded shutdown; its process table is the only handle.
        processes = list((getattr(executor, "_processes", None) or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + grace_s
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.terminate()
                process.join(1.0)

    def pids(self) -> list[int]:
        """The live workers' pids (for tests and the benchmark)."""
        executor = self._executor
        processes: dict[int, Any] = getattr(executor, "_processes", None) or {}
        return sorted(processes)
