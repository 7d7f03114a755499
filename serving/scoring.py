"""One request's whole unit of work: body in, response bytes (and capture line) out.

Decoding, validation, the model call, the response encoding and the capture record are
one pure function, :func:`score_request`, so the server can run it either on the event
loop (small bodies, where a hand-off costs more than the work) or in a worker process
(serving.workers) and get the same answer. Its result is bytes and numbers only, so it
crosses a process boundary without pickling a single Python object per row.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from serving.capture import capture_record
from serving.model import LoadedModel
from serving.payload import parse_request

JSON_TYPE = "application/json"
CSV_TYPE = "text/csv"
RESPONSE_TYPES = (JSON_TYPE, CSV_TYPE)
"""What ``/invocations`` can answer in, in the order ``*/*`` picks them."""


class ModelOutputError(RuntimeError):
    """The model answered with something that cannot be returned as strict JSON."""


@dataclass(frozen=True)
class ScoreRequest:
    """What one invocation asks for: the body as received and how to answer it."""

    media: str
    """``text/csv`` or ``application/json`` (parameters already stripped)."""
    body: bytes
    accept: str
    """The response type, one of :data:`RESPONSE_TYPES`."""
    request_id: str
    """The server-issued id (response header, body and capture ``request_id``)."""
    client_request_id: str | None
    """The client's own ``X-Request-Id``, kept only in the capture record."""
    capture: bool
    """Whether this request was sampled for capture."""


@dataclass(frozen=True)
class Scored:
    """A scored request: the response body and what the metrics and capture need."""

    body: bytes
    n_rows: int
    probabilities: bytes | None
    """float64 probabilities (``np.frombuffer``) for the drift gauge, or None."""
    capture_line: bytes | None
    """The capture record as one UTF-8 JSON line (no newline), when sampled; bytes, so
    that coming back from a worker costs a copy, not a decode."""

    def probability_array(self) -> np.ndarray | None:
        return None if self.probabilities is None else np.frombuffer(self.probabilities, dtype=np.float64)


def _csv_body(labels: list, probabilities: list[float] | None) -> bytes:
    # One line per row, no header: SageMaker batch transform joins response lines with
    # its input lines by position, so a header line would shift every row.
    if probabilities is None:
        return "".join(f"{label}\n" for label in labels).encode()
    return "".join(f"{label},{p!r}\n" for label, p in zip(labels, probabilities, strict=True)).encode()


def score_request(model: LoadedModel, request: ScoreRequest) -> Scored:
    """Decode, validate, score and encode one request.

    Raises :class:`~serving.payload.PayloadError` for anything the client got wrong,
    :class:`ModelOutputError` when the model's answer cannot be sent, and whatever the
    model itself raises."""
    batch = parse_request(request.media, request.body, model.columns)
    prediction = model.predict(batch)
    probabilities = prediction.probabilities
    if probabilities is not None and not all(math.isfinite(p) for p in probabilities):
        raise ModelOutputError("the model returned non-finite probabilities")
    if len(prediction.labels) != batch.n_rows:
        raise ModelOutputError(f"the model returned {len(prediction.labels)} predictions for {batch.n_rows} rows")
    if request.accept == CSV_TYPE:
        body = _csv_body(prediction.labels, probabilities)
    else:
        body = json.dumps(
            {
                "predictions": prediction.labels,
                "probabilities": probabilities,
                "model_version": model.version,
                "request_id": request.request_id,
            },
            allow_nan=False,
        ).encode()
    line = None
    if request.capture:
        record = capture_record(
            request.request_id, model.name, model.version, [spec.name for spec in model.columns],
            batch.rows(), prediction.labels, probabilities, client_request_id=request.client_request_id,
        )
        line = json.dumps(record, allow_nan=False, separators=(",", ":")).encode()
    packed = None if probabilities is None else np.asarray(probabilities, dtype=np.float64).tobytes()
    return Scored(body, batch.n_rows, packed, line)
