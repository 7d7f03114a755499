"""Benchmark: the commit pipeline's cold run and its re-run with nothing changed.

Runs ``python -m pipeline run`` as a user would (a fresh interpreter each time, so import
costs count) on a fresh temporary store and the default dataset, and prints both
wall-clock times against issue 2's targets: cold under 60 s including training, re-run
under 3 s. Not a test: timings depend on the machine, so nothing here passes or fails
a build. ``--rows N`` benchmarks synthetic data of N rows instead.

    .venv/bin/python benchmarks/pipeline_e2e.py [--repeat 3] [--rows 200000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
COLD_TARGET_S = 60.0
RERUN_TARGET_S = 3.0


def _timed_run(store: Path, data: Path | None) -> tuple[float, int, str]:
    env = {**os.environ, "MLOPS_HOME": str(store), "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [sys.executable, "-m", "pipeline", "run"] + (["--data", str(data)] if data else [])
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    return time.perf_counter() - started, done.returncode, done.stdout + done.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1, help="cold/re-run pairs to time (default 1)")
    parser.add_argument("--rows", type=int, default=None, help="use N synthetic rows instead of the default dataset")
    args = parser.parse_args()
    cold, rerun = [], []
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp:
        data = None
        if args.rows:
            sys.path.insert(0, str(REPO_ROOT))
            from pipeline.data import write_dataset
            from pipeline.synthetic import generate_synthetic

            data = write_dataset(generate_synthetic(args.rows, seed=0), Path(tmp) / "synthetic.parquet")
        for i in range(args.repeat):
            store = Path(tmp) / f"store-{i}"
            seconds, code, output = _timed_run(store, data)
            if code != 0:
                print(output, file=sys.stderr)
                print(f"cold run failed with exit {code}", file=sys.stderr)
                return 1
            cold.append(seconds)
            seconds, code, output = _timed_run(store, data)
            if code != 0 or "nothing to do" not in output:
                print(output, file=sys.stderr)
                print(f"re-run did not finish from cache (exit {code})", file=sys.stderr)
                return 1
            rerun.append(seconds)
    dataset = f"{args.rows} synthetic rows" if args.rows else "default dataset (48,842 rows)"
    print(f"pipeline end-to-end on {dataset}, {os.cpu_count()} CPUs, {args.repeat} repeat(s)")
    for name, values, target in (("cold run", cold, COLD_TARGET_S), ("re-run  ", rerun, RERUN_TARGET_S)):
        median = statistics.median(values)
        verdict = "within" if median < target else "OVER"
        print(f"  {name}: median {median:6.2f} s  (runs: {', '.join(f'{v:.2f}' for v in values)})"
              f"  target < {target:.0f} s: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
