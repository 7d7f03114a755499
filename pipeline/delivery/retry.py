"""Retrying the calls a release makes to the cluster and to AWS, and only the transient ones.

A kubectl call that times out, an API server that answers "the server is currently
unable to handle the request", or a throttled ``DescribeAlarms`` says nothing about the
model: the release must ride it out, not stop half-way with a canary running. Anything
else (a refused patch, a missing object, a denied permission) is a real answer and is
raised at once. tenacity does the waiting (exponential backoff with jitter, bounded
attempts); this module decides what is transient.
boto3 clients already retry throttling themselves (``pipeline.delivery.aws``: adaptive
mode); :func:`retrying` adds a second, outer bound for the polling loops, so a burst of
throttling that outlasts botocore's attempts is still not a verdict.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_TRANSIENT_KUBECTL = re.compile(
    r"timed out|timeout|i/o timeout|connection refused|connection reset|TLS handshake|EOF|"
    r"Unable to connect to the server|the server is currently unable to handle the request|"
    r"ServiceUnavailable|TooManyRequests|Too Many Requests|etcdserver: (request timed out|leader changed)|"
    r"http2: client connection lost|the object has been modified",
    re.IGNORECASE,
)
_TRANSIENT_AWS_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded", "TooManyRequestsException",
    "RequestThrottled", "RequestTimeout", "RequestTimeoutException", "ServiceUnavailable", "InternalFailure",
    "InternalError", "SlowDown",
})

ATTEMPTS = 5
"""How many times a transient failure is tried before it counts as an answer."""


def is_transient(exc: BaseException) -> bool:
    """True for errors that say "try again", never for errors that say "no".

    "the object has been modified" is Kubernetes' optimistic-concurrency conflict: a
    re-read and retry is its documented answer. A JSON patch whose ``test`` op failed
    is not transient: the object changed under us and the caller must look.
    """
    from pipeline.delivery.rollout import KubectlError

    if isinstance(exc, KubectlError):
        return bool(_TRANSIENT_KUBECTL.search(str(exc))) and "test operation failed" not in str(exc)
    try:
        from botocore.exceptions import ClientError, ConnectionError as BotoConnectionError, ReadTimeoutError
    except ImportError:  # pragma: no cover - boto3 is a core dependency
        return False
    if isinstance(exc, (BotoConnectionError, ReadTimeoutError)):
        return True
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "")) in _TRANSIENT_AWS_CODES
    return False


def retrying(call: Callable[[], T], *, attempts: int = ATTEMPTS, wait_max_s: float = 20.0,
             sleep: Callable[[float], None] | None = None, on_retry: Callable[[str], None] | None = None) -> T:
    """``call()``, retried with exponential backoff while it fails transiently.

    ``sleep`` replaces the wait in tests (tenacity's own hook); ``on_retry`` hears one
    line per retry so the stage log says why it paused.
    """
    from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

    def before_sleep(state: Any) -> None:
        if on_retry is not None and state.outcome is not None:
            on_retry(f"transient error (attempt {state.attempt_number}/{attempts}): {state.outcome.exception()}")

    options: dict[str, Any] = {}
    if sleep is not None:
        options["sleep"] = sleep
    for attempt in Retrying(
        retry=retry_if_exception(is_transient), stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(initial=1.0, max=wait_max_s), reraise=True, before_sleep=before_sleep, **options,
    ):
        with attempt:
            return call()
    raise AssertionError("unreachable: tenacity either returns or re-raises")  # pragma: no cover
