"""Benchmark: what the gate's pictures add to a cold ``python -m pipeline run``.

Draws every picture of ``pipeline.plots.gate_plots`` on a holdout the size of the default
dataset's (the frozen 20 %), in a fresh interpreter so that importing matplotlib counts,
and prints the seconds per picture against the named baseline: the three pictures the
gate drew before the precision-recall, calibration and bootstrap ones were added (ROC
curve, confusion matrix, slice bars). Scores are synthetic: drawing cost depends on the
row count, not on the model. scikit-learn and XGBoost are imported before timing, as
the run's train step has imported them by then. Not a test; nothing here passes or
fails a build.

    .venv/bin/python benchmarks/plots.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BASELINE = ("roc_curve.png", "confusion_matrix.png", "slice_metrics.png")

_CHILD = r"""
import json, sys, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd
from pipeline.schema import DEFAULT_DATASET
from pipeline import schema
from pipeline.steps.gate import GateThresholds, judge

frame = pd.read_csv(DEFAULT_DATASET)
holdout = frame.sample(frac=0.2, random_state=0).reset_index(drop=True)
y = holdout[schema.LABEL].to_numpy()
rng = np.random.default_rng(0)
challenger = np.clip(0.6 * y + rng.normal(0.2, 0.2, len(y)), 0, 1)
champion = np.clip(0.55 * y + rng.normal(0.22, 0.2, len(y)), 0, 1)
report = judge(holdout, challenger, champion, GateThresholds())
# What a cold run has imported before the gate step (its train step fitted the model).
import sklearn.compose, sklearn.pipeline, sklearn.preprocessing, xgboost  # noqa: E401,F401
times = {}
started = time.perf_counter()
from pipeline import plots
from matplotlib.figure import Figure  # noqa: F401 - the import is what is timed
times["import matplotlib"] = time.perf_counter() - started
folder = Path(tempfile.mkdtemp())
draw = {
    "roc_curve.png": lambda p: plots.roc_curve_png(y, challenger, champion, p),
    "precision_recall.png": lambda p: plots.precision_recall_png(y, challenger, champion, p),
    "calibration.png": lambda p: plots.calibration_png(y, challenger, champion, p),
    "confusion_matrix.png": lambda p: plots.confusion_matrix_png(y, challenger, p),
    "slice_metrics.png": lambda p: plots.slice_metrics_png(report.slices, p, 0.03),
    "bootstrap_auc_difference.png": lambda p: plots.bootstrap_png(report.bootstrap, report.bootstrap_differences, p),
}
for name, function in draw.items():
    started = time.perf_counter()
    function(folder / name)
    times[name] = time.perf_counter() - started
print(json.dumps({"rows": len(y), "times": times}))
"""


def main() -> int:
    import json

    done = subprocess.run([sys.executable, "-c", _CHILD], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return 1
    result = json.loads(done.stdout.strip().splitlines()[-1])
    times = result["times"]
    print(f"holdout rows: {result['rows']}")
    for name, seconds in times.items():
        print(f"  {name:<32} {seconds:6.3f} s")
    drawing = {k: v for k, v in times.items() if k.endswith(".png")}
    baseline = sum(drawing[name] for name in BASELINE) + times["import matplotlib"]
    now = sum(drawing.values()) + times["import matplotlib"]
    print(f"baseline (import + {', '.join(BASELINE)}): {baseline:.2f} s")
    print(f"now (import + all {len(drawing)} pictures):        {now:.2f} s")
    print(f"added to a cold run by the new pictures:   {now - baseline:+.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
