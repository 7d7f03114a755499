"""Benchmark: the commit pipeline's cold run, its re-run with nothing changed, and how
fast the server it deploys is ready, step by step, against a named baseline.

Runs ``python -m pipeline run`` as a user would (a fresh interpreter each time, so import
costs count) on a fresh temporary store and the default dataset, and prints the wall-clock
time of the cold run, of each of its steps (from the run's own progress lines), of the
re-run, and of the server ready time: ``python -m serving`` started on the new champion,
until its first 200 on ``/ping``. Targets (issue 15, on a 2-core machine): cold run under
15 s, re-run under 1 s, server ready under 3 s.

With ``--baseline-ref REF`` the same measurements run, interleaved, on the code as it was
at that git commit (extracted with ``git archive``): the named baseline every figure is
compared with, in the same run and on the same machine load. ``--ref REF`` measures a
commit instead of the working tree (which must not change while the benchmark runs: its
re-run would miss the cache). Not a test: timings depend
on the machine, so nothing here passes or fails a build. ``--rows N`` benchmarks
synthetic data of N rows instead.

Bytecode: an installed environment has its modules compiled once (Python writes
``__pycache__`` on first import). Where ``PYTHONDONTWRITEBYTECODE`` is set, the runs get
a private ``PYTHONPYCACHEPREFIX`` instead and one untimed warm-up run per tree fills it,
so every tree is timed as a user's installed environment runs it; ``--no-warmup`` skips
that. Only 127.0.0.1 is ever contacted.

    .venv/bin/python benchmarks/pipeline_e2e.py [--repeat 3] [--rows 200000] [--baseline-ref d2184d5]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
COLD_TARGET_S = 15.0
RERUN_TARGET_S = 1.0
READY_TARGET_S = 3.0
STEP_LINE = re.compile(r"^\[\d+/\d+\] (?P<step>[\w-]+): .*\((?P<seconds>[\d.]+)s\)\s*$")
"""A runner progress line: ``[9/10] register: done (3.2s)``."""


@dataclass
class Tree:
    """One version of the code and every figure measured on it."""

    label: str
    root: Path
    cold: list[float] = field(default_factory=list)
    rerun: list[float] = field(default_factory=list)
    ready: list[float] = field(default_factory=list)
    steps: dict[str, list[float]] = field(default_factory=dict)


def _environment(store: Path, pycache: Path | None) -> dict[str, str]:
    env = {**os.environ, "MLOPS_HOME": str(store), "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def _timed_run(tree: Tree, store: Path, data: Path | None, pycache: Path | None) -> tuple[float, int, str]:
    command = [sys.executable, "-m", "pipeline", "run"] + (["--data", str(data)] if data else [])
    started = time.perf_counter()
    done = subprocess.run(command, cwd=tree.root, env=_environment(store, pycache), capture_output=True, text=True)
    return time.perf_counter() - started, done.returncode, done.stdout + done.stderr


def step_seconds(output: str) -> dict[str, float]:
    """Each step's seconds, read from the run's progress lines."""
    found = {}
    for line in output.splitlines():
        match = STEP_LINE.match(line.strip())
        if match:
            found[match["step"]] = float(match["seconds"])
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready_seconds(tree: Tree, store: Path, pycache: Path | None, timeout_s: float = 120.0) -> float:
    """Seconds from starting ``python -m serving`` on the store's champion to its first 200 on /ping."""
    port = _free_port()
    command = [sys.executable, "-m", "serving", "--model-uri", "models:/adult-income@champion",
               "--tracking-uri", f"sqlite:///{store / 'mlflow.db'}", "--host", "127.0.0.1", "--port", str(port)]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    log = store / "bench-serve.log"
    with log.open("wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=tree.root, env=_environment(store, pycache), stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        while time.perf_counter() - started < timeout_s:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}; see {log}")
            try:
                with opener.open(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.02)
        raise RuntimeError(f"server not ready after {timeout_s:g} s; see {log}")
    finally:
        process.terminate()
        process.wait(30)


def _extract(ref: str, into: Path) -> Path:
    """The tree at git ``ref``, extracted with ``git archive`` into ``into``."""
    archive = into.with_suffix(".tar")
    subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), ref], cwd=REPO_ROOT, check=True)
    into.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def _measure(tree: Tree, store: Path, data: Path | None, pycache: Path | None) -> str | None:
    """One cold run, its re-run and the server ready time on ``tree``; an error message or None."""
    seconds, code, output = _timed_run(tree, store, data, pycache)
    if code != 0:
        return f"{tree.label}: cold run failed with exit {code}\n{output}"
    tree.cold.append(seconds)
    for step, value in step_seconds(output).items():
        tree.steps.setdefault(step, []).append(value)
    seconds, code, output = _timed_run(tree, store, data, pycache)
    if code != 0 or "nothing to do" not in output:
        return f"{tree.label}: re-run did not finish from cache (exit {code})\n{output}"
    tree.rerun.append(seconds)
    tree.ready.append(_ready_seconds(tree, store, pycache))
    return None


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f}" if values else "      -"


def report(trees: list[Tree]) -> list[str]:
    """The table: one row per figure, one column per tree, the target and the verdict."""
    ours = trees[0]
    header = f"  {'':<22}" + "".join(f"{t.label:>12}" for t in trees) + "    target"
    lines = [header]
    rows = [("cold run", "cold", COLD_TARGET_S), *[(f"  {s}", s, None) for s in ours.steps],
            ("re-run", "rerun", RERUN_TARGET_S), ("server ready", "ready", READY_TARGET_S)]
    for title, key, target in rows:
        cells = []
        for tree in trees:
            values = getattr(tree, key) if key in ("cold", "rerun", "ready") else tree.steps.get(key, [])
            cells.append(f"{_median(values):>12}")
        verdict = ""
        if target is not None and getattr(ours, key):
            verdict = f"< {target:g} s: {'within' if statistics.median(getattr(ours, key)) < target else 'OVER'}"
        lines.append(f"  {title:<22}" + "".join(cells) + f"    {verdict}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1, help="cold/re-run/serve rounds per tree (default 1)")
    parser.add_argument("--rows", type=int, default=None, help="use N synthetic rows instead of the default dataset")
    parser.add_argument("--baseline-ref", default=None, help="also measure the code at this git commit (the baseline)")
    parser.add_argument("--ref", default=None, help="measure this git commit instead of the working tree")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false",
                        help="skip the untimed warm-up run that fills the bytecode cache")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp:
        root = Path(tmp)
        trees = [Tree(args.ref[:10], _extract(args.ref, root / "ours")) if args.ref else Tree("this tree", REPO_ROOT)]
        if args.baseline_ref:
            trees.append(Tree(args.baseline_ref[:10], _extract(args.baseline_ref, root / "baseline")))
        pycache = root / "pycache" if os.environ.get("PYTHONDONTWRITEBYTECODE") else None
        data = None
        if args.rows:
            sys.path.insert(0, str(REPO_ROOT))
            from pipeline.data import write_dataset
            from pipeline.synthetic import generate_synthetic

            data = write_dataset(generate_synthetic(args.rows, seed=0), root / "synthetic.parquet")
        if args.warmup and pycache is not None:
            for index, tree in enumerate(trees):
                _timed_run(tree, root / f"warmup-{index}", data, pycache)
        for round_ in range(args.repeat):
            # Interleaved, so that a change in the machine's load hits every tree alike.
            for index, tree in enumerate(trees):
                problem = _measure(tree, root / f"store-{index}-{round_}", data, pycache)
                if problem:
                    print(problem, file=sys.stderr)
                    return 1
    dataset = f"{args.rows} synthetic rows" if args.rows else "default dataset (48,842 rows)"
    print(f"pipeline end-to-end on {dataset}, {os.cpu_count()} CPUs, {args.repeat} round(s), "
          f"median seconds{', baseline ' + args.baseline_ref if args.baseline_ref else ''}"
          f"{'; bytecode cached (private PYTHONPYCACHEPREFIX)' if pycache else ''}")
    # Other work on the machine slows every tree alike (the runs interleave) but moves the
    # absolute figures: the 1-minute load average at start and end says how busy it was.
    print(f"machine load (1-minute average) {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end")
    print("\n".join(report(trees)))
    if len(trees) > 1:
        base, ours = trees[1], trees[0]
        print(f"  cold run: {statistics.median(base.cold) / statistics.median(ours.cold):.2f}x the baseline's speed; "
              f"server ready: {statistics.median(base.ready) / statistics.median(ours.ready):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
