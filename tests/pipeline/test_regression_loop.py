"""The second shipped dataset, a regression, through the whole loop with the real CLI.

California housing (``data/california_housing.csv.gz``, ``examples/california-housing.yaml``):
the first run trains XGBoost's regressor, gates, registers, serves and smoke-tests it; a
worse model (a team's linear trainer) is refused by the gate; the champion serves numbers
over HTTP and captures them; drifted traffic with its labels makes the monitor alarm; and
a retrain on fresh data goes through the same gate. Every command is the one a user types,
in a fresh store, with only 127.0.0.1 contacted.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.exit_codes import ExitCode
from pipeline.schema import REPO_ROOT
from serving.process import free_port

EXAMPLE = REPO_ROOT / "examples" / "california-housing.yaml"
DATA = REPO_ROOT / "data" / "california_housing.csv.gz"
MODEL = "california-housing"


def _cli(project: Path, *args: str, home: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLOPS_PROJECT", "MLFLOW_TRACKING_URI")}
    env["MLOPS_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "pipeline", "--project", str(project), *args], cwd=home, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _json_outcome(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.stdout.strip(), result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A store after the first run: California housing's champion v1, deployed and smoke-tested."""
    home = tmp_path_factory.mktemp("housing")
    first = _cli(EXAMPLE, "run", "--json", "--data", str(DATA), home=home)
    return {"home": home, "first": first}


def test_the_first_run_promotes_deploys_and_smoke_tests_a_regressor(loop: dict) -> None:
    first = loop["first"]
    assert first.returncode == ExitCode.OK, first.stdout[-2000:] + first.stderr[-3000:]
    outcome = _json_outcome(first)
    assert (outcome["status"], outcome["model_version"], outcome["champion_version"]) == ("promoted", "1", "1")
    assert "passed 5 smoke checks" in outcome["message"]
    report = json.loads(Path(outcome["report_path"]).with_name("gate_report.json").read_text())
    assert report["passed"] and report["champion"] is None
    assert set(report["challenger"]["metrics"]) >= {"rmse", "mae"}


def test_a_worse_model_is_refused_and_the_champion_stays(loop: dict, tmp_path: Path) -> None:
    """A linear baseline (a team's trainer, named in the project file) against XGBoost's champion."""
    document = yaml.safe_load(EXAMPLE.read_text())
    document["training"] = {"entry_point": "training.sklearn_trainers:ridge_regression", "hyperparameters": {"alpha": 1.0}}
    worse = tmp_path / "ridge.yaml"
    worse.write_text(yaml.safe_dump(document, sort_keys=False))
    result = _cli(worse, "run", "--json", "--data", str(DATA), home=loop["home"])
    assert result.returncode == ExitCode.GATE_REFUSED, result.stdout[-2000:] + result.stderr[-3000:]
    outcome = _json_outcome(result)
    assert outcome["status"] == "refused" and outcome["champion_version"] == "1"
    assert any("paired bootstrap" in reason for reason in outcome["reasons"]), outcome["reasons"]


def _post_csv(port: int, frame: pd.DataFrame) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=frame.to_csv(index=False).encode(),
                                     headers={"Content-Type": "text/csv"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())


def test_the_champion_serves_numbers_and_refuses_a_bad_request(loop: dict) -> None:
    home = loop["home"]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("MLOPS_PROJECT", "MLFLOW_TRACKING_URI")}
    env["MLOPS_HOME"] = str(home)
    server = subprocess.Popen([sys.executable, "-m", "pipeline", "--project", str(EXAMPLE), "serve", "--port", str(port)],
                              cwd=home, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as ping:  # noqa: S310
                    if ping.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.5)
        rows = pd.read_csv(DATA).head(50)
        answer = _post_csv(port, rows.drop(columns="median_house_value"))
        assert answer["model_version"] == "1" and answer["probabilities"] is None
        predictions = pd.Series(answer["predictions"], dtype=float)
        assert len(predictions) == 50 and predictions.between(0, 1_000_000).all()
        # A row without a required column is refused by name, not scored.
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=json.dumps({"dataframe_records": [{"longitude": -122.2}]}).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)  # noqa: S310
        assert refused.value.code == 422 and "median_income" in refused.value.read().decode()
        # Drifted live traffic; its labels arrive later, joined on the id the server issued.
        shifted = _synth(home, rows=2000, drift=0.6, seed=1)
        labelled = []
        for start in range(0, len(shifted), 100):
            chunk = shifted.iloc[start:start + 100]
            answer = _post_csv(port, chunk.drop(columns="median_house_value"))
            labelled += [(answer["request_id"], row, float(y)) for row, y in enumerate(chunk["median_house_value"])]
        loop["labels"] = _labels_file(home / "labels.csv", labelled)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert any(p.is_file() for p in (home / "capture").rglob("*")), "the requests were captured"


def _synth(home: Path, *, rows: int, drift: float, seed: int) -> pd.DataFrame:
    out = home / f"synth-{rows}-{drift}-{seed}.csv"
    result = _cli(EXAMPLE, "synth", "--rows", str(rows), "--drift", str(drift), "--seed", str(seed), "--data", str(DATA),
                  "--out", str(out), home=home)
    assert result.returncode == 0, result.stderr[-3000:]
    return pd.read_csv(out)


def test_drifted_traffic_makes_the_monitor_alarm(loop: dict) -> None:
    assert "labels" in loop, "needs the served traffic of the test above"
    result = _cli(EXAMPLE, "monitor", "--json", "--labels", str(loop["labels"]), "--no-mlflow", home=loop["home"])
    assert result.returncode == ExitCode.DRIFT_DETECTED, result.stdout[-3000:] + result.stderr[-3000:]
    report = _json_outcome(result)
    loop["monitor"] = report


def test_a_retrain_on_fresh_data_goes_through_the_same_gate(loop: dict) -> None:
    assert "labels" in loop, "needs the served traffic of the test above"
    home = loop["home"]
    fresh = _synth(home, rows=20000, drift=0.6, seed=2)
    fresh_path = home / "fresh.csv"
    fresh.to_csv(fresh_path, index=False)
    result = _cli(EXAMPLE, "monitor", "--json", "--labels", str(loop["labels"]), "--no-mlflow", "--retrain",
                  "--retrain-data", str(fresh_path), home=home)
    assert result.returncode in (ExitCode.OK, ExitCode.GATE_REFUSED, ExitCode.DRIFT_DETECTED), \
        result.stdout[-3000:] + result.stderr[-3000:]
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    versions = {str(v.version): v for v in client.search_model_versions(f"name='{MODEL}'")}
    assert set(versions) == {"1", "2", "3"}, "v3 is the retrain (v2 the refused linear model)"
    retrained = versions["3"]
    decision = retrained.tags.get("gate_passed")
    champion = client.get_model_version_by_alias(MODEL, "champion").version
    outcome = _json_outcome(result)
    loop["retrain"] = (result.returncode, decision, champion, outcome)
    # Whatever the gate decided, the registry says the same: promoted means champion v3.
    assert (decision == "true") == (str(champion) == "3"), (decision, champion)


def _labels_file(path: Path, rows: list[tuple[str, int, float]]) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["request_id", "row", "label"])
        writer.writerows(rows)
    return path
