"""The local canary: the new champion beside the current one on 127.0.0.1, judged the same way.

This is the cluster's canary in miniature, so the release path runs on every CI
machine: the previous champion (stable) and the new one (canary) each run as a real
server process (``serving.process.running_server``); a replayed request set is split,
``weight_percent`` of it to the canary, in ``windows`` rounds; after each round both
``/metrics`` are scraped and the window becomes a :class:`BakeSample`; the same
:func:`analyse_canary` decides. Locally the bake is counted in replayed requests, not
minutes. On rollback the ``champion`` alias moves back to the stable version (deleted
when there was none) and the canary is stopped; the stable server is checked to still
answer with its own version, which is what "the previous champion keeps serving" means
on a laptop.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.delivery import registry
from pipeline.delivery.canary import BakeSample, CanaryConfig, CanaryVerdict, analyse_canary, parse_metrics, sample_between


@dataclass(frozen=True)
class LocalCanaryResult:
    """The analysis verdict, per-window samples of both servers, the smoke test's result
    (None when it did not run) and what happened to the alias."""

    verdict: CanaryVerdict
    canary_samples: tuple[BakeSample, ...]
    stable_samples: tuple[BakeSample, ...]
    rolled_back: bool
    registry_action: str
    stable_still_serving: bool | None
    smoke: Any = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def replay_requests(data: Path, n_requests: int = 200, rows_per_request: int = 4, seed: int = 0) -> list[bytes]:
    """Request bodies (JSON ``dataframe_split`` of the feature columns) sampled from ``data``.

    Nulls are sent as JSON null, as a client would; the label column is dropped.
    """
    import pandas as pd

    from pipeline import schema

    if n_requests < 1 or rows_per_request < 1:
        raise ValueError("n_requests and rows_per_request must be >= 1")
    frame = pd.read_csv(data, na_values=["?"]) if data.suffix != ".parquet" else pd.read_parquet(data)
    missing = [c for c in schema.FEATURES if c not in frame.columns]
    if missing:
        raise ValueError(f"{data}: missing feature columns {missing}")
    rows = frame[list(schema.FEATURES)].sample(n=min(len(frame), n_requests * rows_per_request), random_state=seed, replace=len(frame) < n_requests * rows_per_request)
    bodies = []
    # Object dtype so missing values serialise as JSON null, as a client sends them.
    rows = rows.astype(object).where(rows.notna(), None)
    for start in range(0, len(rows), rows_per_request):
        chunk = rows.iloc[start : start + rows_per_request]
        bodies.append(json.dumps({"dataframe_split": {"columns": list(schema.FEATURES), "data": chunk.values.tolist()}}).encode())
    return bodies[:n_requests]


def goes_to_canary(index: int, weight_percent: int) -> bool:
    """Spread ``weight_percent`` of requests evenly: request i goes to the canary when the
    running share crosses an integer (25 % sends every 4th request, not the first quarter)."""
    return math.floor((index + 1) * weight_percent / 100) > math.floor(index * weight_percent / 100)


def _opener() -> urllib.request.OpenerDirector:
    # Proxy-less: a developer's HTTP_PROXY must never carry loopback traffic elsewhere.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str) -> tuple[int, bytes]:
    try:
        with _opener().open(url, timeout=10) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def _post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with _opener().open(request, timeout=60) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 599  # the server did not answer: counts as a 5xx


def scrape(base_url: str) -> Any:
    """One parsed scrape of ``base_url/metrics``."""
    status, body = _get(base_url + "/metrics")
    if status != 200:
        raise RuntimeError(f"{base_url}/metrics answered {status}")
    return parse_metrics(body.decode())


def serving_version(base_url: str) -> str | None:
    """The model version ``/version`` reports, or None when the server does not answer."""
    try:
        status, body = _get(base_url + "/version")
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None
    if status != 200:
        return None
    return str(json.loads(body).get("model_version") or json.loads(body).get("version") or "") or None


@contextmanager
def _server(model_uri: str, tracking_uri: str, log_dir: Path, label: str) -> Iterator[Any]:
    from serving.process import running_server

    with running_server(model_uri, tracking_uri=tracking_uri, log_path=log_dir / f"{label}.log") as server:
        yield server


def _start_together(stack: ExitStack, servers: dict[str, Any]) -> dict[str, Any]:
    """Enter the server context managers concurrently (start-up is mostly model loading,
    which overlaps), registering each exit on ``stack`` so every started one is stopped."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        futures = {name: pool.submit(cm.__enter__) for name, cm in servers.items()}
    started: dict[str, Any] = {}
    errors: list[BaseException] = []
    for name, future in futures.items():
        error = future.exception()
        if error is None:
            started[name] = future.result()
            stack.push(servers[name].__exit__)
        else:
            errors.append(error)
    if errors:
        raise errors[0]
    return started


def run_local_canary(
    *,
    tracking_uri: str,
    model_name: str,
    new_version: str,
    previous_version: str | None,
    requests: Sequence[bytes],
    config: CanaryConfig,
    log_dir: Path,
    windows: int = 3,
    check_alarms: Callable[[], Sequence[str]] | None = None,
    smoke_test: Callable[[str, str], Any] | None = None,
    finish: Callable[[bool], str] | None = None,
) -> LocalCanaryResult:
    """Serve stable and canary side by side, split the replay, judge, promote or roll back.

    ``smoke_test(url, version)`` (optional) runs against the canary after a promote
    verdict, while the stable server still runs; it returns an object with ``passed``
    and a rendering (``str``); a failure rolls back like a failed analysis, with the
    analysis verdict kept as it was so the report says which of the two refused.
    ``finish(promoted)`` moves the registry at the verdict, while both servers still
    run, and says what it did: the release path (``deliver rehearse``) promotes the
    candidate to ``champion`` by compare-and-set there, or closes it; without it (the
    laptop loop's ``deliver deploy --local``, where the run already moved ``champion``)
    a rollback moves ``champion`` back to the stable version.
    """
    if windows < 1 or not requests:
        raise ValueError("need at least one window and one request to replay")
    log_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    with ExitStack() as stack:
        wanted = {"canary": _server(f"models:/{model_name}/{new_version}", tracking_uri, log_dir, f"canary-v{new_version}")}
        if previous_version:
            wanted["stable"] = _server(f"models:/{model_name}/{previous_version}", tracking_uri, log_dir, f"stable-v{previous_version}")
        started = _start_together(stack, wanted)
        canary, stable = started["canary"], started.get("stable")
        if stable is None:
            notes.append("no previous champion: the canary takes all replayed traffic")
        canary_samples: list[BakeSample] = []
        stable_samples: list[BakeSample] = []
        fired: list[str] = []
        per_window = math.ceil(len(requests) / windows)
        for window in range(windows):
            chunk = list(enumerate(requests))[window * per_window : (window + 1) * per_window]
            if not chunk:
                break
            before_c = scrape(canary.url)
            before_s = scrape(stable.url) if stable else None
            for index, body in chunk:
                target = canary if stable is None or goes_to_canary(index, config.weight_percent) else stable
                _post(target.url + "/invocations", body)
            canary_samples.append(sample_between(before_c, scrape(canary.url)))
            if stable and before_s is not None:
                stable_samples.append(sample_between(before_s, scrape(stable.url)))
            if check_alarms:
                fired += [a for a in check_alarms() if a not in fired]
        verdict = analyse_canary(canary_samples, config, fired)
        smoke = smoke_test(canary.url, new_version) if verdict.promote and smoke_test is not None else None
        if verdict.promote and (smoke is None or getattr(smoke, "passed", False)):
            action = finish(True) if finish else f"{model_name}@champion stays on version {new_version}"
            return LocalCanaryResult(verdict, tuple(canary_samples), tuple(stable_samples), False, action, None, smoke, tuple(notes))
        # Both servers stay up until the registry is settled, then the stack stops them.
        action = finish(False) if finish else registry.restore_champion(tracking_uri, model_name, previous_version)
        still = serving_version(stable.url) == str(previous_version) if stable else None
    return LocalCanaryResult(verdict, tuple(canary_samples), tuple(stable_samples), True, action, still, smoke, tuple(notes))
