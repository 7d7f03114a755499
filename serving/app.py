"""The ASGI application: SageMaker's container contract, hardened against bad input.

A plain ASGI callable rather than a framework: five fixed routes do not need a router,
and on the single-row hot path every microsecond of framework dispatch shows in p99.
Every refusal is a JSON body with ``error``, ``message``, ``request_id`` and, where it
applies, ``columns``; a model failure is a 500 whose ``error_id`` also appears, with the
traceback, in the server log and nowhere else. Routes and bodies: docs/contracts.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from serving.capture import CaptureWriter, capture_record
from serving.emf import EmfPublisher
from serving.metrics import ServingMetrics
from serving.model import LoadedModel, Prediction
from serving.openapi import build_openapi
from serving.payload import PayloadError, csv_to_columns, json_to_columns, max_request_columns, parse_json, validate

log = logging.getLogger("serving.app")

DEFAULT_MAX_BODY_BYTES = 6_291_456
"""SageMaker's cap on an invocation body."""

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_JSON = b"application/json"
_ACCEPTED_TYPES = ("application/json", "text/csv")


@dataclass(frozen=True)
class AppSettings:
    """Request-path limits of the app (transport settings live in serving.__main__)."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    request_timeout_s: float = 20.0
    model_threads: int = 2
    inline_max_rows: int = 64
    """Batches up to this many rows are scored on the event loop: a thread hand-off costs
    more than scoring them, and under load it is the p99. Larger ones go to the model
    threads, where the per-request timeout can abandon them."""

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1:
            raise ValueError(f"max body bytes must be positive, got {self.max_body_bytes}")
        if not self.request_timeout_s > 0:
            raise ValueError(f"request timeout must be positive, got {self.request_timeout_s}")
        if self.model_threads < 1:
            raise ValueError(f"model threads must be at least 1, got {self.model_threads}")
        if self.inline_max_rows < 0:
            raise ValueError(f"inline max rows must be >= 0, got {self.inline_max_rows}")


class ModelOutputError(RuntimeError):
    """The model answered with something that cannot be returned as strict JSON."""


def _request_id(scope: Scope) -> str | PayloadError:
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            text = value.decode("latin-1")
            if 0 < len(text) <= 128 and all(33 <= ord(ch) <= 126 for ch in text):
                return text
            return PayloadError(400, "bad_request_id", "X-Request-Id must be 1-128 visible ASCII characters")
    return str(uuid.uuid4())


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


class ServingApp:
    """The ASGI app serving one loaded model."""

    def __init__(self, model: LoadedModel, settings: AppSettings, capture: CaptureWriter | None = None,
                 emf: EmfPublisher | None = None) -> None:
        self.model = model
        self.settings = settings
        self.capture = capture
        self.emf = emf
        self.metrics = ServingMetrics(model.name, model.version, model.baseline_predictions, sink=emf)
        if emf is not None:
            self.metrics.registry.register(emf.collector())
        self._executor = ThreadPoolExecutor(max_workers=settings.model_threads, thread_name_prefix="model")
        self._column_names = [spec.name for spec in model.columns]
        self._openapi = json.dumps(build_openapi(model.columns, model.name, model.version)).encode()
        self._version = json.dumps(
            {
                "model_name": model.name,
                "model_version": model.version,
                "model_uri": model.uri,
                "run_id": model.run_id,
                "lineage": model.lineage,
            }
        ).encode()
        self._ping = json.dumps({"status": "ok", "model_name": model.name, "model_version": model.version}).encode()
        self._routes: dict[str, dict[str, Callable[[Scope, Receive, Send], Awaitable[None]]]] = {
            "/ping": {"GET": self._static(self._ping, _JSON)},
            "/invocations": {"POST": self._invocations},
            "/version": {"GET": self._static(self._version, _JSON)},
            "/openapi.json": {"GET": self._static(self._openapi, _JSON)},
            "/metrics": {"GET": self._metrics},
        }

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
                    self.emf.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._executor.shutdown(wait=True, cancel_futures=True)
                if self.capture is not None:
                    self.capture.close()
                if self.emf is not None:
                    # The last partial window: requests served just before SIGTERM count.
                    await asyncio.get_running_loop().run_in_executor(None, self.emf.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    @staticmethod
    async def _respond(send: Send, status: int, body: bytes, content_type: bytes, extra: list[tuple[bytes, bytes]]) -> None:
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _static(self, body: bytes, content_type: bytes) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        async def handler(scope: Scope, receive: Receive, send: Send) -> None:
            await self._respond(send, 200, body, content_type, [])

        return handler

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST

        await self._respond(send, 200, self.metrics.render(), CONTENT_TYPE_LATEST.encode(), [])

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
        """The body, or ``None`` when the client went away; 413 past the cap."""
        cap = self.settings.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            raise PayloadError(413, "body_too_large", f"the body is {declared} bytes; the limit is {cap} bytes")
        chunks: list[bytes] = []
        size = 0
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

    def _score(self, names: list[str], columns: list[list[Any]], from_text: bool) -> tuple[Any, Prediction]:
        batch = validate(names, columns, self.model.columns, from_text=from_text)
        prediction = self.model.predict(batch)
        if prediction.probabilities is not None and not all(math.isfinite(p) for p in prediction.probabilities):
            raise ModelOutputError("the model returned non-finite probabilities")
        if len(prediction.labels) != batch.n_rows:
            raise ModelOutputError(f"the model returned {len(prediction.labels)} predictions for {batch.n_rows} rows")
        return batch, prediction

    async def _handle_invocation(self, scope: Scope, receive: Receive, request_id: str) -> tuple[int, bytes] | None:
        raw_type = _header(scope, b"content-type")
        media = raw_type.split(";", 1)[0].strip().lower() if raw_type else ""
        if media not in _ACCEPTED_TYPES:
            found = f"Content-Type {raw_type!r}" if raw_type else "no Content-Type"
            raise PayloadError(415, "unsupported_media_type", f"{found}; send one of {list(_ACCEPTED_TYPES)}")
        body = await self._read_body(scope, receive)
        if body is None:
            return None
        width = max_request_columns(self.model.columns)
        if media == "text/csv":
            names, columns = csv_to_columns(body, width)
        else:
            names, columns = json_to_columns(parse_json(body), width)
        rows = len(columns[0]) if columns else 0
        if rows <= self.settings.inline_max_rows:
            batch, prediction = self._score(names, columns, media == "text/csv")
        else:
            loop = asyncio.get_running_loop()
            batch, prediction = await loop.run_in_executor(
                self._executor, self._score, names, columns, media == "text/csv"
            )
        self.metrics.scored(batch.n_rows, prediction.probabilities)
        if self.capture is not None and random.random() < self.capture.settings.sample_rate:
            record = capture_record(
                request_id,
                self.model.name,
                self.model.version,
                self._column_names,
                batch.rows(),
                prediction.labels,
                prediction.probabilities,
            )
            if not self.capture.submit(record):
                self.metrics.capture_dropped.inc()
        body_out = json.dumps(
            {
                "predictions": prediction.labels,
                "probabilities": prediction.probabilities,
                "model_version": self.model.version,
                "request_id": request_id,
            },
            allow_nan=False,
        ).encode()
        return 200, body_out

    async def _invocations(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = _request_id(scope)
        if isinstance(request_id, PayloadError):
            self.metrics.observe(400, time.perf_counter() - started)
            await self._error(send, 400, request_id.code, request_id.message, "")
            return
        status = 500
        try:
            async with asyncio.timeout(self.settings.request_timeout_s):
                outcome = await self._handle_invocation(scope, receive, request_id)
            if outcome is None:
                status = 499  # client closed the connection; nothing to send
                return
            status, body = outcome
            await self._respond(send, 200, body, _JSON, [(b"x-request-id", request_id.encode())])
        except PayloadError as exc:
            status = exc.status
            await self._error(send, status, exc.code, exc.message, request_id, exc.columns)
        except TimeoutError:
            status = 504
            await self._error(
                send, status, "timeout", f"the request did not finish within {self.settings.request_timeout_s:g} s",
                request_id,
            )
        except Exception as exc:
            status = 500
            error_id = uuid.uuid4().hex[:16]
            log.error("model error error_id=%s request_id=%s: %s", error_id, request_id, type(exc).__name__, exc_info=True)
            await self._error(
                send, status, "model_error",
                f"the model failed on this input; quote error_id {error_id} to the operator",
                request_id, error_id=error_id,
            )
        finally:
            self.metrics.observe(status, time.perf_counter() - started)
