"""The ASGI application: SageMaker's container contract, hardened against bad input.

A plain ASGI callable rather than a framework: a handful of fixed routes do not need a
router, and on the single-row hot path every microsecond of framework dispatch shows in
p99. Every refusal is a JSON body with ``error``, ``message``, ``request_id`` and, where
it applies, ``columns``; a model failure is a 500 whose ``error_id`` also appears, with
the traceback, in the server log and nowhere else. Routes and bodies: docs/contracts.md.

The event loop does only bounded work: bodies up to ``inline_max_bytes`` are scored in
place (a hand-off would cost more than the work), bodies up to ``thread_max_bytes`` in a
thread (their longest GIL-holding call, ``json.loads``, takes a few milliseconds), larger
ones in worker processes (serving.workers); invocations beyond ``max_concurrency`` are refused at once with 503
and ``Retry-After`` instead of queueing behind ``/ping``. The app starts without a model
when the server is still resolving it (``/livez`` 200, ``/ping`` 503) and serves from
:meth:`ServingApp.serve_model` on; after :meth:`ServingApp.drain` ``/ping`` answers 503
and every response closes its connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from serving.capture import CaptureWriter
from serving.emf import EmfPublisher
from serving.metrics import ServingMetrics
from serving.model import LoadedModel
from serving.openapi import build_openapi
from serving.payload import PayloadError
from serving.scoring import CSV_TYPE, JSON_TYPE, RESPONSE_TYPES, ModelOutputError, Scored, ScoreRequest
from serving.workers import Failed, Refused, ScoringPool, WorkerLost, run_one

__all__ = ["AppSettings", "ModelOutputError", "ServingApp", "DEFAULT_MAX_BODY_BYTES"]

log = logging.getLogger("serving.app")

DEFAULT_MAX_BODY_BYTES = 6_291_456
"""SageMaker's cap on an invocation body (6 MiB)."""
MIB = 1024 * 1024

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[[Scope, Receive, Send], Awaitable[None]]

_JSON = JSON_TYPE.encode()
_CSV = CSV_TYPE.encode()
_ACCEPTED_TYPES = ("application/json", "text/csv")
_CLOSE = (b"connection", b"close")


def _which_model(model: LoadedModel) -> dict[str, str]:
    """What ``/ping`` says about the model that answered: name, version and, when the
    registry gave one, the run that trained it. A name and version repeat across stores
    (every fresh store starts at version 1); the run id does not, so a client that
    reached some other server on the port it expected can tell."""
    which = {"model_name": model.name, "model_version": model.version}
    if model.run_id:
        which["run_id"] = model.run_id
    return which


@dataclass(frozen=True)
class AppSettings:
    """Request-path limits of the app (transport settings live in serving.server)."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    request_timeout_s: float = 20.0
    """Scoring (queue wait included) past this answers 504."""
    workers: int = 2
    """Worker processes for bodies over ``thread_max_bytes``; as many scoring threads."""
    inline_max_bytes: int = 16 * 1024
    """Bodies up to this size are scored on the event loop: a process hand-off costs more
    than scoring them, and under load it is the p99. Larger ones go to the workers."""
    thread_max_bytes: int = 256 * 1024
    """Bodies up to this size are scored in a thread of this process: a process hand-off
    costs more than their work, and no single call on them holds the GIL for long."""
    body_timeout_s: float = 20.0
    """The whole body must arrive within this many seconds of the request; else 408."""
    max_concurrency: int = 32
    """Invocations in flight (reading, queued or scoring) before new ones get 503."""
    max_large_in_flight: int = 0
    """Bodies over ``thread_max_bytes`` admitted at once (0: twice the workers); past it
    they get 503 at once, before their body is read, instead of queueing for seconds
    behind the workers and ending in a 504."""
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1:
            raise ValueError(f"max body bytes must be positive, got {self.max_body_bytes}")
        if not self.request_timeout_s > 0:
            raise ValueError(f"request timeout must be positive, got {self.request_timeout_s}")
        if not self.body_timeout_s > 0:
            raise ValueError(f"body timeout must be positive, got {self.body_timeout_s}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.inline_max_bytes < 0:
            raise ValueError(f"inline max bytes must be >= 0, got {self.inline_max_bytes}")
        if self.thread_max_bytes < self.inline_max_bytes:
            raise ValueError(f"thread max bytes ({self.thread_max_bytes}) must be >= inline max bytes "
                             f"({self.inline_max_bytes})")
        if self.max_concurrency < 1:
            raise ValueError(f"max concurrency must be at least 1, got {self.max_concurrency}")
        if self.max_large_in_flight < 0:
            raise ValueError(f"max large in flight must be >= 0, got {self.max_large_in_flight}")

    @property
    def large_limit(self) -> int:
        return self.max_large_in_flight or 2 * self.workers

    def execution_parameters(self) -> dict[str, Any]:
        """SageMaker batch transform's ``/execution-parameters``: as many concurrent
        transforms as there are workers, and a payload size inside the body cap."""
        return {
            "MaxConcurrentTransforms": self.workers,
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": min(6, self.max_body_bytes // MIB),
        }


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def client_request_id(scope: Scope) -> str | None:
    """The client's ``X-Request-Id`` (kept in the capture record), None when absent;
    :class:`PayloadError` when it is not 1-128 visible ASCII characters."""
    text = _header(scope, b"x-request-id")
    if text is None:
        return None
    if 0 < len(text) <= 128 and all(33 <= ord(ch) <= 126 for ch in text):
        return text
    raise PayloadError(400, "bad_request_id", "X-Request-Id must be 1-128 visible ASCII characters")


def negotiate(accept: str | None) -> str:
    """The response type for an ``Accept`` header: JSON when absent or ``*/*``; raises
    a 406 :class:`PayloadError` naming the supported types when none is acceptable."""
    if accept is None or not accept.strip():
        return JSON_TYPE
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept.split(",")):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media and quality > 0:
            ranked.append((-quality, index, media.lower()))
    for _, _, media in sorted(ranked):
        if media in RESPONSE_TYPES:
            return media
        if media in ("*/*", "application/*"):
            return JSON_TYPE
        if media == "text/*":
            return CSV_TYPE
    raise PayloadError(406, "not_acceptable", f"Accept {accept!r} names no type this server answers in; "
                                              f"accept one of {list(RESPONSE_TYPES)}")


class ServingApp:
    """The ASGI app serving one model (or, until it has one, saying so)."""

    def __init__(self, model: LoadedModel | None, settings: AppSettings, capture: CaptureWriter | None = None,
                 emf: EmfPublisher | None = None) -> None:
        self.settings = settings
        self.capture = capture
        self.emf: EmfPublisher | None = None
        self.model: LoadedModel | None = None
        self.metrics: ServingMetrics | None = None
        self.pool: ScoringPool | None = None
        self.draining = False
        self.waiting_for = "the model is loading"
        """Why ``/ping`` is not 200 yet (the loader says what it waits for)."""
        self.in_flight = 0
        self.large_in_flight = 0
        self._threads = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="score")
        self._model_headers: list[tuple[bytes, bytes]] = []
        self._version = b""
        self._openapi = b""
        self._execution_parameters = json.dumps(settings.execution_parameters()).encode()
        self._live = json.dumps({"status": "alive"}).encode()
        self._routes: dict[str, dict[str, Handler]] = {
            "/ping": {"GET": self._ping},
            "/livez": {"GET": self._livez},
            "/invocations": {"POST": self._invocations},
            "/execution-parameters": {"GET": self._static(lambda: self._execution_parameters)},
            "/version": {"GET": self._ready_static(lambda: self._version)},
            "/openapi.json": {"GET": self._ready_static(lambda: self._openapi)},
            "/metrics": {"GET": self._metrics},
        }
        if model is not None:
            self.serve_model(model, emf)

    def serve_model(self, model: LoadedModel, emf: EmfPublisher | None = None, pool: ScoringPool | None = None) -> None:
        """Start answering for ``model``: from here ``/ping`` is 200 (unless draining)."""
        self.emf = emf
        capture = self.capture
        self.metrics = ServingMetrics(model.name, model.version, model.baseline_predictions, sink=emf,
                                      capture_lost=(lambda: capture.lost) if capture is not None else None)
        if emf is not None:
            self.metrics.registry.register(emf.collector())
        self.pool = pool if pool is not None else ScoringPool(model, self.settings.workers)
        self._model_headers = [(b"x-model-name", model.name.encode()), (b"x-model-version", model.version.encode())]
        self._version = json.dumps(
            {
                "model_name": model.name,
                "model_version": model.version,
                "model_uri": model.uri,
                "run_id": model.run_id,
                "lineage": model.lineage,
            }
        ).encode()
        self._openapi = json.dumps(build_openapi(model.columns, model.name, model.version)).encode()
        self.model = model

    def drain(self) -> None:
        """SIGTERM: ``/ping`` answers 503 and every response closes its connection."""
        self.draining = True

    def close(self) -> None:
        """Stop the workers (the server's shutdown, and tests)."""
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self.pool is not None:
            self.pool.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        methods = self._routes.get(scope["path"])
        if methods is None:
            await self._error(send, 404, "not_found", f"no route {scope['path']!r}; see /openapi.json", "")
            return
        handler = methods.get(scope["method"])
        if handler is None:
            allow = ", ".join(methods)
            await self._error(
                send, 405, "method_not_allowed", f"{scope['method']} is not allowed on {scope['path']}; use {allow}", "",
                extra=[(b"allow", allow.encode())],
            )
            return
        await handler(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.capture is not None:
                    self.capture.start()
                if self.emf is not None:
                    self.emf.start()  # idempotent: the server's loader may have started it
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, self.close)
                if self.capture is not None:
                    self.capture.close()
                if self.emf is not None:
                    # The last partial window: requests served just before SIGTERM count.
                    await loop.run_in_executor(None, self.emf.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _respond(self, send: Send, status: int, body: bytes, content_type: bytes,
                       extra: list[tuple[bytes, bytes]]) -> None:
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
                   *self._model_headers, *extra]
        if self.draining and _CLOSE not in headers:
            headers.append(_CLOSE)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _static(self, body: Callable[[], bytes]) -> Handler:
        async def handler(scope: Scope, receive: Receive, send: Send) -> None:
            await self._respond(send, 200, body(), _JSON, [])

        return handler

    def _ready_static(self, body: Callable[[], bytes]) -> Handler:
        async def handler(scope: Scope, receive: Receive, send: Send) -> None:
            if self.model is None:
                await self._not_ready(send, "")
                return
            await self._respond(send, 200, body(), _JSON, [])

        return handler

    async def _ping(self, scope: Scope, receive: Receive, send: Send) -> None:
        model = self.model
        if model is not None and not self.draining:
            body = {"status": "ok", **_which_model(model)}
            await self._respond(send, 200, json.dumps(body).encode(), _JSON, [])
            return
        status = "draining" if self.draining else "loading"
        body = {"status": status, "message": "the server is shutting down" if self.draining else self.waiting_for}
        if model is not None:
            body |= _which_model(model)
        await self._respond(send, 503, json.dumps(body).encode(), _JSON, [])

    async def _livez(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._respond(send, 200, self._live, _JSON, [])

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST

        body = self.metrics.render() if self.metrics is not None else b""
        await self._respond(send, 200, body, CONTENT_TYPE_LATEST.encode(), [])

    async def _not_ready(self, send: Send, request_id: str) -> None:
        await self._error(send, 503, "not_ready", f"no model is being served yet: {self.waiting_for}", request_id,
                          extra=[(b"retry-after", b"5")])

    async def _error(
        self,
        send: Send,
        status: int,
        code: str,
        message: str,
        request_id: str,
        columns: list[str] | None = None,
        error_id: str | None = None,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        body: dict[str, Any] = {"error": code, "message": message, "request_id": request_id}
        if columns:
            body["columns"] = columns
        if error_id:
            body["error_id"] = error_id
        headers = list(extra or [])
        if request_id:
            headers.append((b"x-request-id", request_id.encode()))
        await self._respond(send, status, json.dumps(body).encode(), _JSON, headers)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The body, or ``None`` when the client went away; 413 past the cap, 408 when
        it does not arrive within the body timeout."""
        cap = self.settings.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            raise PayloadError(413, "body_too_large", f"the body is {declared} bytes; the limit is {cap} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.settings.body_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > cap:
                        raise PayloadError(413, "body_too_large", f"the body exceeds the limit of {cap} bytes")
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise PayloadError(408, "body_timeout", f"the body did not arrive within {self.settings.body_timeout_s:g} s "
                                                    f"({size} bytes received)") from None

    def _admit_large(self) -> None:
        """Count one more large body in flight, or refuse it with 503 + Retry-After."""
        limit = self.settings.large_limit
        if self.large_in_flight >= limit:
            raise PayloadError(503, "overloaded", f"{self.large_in_flight} bodies over {self.settings.thread_max_bytes} "
                                                  f"bytes are being scored, the limit is {limit}; retry after "
                                                  f"{self.settings.retry_after_s} s")
        self.large_in_flight += 1

    async def _score(self, request: ScoreRequest) -> Scored:
        """Score in place or in a worker; raises what :func:`score_request` would."""
        model = self.model
        assert model is not None and self.pool is not None
        size = len(request.body)
        if size <= self.settings.inline_max_bytes:
            outcome = run_one(model, request)
        else:
            async with asyncio.timeout(self.settings.request_timeout_s):
                if size <= self.settings.thread_max_bytes:
                    outcome = await asyncio.get_running_loop().run_in_executor(self._threads, run_one, model, request)
                else:
                    outcome = await self.pool.score(request)
        if isinstance(outcome, Refused):
            raise outcome.error()
        if isinstance(outcome, Failed):
            raise _ModelFailure(outcome)
        return outcome

    async def _invocations(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        status = 500
        extra = [(b"x-request-id", request_id.encode())]
        counted = large = False
        try:
            if self.model is None:
                status = 503
                await self._not_ready(send, request_id)
                return
            if self.in_flight >= self.settings.max_concurrency:
                status = 503
                await self._error(send, 503, "overloaded",
                                  f"{self.in_flight} requests are in flight, the limit is {self.settings.max_concurrency}; "
                                  f"retry after {self.settings.retry_after_s} s", request_id,
                                  extra=[(b"retry-after", str(self.settings.retry_after_s).encode())])
                return
            self.in_flight += 1
            counted = True
            declared = _header(scope, b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.settings.thread_max_bytes:
                self._admit_large()
                large = True
            client_id = client_request_id(scope)
            raw_type = _header(scope, b"content-type")
            media = raw_type.split(";", 1)[0].strip().lower() if raw_type else ""
            if media not in _ACCEPTED_TYPES:
                found = f"Content-Type {raw_type!r}" if raw_type else "no Content-Type"
                raise PayloadError(415, "unsupported_media_type", f"{found}; send one of {list(_ACCEPTED_TYPES)}")
            accept = negotiate(_header(scope, b"accept"))
            body = await self._read_body(scope, receive)
            if body is None:
                status = 499  # client closed the connection; nothing to send
                return
            if not large and len(body) > self.settings.thread_max_bytes:  # chunked: no length declared
                self._admit_large()
                large = True
            sampled = self.capture is not None and random.random() < self.capture.settings.sample_rate
            scored = await self._score(ScoreRequest(media, body, accept, request_id, client_id, sampled))
            assert self.metrics is not None
            self.metrics.scored(scored.n_rows, scored.probability_array())
            if scored.capture_line is not None and self.capture is not None:
                self.capture.submit(scored.capture_line)
            status = 200
            await self._respond(send, 200, scored.body, _CSV if accept == CSV_TYPE else _JSON, extra)
        except PayloadError as exc:
            status = exc.status
            # 408: the rest of the body may still be on its way; the connection cannot be reused.
            extra_headers = [_CLOSE] if status == 408 else []
            if status == 503:
                extra_headers.append((b"retry-after", str(self.settings.retry_after_s).encode()))
            await self._error(send, status, exc.code, exc.message, request_id, exc.columns, extra=extra_headers)
        except TimeoutError:
            status = 504
            await self._error(
                send, status, "timeout", f"the request did not finish within {self.settings.request_timeout_s:g} s",
                request_id,
            )
        except WorkerLost as exc:
            status = 503
            await self._error(send, status, "worker_lost", f"{exc}; retry", request_id,
                              extra=[(b"retry-after", str(self.settings.retry_after_s).encode())])
        except Exception as exc:
            status = 500
            error_id = uuid.uuid4().hex[:16]
            if isinstance(exc, _ModelFailure):
                log.error("model error error_id=%s request_id=%s: %s\n%s", error_id, request_id, exc.outcome.kind,
                          exc.outcome.trace.rstrip())
            else:
                log.error("model error error_id=%s request_id=%s: %s", error_id, request_id, type(exc).__name__,
                          exc_info=True)
            await self._error(
                send, status, "model_error",
                f"the model failed on this input; quote error_id {error_id} to the operator",
                request_id, error_id=error_id,
            )
        finally:
            if counted:
                self.in_flight -= 1
            if large:
                self.large_in_flight -= 1
            if self.metrics is not None:
                self.metrics.observe(status, time.perf_counter() - started)


class _ModelFailure(Exception):
    """A :class:`~serving.workers.Failed` outcome raised on the event loop side."""

    def __init__(self, outcome: Failed) -> None:
        super().__init__(outcome.kind)
        self.outcome = outcome
