"""Benchmark: numeric drift (PSI + two-sample KS) over 1,000,000 live rows x 20 features
against a 100,000-row baseline, the monitor's way and column by column with scipy.

Targets (issue 6): under 2 s and under 1 GB peak memory on the 2-core CI machine. Prints:
- time of ``pipeline.monitoring.stats.numeric_drift`` (median of ``--repeat`` runs);
- peak memory two ways: the process's peak resident set size (``resource.getrusage``
  ``ru_maxrss``, so it includes the input arrays, Python and the imported libraries; it
  is taken before the scipy baseline runs) and the peak of the computation's own
  allocations traced by ``tracemalloc`` (numpy reports its buffers to it);
- the same computation with ``scipy.stats.ks_2samp`` plus ``np.histogram`` PSI, column by
  column, its time and the speed-up ratio, and the largest difference between the two
  results (the KS statistics and p-values are expected to be identical).

With ``--capture-gb N`` it measures the whole monitor read instead (issue 13): it writes
N GB of capture JSON Lines (real Adult rows, 25-row requests plus a few 2,000-row
batches, a malformed line now and then) once into ``--capture-dir``, then runs
``read_capture`` and ``analyse`` in a fresh interpreter and prints that process's peak
RSS and time against the 1 GiB target. Named baseline: before the window was streamed,
126 MB of capture needed 2.07 GB (about 16 times its size), so 1 GB would have needed
about 16 GB.

Run: ``.venv/bin/python benchmarks/drift.py`` (``--help`` for sizes). Exits 1 when
``--check`` is given and a target is missed.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.monitoring.stats import PSI_EPSILON, decile_edges, numeric_drift  # noqa: E402

TIME_TARGET_S = 2.0
MEMORY_TARGET_BYTES = 1 << 30


def make_data(rows: int, baseline_rows: int, features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Column-major float32 samples: mixed shapes (normal, lognormal, integer-valued with
    ties, point mass at zero), and every other live column shifted, like a real window."""
    rng = np.random.default_rng(seed)
    baseline = np.empty((features, baseline_rows), dtype=np.float32)
    live = np.empty((features, rows), dtype=np.float32)
    for j in range(features):
        shift = 0.3 if j % 2 else 0.0
        kind = j % 4
        for target, n, moved in ((baseline, baseline_rows, 0.0), (live, rows, shift)):
            if kind == 0:
                target[j] = rng.normal(moved, 1.0, n)
            elif kind == 1:
                target[j] = rng.lognormal(moved, 0.8, n)
            elif kind == 2:
                target[j] = rng.integers(17, 91, n) + np.round(moved * 10)
            else:
                target[j] = np.where(rng.random(n) < 0.9 - moved, 0.0, rng.integers(1, 100_000, n))
    return baseline, live


def scipy_column_by_column(baseline: np.ndarray, live: np.ndarray, bins: int) -> list[tuple[float, float, float]]:
    """The reference: ``ks_2samp`` and ``np.histogram`` PSI, one column at a time."""
    results = []
    for b, x in zip(baseline, live, strict=True):
        test = stats.ks_2samp(b, x)
        # np.histogram bins are left-closed; one ulp up makes them the monitor's (e, e'].
        cuts = np.concatenate(([-np.inf], np.nextafter(decile_edges(np.sort(b), bins), np.inf), [np.inf]))
        e = np.clip(np.histogram(b, cuts)[0] / b.size, PSI_EPSILON, None)
        a = np.clip(np.histogram(x, cuts)[0] / x.size, PSI_EPSILON, None)
        results.append((float(np.sum((a - e) * np.log(a / e))), float(test.statistic), float(test.pvalue)))
    return results


OLD_READER_BYTES_PER_CAPTURE_BYTE = 2.07e9 / 126e6
"""The named baseline: peak memory per byte of capture of the reader before streaming."""


def write_capture(folder: Path, gigabytes: float, seed: int) -> tuple[int, int]:
    """Write about ``gigabytes`` GB of capture files into ``folder`` (once: an existing
    complete set is reused); returns (bytes, lines)."""
    import json

    import pandas as pd

    from pipeline.schema import DEFAULT_DATASET
    from pipeline import schema

    marker = folder / f"complete-{gigabytes:g}GB-{seed}.json"
    if marker.exists():
        done = json.loads(marker.read_text())
        return done["bytes"], done["lines"]
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("capture-*.jsonl"):
        old.unlink()
    rng = np.random.default_rng(seed)
    frame = pd.read_csv(DEFAULT_DATASET).loc[:, list(schema.FEATURES)]
    rows = [[None if isinstance(v, float) and v != v else v for v in r] for r in frame.itertuples(index=False)]

    def record(size: int) -> str:
        picks = rng.integers(0, len(rows), size)
        probabilities = np.round(rng.random(size), 4).tolist()
        return json.dumps({
            "request_id": "@ID@", "client_request_id": "client", "timestamp": "2026-12-01T00:00:00Z",
            "model_name": "adult-income", "model_version": "1", "columns": list(schema.FEATURES),
            "rows": [rows[i] for i in picks], "predictions": [int(p >= 0.5) for p in probabilities],
            "probabilities": probabilities,
        })

    templates = [record(25) for _ in range(400)] + [record(2_000) for _ in range(4)]
    target, written, lines, file_index = int(gigabytes * 1e9), 0, 0, 0
    while written < target:
        file_index += 1
        with (folder / f"capture-{file_index:05d}.jsonl").open("w") as handle:
            for _ in range(20_000):
                pick = int(rng.integers(0, len(templates) + 40))
                text = "{not json" if pick >= len(templates) + 39 else templates[pick % len(templates)].replace(
                    "@ID@", f"srv-{lines:09d}", 1)
                handle.write(text + "\n")
                written += len(text) + 1
                lines += 1
                if written >= target:
                    break
    marker.write_text(json.dumps({"bytes": written, "lines": lines}))
    return written, lines


def monitor_child(folder: str) -> None:
    """In a fresh interpreter: read the capture and judge it; print rows and seconds."""
    import pandas as pd

    from pipeline.monitoring.analysis import analyse
    from pipeline.monitoring.baseline import ServingBaseline, normalise_baseline
    from pipeline.monitoring.capture import read_capture
    from pipeline.monitoring.thresholds import Thresholds
    from pipeline.schema import DEFAULT_DATASET

    frame = pd.read_csv(DEFAULT_DATASET).head(20_000)
    frame["prediction"] = np.random.default_rng(1).random(len(frame))
    baseline = ServingBaseline("adult-income", "1", "champion", "run", "file:///baseline.parquet",
                               normalise_baseline(frame, "benchmark"))
    started = time.perf_counter()
    window = read_capture(folder, model_name="adult-income", model_version="1")
    result = analyse(baseline, window, None, Thresholds())
    print(f"{window.rows} {window.rows_read} {window.malformed_lines} {time.perf_counter() - started:.2f} {result.verdict.value}")


def capture_benchmark(args: argparse.Namespace) -> int:
    """The monitor over ``--capture-gb`` of capture: peak RSS and time; see the module doc."""
    import subprocess
    import tempfile

    folder = Path(args.capture_dir or Path(tempfile.gettempdir()) / "mlops-drift-capture")
    started = time.perf_counter()
    size, lines = write_capture(folder, args.capture_gb, args.seed)
    print(f"capture: {size / 1e9:.2f} GB, {lines:,} lines in {folder} (written or reused in {time.perf_counter() - started:.0f} s)")
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r}); "
            f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
            f"import drift; drift.monitor_child({str(folder)!r})")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stderr[-3000:])
        return 1
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    kept, read, malformed, seconds, verdict = done.stdout.split()
    ok = peak < MEMORY_TARGET_BYTES
    print(f"monitor: {int(read):,} rows read, {int(kept):,} kept (reservoir), {int(malformed):,} malformed lines; "
          f"read + analyse {float(seconds):.1f} s ({wall:.1f} s with interpreter start), verdict {verdict}")
    print(f"peak RSS {peak / 2**20:.0f} MiB -> {'within' if ok else 'MISSES'} the 1 GiB target; "
          f"the reader before streaming would have needed ~{size * OLD_READER_BYTES_PER_CAPTURE_BYTE / 2**30:.1f} GiB "
          f"(16x capture, issue 13's figure)")
    return 1 if args.check and not ok else 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures; see the module doc."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="threads (default: CPU count)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--capture-gb", type=float, default=None,
                        help="instead: the monitor over this many GB of capture files (peak RSS, time)")
    parser.add_argument("--capture-dir", type=Path, default=None,
                        help="where the capture files are written once and reused (default: a temp folder)")
    args = parser.parse_args(argv)
    if args.capture_gb is not None:
        return capture_benchmark(args)

    baseline, live = make_data(args.rows, args.baseline_rows, args.features, args.seed)
    print(f"data: {args.rows:,} live rows x {args.features} features (float32) against {args.baseline_rows:,} baseline rows; "
          f"{os.cpu_count()} CPU(s), workers={args.workers or os.cpu_count()}")

    timings = []
    ours = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        ours = numeric_drift(list(baseline), list(live), bins=args.bins, workers=args.workers)
        timings.append(time.perf_counter() - start)
    elapsed = statistics.median(timings)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB

    tracemalloc.start()
    numeric_drift(list(baseline), list(live), bins=args.bins, workers=args.workers)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    start = time.perf_counter()
    reference = scipy_column_by_column(baseline, live, args.bins)
    reference_elapsed = time.perf_counter() - start

    diffs = np.array([[abs(o.psi - r[0]), abs(o.ks_statistic - r[1]), abs(o.p_value - r[2])]
                      for o, r in zip(ours, reference, strict=True) if o is not None])
    drifted = sum(1 for o in ours if o is not None and o.psi > 0.2)
    time_ok = elapsed < TIME_TARGET_S
    memory_ok = peak_rss < MEMORY_TARGET_BYTES
    print(f"monitor (sort + searchsorted, threads): {elapsed:.3f} s median of {args.repeat} "
          f"(runs: {', '.join(f'{t:.3f}' for t in timings)}) -> {'within' if time_ok else 'MISSES'} the {TIME_TARGET_S:.0f} s target")
    print(f"peak memory: process peak RSS {peak_rss / 2**20:.0f} MiB (ru_maxrss, includes the "
          f"{(baseline.nbytes + live.nbytes) / 2**20:.0f} MiB of input) -> {'within' if memory_ok else 'MISSES'} the 1 GiB target; "
          f"computation's own peak {traced_peak / 2**20:.0f} MiB (tracemalloc)")
    print(f"scipy column by column (ks_2samp + np.histogram PSI): {reference_elapsed:.3f} s -> ratio {reference_elapsed / elapsed:.1f}x")
    print(f"agreement: max |diff| PSI {diffs[:, 0].max():.2e}, KS statistic {diffs[:, 1].max():.2e}, "
          f"p-value {diffs[:, 2].max():.2e}; {drifted} of {args.features} columns over PSI 0.2")
    return 1 if args.check and not (time_ok and memory_ok) else 0


if __name__ == "__main__":
    sys.exit(main())
