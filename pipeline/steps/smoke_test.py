"""Smoke test of a running model server: health, a known prediction, the version.

After a deploy, three questions decide whether the new champion may stay: does the
server answer ``/ping``; does a known input get the prediction the same model version
gives offline (computed in this process from the registry, so a serialisation, schema
or encoding fault in the serving path shows up as a mismatch); and does ``/version``
name the version that was meant to be deployed (so an alias that resolved elsewhere is
caught). Each check is reported on its own; routes per docs/contracts.md ("Serving").
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from serving.process import loopback_opener


@dataclass(frozen=True)
class SmokeCheck:
    """One check: its name, whether it passed, and what was seen."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class KnownPrediction:
    """A request body and what the model version answers to it offline."""

    body: dict[str, Any]
    predictions: list[Any]
    probabilities: list[float] | None
    """The positive class's probability per row (binary); None for a regressor, whose
    predictions are the numbers compared."""


@dataclass(frozen=True)
class SmokeReport:
    """All checks of one smoke test run against ``url``."""

    url: str
    checks: tuple[SmokeCheck, ...]

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)


def _json_ready(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def known_prediction(tracking_uri: str, model_name: str, version: str) -> KnownPrediction:
    """Load ``models:/NAME/VERSION`` here and score its logged input example offline.

    Raises ``ValueError`` when the version has no input example (the contract requires
    one) and lets MLflow's own error through when the model cannot be loaded."""
    import mlflow.artifacts
    import mlflow.sklearn
    from mlflow.models import Model
    from mlflow.tracking import MlflowClient

    uri = f"models:/{model_name}/{version}"
    # Asked of this registry explicitly: a models:/ download would use the process-global
    # registry URI, which the caller may not have set.
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    source = client.get_model_version_download_uri(model_name, str(version))
    local = mlflow.artifacts.download_artifacts(artifact_uri=source, tracking_uri=tracking_uri)
    example = Model.load(local).load_input_example(local)
    if example is None:
        raise ValueError(f"{uri} has no input example; the smoke test needs one to compare against")
    model = mlflow.sklearn.load_model(local)
    records = [{k: _json_ready(v) for k, v in row.items()} for row in example.astype(object).to_dict(orient="records")]  # type: ignore[attr-defined]  # a DataFrame for an sklearn flavour; MLflow types it as any example
    if not callable(getattr(model, "predict_proba", None)):
        return KnownPrediction(body={"dataframe_records": records},
                               predictions=[float(v) for v in model.predict(example)], probabilities=None)
    proba = model.predict_proba(example)
    return KnownPrediction(
        body={"dataframe_records": records},
        predictions=[_json_ready(v) for v in model.classes_[proba.argmax(axis=1)]],
        probabilities=[float(p) for p in proba[:, 1]],
    )


def _get(url: str, timeout_s: float) -> tuple[int, bytes]:
    try:
        with loopback_opener().open(url, timeout=timeout_s) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def _post_json(url: str, body: dict[str, Any], timeout_s: float) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with loopback_opener().open(request, timeout=timeout_s) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def _compare(got: dict[str, Any], expected: KnownPrediction, tolerance: float) -> SmokeCheck:
    """The served answer against the offline one: labels equal and probabilities within
    ``tolerance`` (binary), or each number within ``tolerance`` relative to its size (regression)."""
    if expected.probabilities is None:
        pairs = list(zip(got["predictions"], expected.predictions, strict=True))
        worst = max((abs(a - b) / max(1.0, abs(b)) for a, b in pairs), default=0.0)
        return SmokeCheck("known_prediction", worst <= tolerance,
                          f"{len(pairs)} rows; largest relative prediction difference {worst:.2e} (tolerance {tolerance:g})")
    worst = max((abs(a - b) for a, b in zip(got["probabilities"], expected.probabilities, strict=True)), default=0.0)
    labels_equal = got["predictions"] == expected.predictions
    return SmokeCheck(
        "known_prediction", labels_equal and worst <= tolerance,
        f"{len(expected.probabilities)} rows; largest probability difference {worst:.2e} "
        f"(tolerance {tolerance:g}); labels {'equal' if labels_equal else 'differ'}",
    )


def run_smoke_test(
    url: str,
    expected: KnownPrediction,
    model_name: str,
    version: str,
    *,
    tolerance: float = 1e-6,
    timeout_s: float = 10.0,
) -> SmokeReport:
    """Run the three checks against the server at ``url``; never raises for a failed
    check (a transport error is a failed check with the error as detail)."""
    checks: list[SmokeCheck] = []
    try:
        status, _ = _get(f"{url}/ping", timeout_s)
        checks.append(SmokeCheck("health", status == 200, f"GET /ping answered {status}"))
    except OSError as exc:
        checks.append(SmokeCheck("health", False, f"GET /ping failed: {exc}"))
    try:
        status, raw = _post_json(f"{url}/invocations", expected.body, timeout_s)
        if status != 200:
            checks.append(SmokeCheck("known_prediction", False, f"POST /invocations answered {status}: {raw[:300]!r}"))
        else:
            checks.append(_compare(json.loads(raw), expected, tolerance))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        checks.append(SmokeCheck("known_prediction", False, f"POST /invocations failed: {type(exc).__name__}: {exc}"))
    try:
        status, raw = _get(f"{url}/version", timeout_s)
        body = json.loads(raw) if status == 200 else {}
        served = (body.get("model_name"), body.get("model_version"))
        checks.append(
            SmokeCheck(
                "version",
                served == (model_name, str(version)),
                f"server reports {served[0]} version {served[1]}; expected {model_name} version {version}",
            )
        )
    except (OSError, ValueError) as exc:
        checks.append(SmokeCheck("version", False, f"GET /version failed: {exc}"))
    return SmokeReport(url, tuple(checks))
