"""Two pipeline runs on one store at once leave a consistent registry: exactly one
champion, and every version carries its complete lineage.

The runs are separate processes racing for the same store; only the file lock orders
them. They start from a fork server that imported the heavy libraries once (forking the
test process itself could copy a lock held by one of its threads and hang).
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from pipeline.local_store import LocalStore
from pipeline.steps.register import LINEAGE_TAGS

pytestmark = pytest.mark.slow


def _run_one(data: str, store: str, seed: int, queue) -> None:  # runs in the child process
    from pipeline.runner import RunConfig, run_pipeline
    from pipeline.steps.gate import GateThresholds
    from training.model import Hyperparameters

    result = run_pipeline(
        RunConfig(
            data=Path(data),
            store=LocalStore(Path(store)),
            hyperparameters=Hyperparameters(n_estimators=40, seed=seed, device="cpu"),
            gate=GateThresholds(min_roc_auc=0.8, max_equal_opportunity_difference=0.3),
        ),
        progress=lambda line: None,
    )
    queue.put((seed, int(result.exit_code), result.champion_version, result.message))


def test_two_concurrent_runs_leave_one_champion(adult_sample: pd.DataFrame, tmp_path: Path) -> None:
    data = tmp_path / "sample.csv"
    adult_sample.head(8000).to_csv(data, index=False)
    store = LocalStore(tmp_path / "store")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pandas", "pandera.pandas", "sklearn", "xgboost", "mlflow", "pipeline.runner"])
    queue = context.Queue()
    # Different seeds: two distinct candidates that both reach the gate and register.
    processes = [context.Process(target=_run_one, args=(str(data), str(store.root), seed, queue)) for seed in (1, 2)]
    for process in processes:
        process.start()
    try:
        results = [queue.get(timeout=300) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
    assert [p.exitcode for p in processes] == [0, 0]
    codes = sorted(code for _, code, _, _ in results)
    assert codes in ([0, 0], [0, 3]), results
    client = MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
    versions = client.search_model_versions("name = 'adult-income'")
    assert len(versions) == 2, results
    for version in versions:
        missing = set(LINEAGE_TAGS) - set(version.tags)
        assert not missing, f"v{version.version} lacks {missing}"
    aliases = client.get_registered_model("adult-income").aliases
    assert set(aliases) == {"champion", "challenger"}
    champion = client.get_model_version("adult-income", aliases["champion"])
    assert champion.tags["gate_passed"] == "true"
    # Serialised behind the lock, the later run gated against the earlier one's champion.
    later = max(versions, key=lambda v: int(v.version))
    report = Path(later.tags["gate_report"].removeprefix("file://")).read_text()
    assert '"champion": {' in report and '"version": "1"' in report
