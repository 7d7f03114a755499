"""Benchmark: what the regression gate costs against the binary gate on as many rows.

Judges a synthetic regression holdout the size of the default dataset's frozen holdout
(20 % of Adult, about 9,800 rows) with the default ``RegressionThresholds`` (1,000 paired
resamples), once for RMSE and once for MAE, and prints the median seconds of five
interleaved rounds against the named baseline: the binary gate's ``judge`` with the
default ``GateThresholds`` (1,000-resample AUC bootstrap) on the real Adult holdout of the
same size. Predictions are synthetic: the gate's cost depends on the row count and the
resamples, not on the model. Not a test; nothing here passes or fails a build.

    .venv/bin/python benchmarks/regression_gate.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
ROUNDS = 5


def main() -> None:
    import numpy as np
    import pandas as pd

    from pipeline import schema
    from pipeline.steps.gate import judge
    from tests.pipeline.regression_case import noisy, regression_frame, write_project

    adult = pd.read_csv(schema.DEFAULT_DATASET).sample(frac=0.2, random_state=0).reset_index(drop=True)
    rows = len(adult)
    schema.activate(schema.SHIPPED_PROJECT)
    y = schema.target(adult)
    rng = np.random.default_rng(0)
    proba = (np.clip(0.6 * y + rng.normal(0.2, 0.2, rows), 0, 1), np.clip(0.55 * y + rng.normal(0.22, 0.2, rows), 0, 1))
    frame = regression_frame(rows)
    predicted = (noisy(frame, 0.9, seed=1), noisy(frame, 1.0, seed=2))
    folder = Path(tempfile.mkdtemp())
    projects = {}
    for metric in ("rmse", "mae"):
        (folder / metric).mkdir()
        projects[metric] = write_project(folder / metric, frame, metric=metric, bootstrap_samples=1000)

    cases = {
        "binary (baseline)": (schema.SHIPPED_PROJECT, adult, proba),
        "regression rmse": (projects["rmse"], frame, predicted),
        "regression mae": (projects["mae"], frame, predicted),
    }
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(ROUNDS):
        for name, (project, holdout, (challenger, champion)) in cases.items():
            schema.activate(project)
            start = time.perf_counter()
            judge(holdout, challenger, champion, schema.THRESHOLDS, champion_version="1")
            seconds[name].append(time.perf_counter() - start)
    baseline = statistics.median(seconds["binary (baseline)"])
    print(f"judge() on {rows:,} holdout rows, 1,000 paired resamples, median of {ROUNDS} interleaved rounds")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"  {name:<18} {median:6.3f} s  ({median / baseline:4.2f} x baseline)")


if __name__ == "__main__":
    main()
