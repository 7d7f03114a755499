"""Connection guards under uvicorn's h11 protocol: header timeout, connection cap,
clean refusals of oversized or malformed heads.

uvicorn times out idle keep-alive connections but not a connection that never finishes
its request head: 200 such connections stayed open for good, and at the descriptor limit
``/ping`` could not even be accepted. :class:`GuardedH11Protocol` adds what a front proxy
would otherwise give:

- a header timeout: a connection whose request head is not complete within
  ``header_timeout_s`` of its first byte (or of opening) is closed, with a 408 when it
  had sent part of a head, silently when it had sent nothing;
- a connection cap: past ``max_connections`` the longest-idle connection that has no
  request in progress is closed to make room (or, if every one is busy, the new one),
  so descriptors stay free for the probes;
- a head larger than h11's limit (16 KiB) is answered 431, any other malformed head 400,
  both as the server's JSON error body, followed by a lingering close: the rest of what
  the client is still sending is read and discarded for a bounded time, so it reads our
  answer instead of a TCP reset.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_HEAD_BYTES = 16 * 1024
"""The largest request head (request line and headers) accepted; h11's own default."""


@dataclass(frozen=True)
class TransportLimits:
    """Per-connection limits enforced below the ASGI app."""

    header_timeout_s: float = 10.0
    max_connections: int = 1000
    linger_s: float = 2.0
    """How long a refused connection is drained before it is closed."""
    linger_max_bytes: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        if not self.header_timeout_s > 0:
            raise ValueError(f"header timeout must be positive, got {self.header_timeout_s}")
        if self.max_connections < 1:
            raise ValueError(f"max connections must be at least 1, got {self.max_connections}")


def _error_response(status: int, reason: str, code: str, message: str) -> bytes:
    body = json.dumps({"error": code, "message": message, "request_id": ""}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()
    return head + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the guards described in the module docstring."""

    limits: TransportLimits = TransportLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: Any = None
        self._last_active = time.monotonic()
        self._discarded = 0
        self._lingering = False

    # -- lifecycle ------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm_header_timer()
        if len(self.connections) > self.limits.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._last_active = time.monotonic()
        if self._lingering:
            self._discarded += len(data)
            if self._discarded > self.limits.linger_max_bytes:
                self.transport.close()
            return
        if self._header_timer is None and self.idle():
            self._arm_header_timer()  # the first byte of the next request on a kept-alive connection
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle:
            self._disarm_header_timer()  # a request head was completed

    def eof_received(self) -> bool | None:  # type: ignore[override]
        if self._lingering:
            self.transport.close()
        return super().eof_received()

    def idle(self) -> bool:
        """No request in progress on this connection (waiting for a head, or between requests)."""
        return self.cycle is None or self.cycle.response_complete

    def buffered(self) -> bool:
        """Bytes of a next request already received but not yet a complete head."""
        return bool(self.conn.trailing_data[0])

    # -- header timeout ---------------------------------------------------------------------

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.limits.header_timeout_s, self._header_timeout)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self.idle():
            return
        if self.buffered():
            self._refuse(408, "Request Timeout", "header_timeout",
                         f"the request head did not arrive within {self.limits.header_timeout_s:g} s")
        else:
            self.transport.close()

    # -- refusals ---------------------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        """h11 refused the head: 431 when it outgrew the limit, else 400 (JSON, then a
        lingering close)."""
        if len(self.conn.trailing_data[0]) > MAX_HEAD_BYTES:
            self._refuse(431, "Request Header Fields Too Large", "header_too_large",
                         f"the request head exceeds {MAX_HEAD_BYTES} bytes")
        else:
            self._refuse(400, "Bad Request", "bad_http_request", "the request is not valid HTTP/1.1")

    def _refuse(self, status: int, reason: str, code: str, message: str) -> None:
        self._disarm_header_timer()
        self._lingering = True
        self.transport.write(_error_response(status, reason, code, message))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(self.limits.linger_s, self.transport.close)

    # -- connection cap -----------------------------------------------------------------------

    def _make_room(self) -> None:
        victims = [c for c in self.connections
                   if c is not self and isinstance(c, GuardedH11Protocol) and c.idle() and not c.transport.is_closing()]
        if not victims:
            self.transport.close()
            return
        oldest = min(victims, key=lambda c: c._last_active)
        oldest.transport.close()


def guarded_protocol(limits: TransportLimits) -> type[GuardedH11Protocol]:
    """A protocol class bound to ``limits`` (uvicorn takes a class, not an instance)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits})
