"""Benchmark: our server against ``mlflow models serve --env-manager local``, same model,
same machine, same client, one run.

For single-row and 100-row ``dataframe_split`` requests it measures, per server:
requests per second with ``--concurrency`` keep-alive clients (closed loop, each client
its own process so the client's GIL is not the bottleneck), p50/p99 latency at that
concurrency and with one client (the latency a lone caller sees), and the peak RSS of
the server's whole process tree from start to stop. Servers run one at a time so they
never share the CPU. It prints both servers' figures and the ratios against the issue's
targets: >= 3x MLflow's single-row throughput, single-row p99 < 5 ms, lower peak memory.

    .venv/bin/python benchmarks/serving.py                 # local store's champion, else a fixture model
    .venv/bin/python benchmarks/serving.py --duration 10 --concurrency 4

Only 127.0.0.1 is ever contacted. Numbers depend on the machine and its load: compare
the two servers within one run, not across runs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.local_store import LocalStore  # noqa: E402
from pipeline.schema import FEATURES  # noqa: E402
from serving.process import free_port, running_server  # noqa: E402


@dataclass(frozen=True)
class Phase:
    """One load phase's result."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def _worker(port: int, body: bytes, duration: float, start_at: float, out: Any) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    while time.time() < start_at:
        time.sleep(0.001)
    deadline = time.perf_counter() + duration
    while True:
        begun = time.perf_counter()
        if begun >= deadline:
            break
        try:
            connection.request("POST", "/invocations", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                errors += 1
        except (OSError, http.client.HTTPException):
            errors += 1
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies.append(time.perf_counter() - begun)
    connection.close()
    out.put((latencies, errors))


def load(port: int, body: bytes, clients: int, duration: float) -> Phase:
    """Closed-loop load from ``clients`` processes for ``duration`` seconds."""
    context = mp.get_context("fork")
    out = context.Queue()
    start_at = time.time() + 0.5
    workers = [context.Process(target=_worker, args=(port, body, duration, start_at, out)) for _ in range(clients)]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=duration + 60) for _ in workers]
    for worker in workers:
        worker.join(10)
    latencies = sorted(x for lat, _ in results for x in lat)
    errors = sum(e for _, e in results)
    if not latencies:
        return Phase(0.0, float("nan"), float("nan"), 0, errors)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return Phase(len(latencies) / duration, statistics.median(latencies) * 1e3, p99 * 1e3, len(latencies), errors)


class PeakRss:
    """Samples the RSS of a process and all its descendants every 50 ms."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._root = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                tree = [self._root, *self._root.children(recursive=True)]
                total = 0
                for proc in tree:
                    try:
                        total += proc.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
            except psutil.Error:
                pass
            time.sleep(0.05)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(2)
        return self.peak


def _bodies() -> dict[str, bytes]:
    """The two request bodies: 1 and 100 rows of the dataset, as dataframe_split."""
    from tests.serving.model_factory import load_sample

    frame = load_sample(100, seed=42)[list(FEATURES)].astype(object)
    rows = [[None if isinstance(v, float) and v != v else v for v in row] for row in frame.values.tolist()]
    split = lambda n: json.dumps({"dataframe_split": {"columns": list(FEATURES), "data": rows[:n]}}).encode()  # noqa: E731
    return {"1 row": split(1), "100 rows": split(100)}


def _predict(port: int, body: bytes) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
    payload = json.loads(connection.getresponse().read())
    connection.close()
    return payload


def bench_server(name: str, start: Any, bodies: dict[str, bytes], clients: int, duration: float) -> dict[str, Any]:
    """Start one server, sample its memory, run every phase, stop it."""
    print(f"-- {name}: starting", flush=True)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    with start() as server:
        rss = PeakRss(server.process.pid)
        results["startup_s"] = time.perf_counter() - started
        results["sample"] = _predict(server.port, bodies["100 rows"])
        for label, body in bodies.items():
            for _ in range(50):  # warm-up: first requests pay lazy imports
                _predict(server.port, body)
            results[(label, clients)] = load(server.port, body, clients, duration)
            before = server_side_share(server.port) if label == "1 row" and name.startswith("ours") else None
            results[(label, 1)] = load(server.port, body, 1, duration / 2)
            if before is not None:
                after = server_side_share(server.port)
                results["server_side_under_5ms"] = (after[1] - before[1]) / max(after[0] - before[0], 1)
            print(f"   {label}: {results[(label, clients)]}", flush=True)
        results["peak_rss"] = rss.stop()
    return results


def machine_noise(samples: int = 2000) -> tuple[float, float]:
    """p50/p99 in ms of a fixed ~0.5 ms pure-Python loop: how much the machine itself
    (other processes, CPU frequency) spreads a constant amount of work."""
    timings = []
    for _ in range(samples):
        begun = time.perf_counter()
        total = 0
        for i in range(10_000):
            total += i
        timings.append(time.perf_counter() - begun)
    timings.sort()
    return statistics.median(timings) * 1e3, timings[int(samples * 0.99)] * 1e3


def server_side_share(port: int, bound: str = "0.005") -> tuple[float, float]:
    """(count, count with latency <= bound seconds) from our /metrics histogram."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    count = below = 0.0
    for line in text.splitlines():
        if line.startswith("mlserve_request_latency_seconds_count"):
            count = float(line.split()[-1])
        if line.startswith(f'mlserve_request_latency_seconds_bucket{{le="{bound}"}}'):
            below = float(line.split()[-1])
    return count, below


def _labels(sample: Any) -> list[int]:
    # mlflow's pyfunc answers the sklearn model's predict (labels); ours adds probabilities.
    return [int(p) for p in sample["predictions"]]


def main(argv: list[str] | None = None) -> int:
    """Pick the model, benchmark both servers one after the other, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracking-uri", help="registry to take the model from (default: local store if it has one)")
    parser.add_argument("--model-name", default="adult-income")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per throughput phase")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    tracking_uri = args.tracking_uri or LocalStore.default().tracking_uri
    try:
        MlflowClient(tracking_uri, registry_uri=tracking_uri).get_model_version_by_alias(args.model_name, "champion")
    except MlflowException:
        if args.tracking_uri:
            parser.error(f"{args.model_name}@champion not found in {tracking_uri}")
        from tests.serving.model_factory import train_and_register

        print("no champion in the local store: training the fixture model (ColumnTransformer + XGBoost)", flush=True)
        tracking_uri = train_and_register(Path(tempfile.mkdtemp(prefix="bench-store-")), args.model_name).tracking_uri
    model_uri = f"models:/{args.model_name}@champion"
    bodies = _bodies()
    venv_bin = str(Path(sys.executable).parent)

    def ours() -> Any:
        return running_server(model_uri, tracking_uri=tracking_uri, startup_timeout_s=180)

    def mlflow_serve() -> Any:
        port = free_port()
        command = [
            str(Path(venv_bin) / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
            "-h", "127.0.0.1", "-p", str(port),
        ]
        env = {
            "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "MLFLOW_TRACKING_URI": tracking_uri,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        return running_server(command=command, port=port, env=env, startup_timeout_s=240)

    noise = machine_noise()
    ours_r = bench_server("ours (python -m serving)", ours, bodies, args.concurrency, args.duration)
    mlflow_r = bench_server("mlflow models serve --env-manager local", mlflow_serve, bodies, args.concurrency, args.duration)

    agree = sum(a == b for a, b in zip(_labels(ours_r["sample"]), _labels(mlflow_r["sample"]), strict=True))
    print()
    print(f"model {model_uri} @ {tracking_uri}; {args.concurrency} client processes; {os.cpu_count()} CPUs")
    print(f"machine noise: a fixed CPU loop takes p50 {noise[0]:.2f} ms, p99 {noise[1]:.2f} ms "
          f"(load average {os.getloadavg()[0]:.1f})")
    print(f"same predicted label from both servers on {agree} of 100 rows")
    header = f"{'':28}{'ours':>14}{'mlflow':>14}{'ratio':>10}"
    print(header)
    for label in bodies:
        o, m = ours_r[(label, args.concurrency)], mlflow_r[(label, args.concurrency)]
        o1, m1 = ours_r[(label, 1)], mlflow_r[(label, 1)]
        print(f"{label + ' RPS (c=' + str(args.concurrency) + ')':28}{o.rps:14.0f}{m.rps:14.0f}{o.rps / m.rps:9.2f}x")
        print(f"{label + ' p50 ms (c=' + str(args.concurrency) + ')':28}{o.p50_ms:14.2f}{m.p50_ms:14.2f}")
        print(f"{label + ' p99 ms (c=' + str(args.concurrency) + ')':28}{o.p99_ms:14.2f}{m.p99_ms:14.2f}")
        print(f"{label + ' p50 ms (c=1)':28}{o1.p50_ms:14.2f}{m1.p50_ms:14.2f}")
        print(f"{label + ' p99 ms (c=1)':28}{o1.p99_ms:14.2f}{m1.p99_ms:14.2f}")
        print(f"{label + ' errors':28}{o.errors + o1.errors:14d}{m.errors + m1.errors:14d}")
    print(f"{'peak RSS MiB':28}{ours_r['peak_rss'] / 2**20:14.0f}{mlflow_r['peak_rss'] / 2**20:14.0f}"
          f"{ours_r['peak_rss'] / mlflow_r['peak_rss']:9.2f}x")
    print(f"{'startup s':28}{ours_r['startup_s']:14.1f}{mlflow_r['startup_s']:14.1f}")
    single, single_m = ours_r[("1 row", args.concurrency)], mlflow_r[("1 row", args.concurrency)]
    p99_alone = ours_r[("1 row", 1)].p99_ms
    print()
    print("targets:")
    print(f"  single-row RPS >= 3x mlflow : {single.rps / single_m.rps:.2f}x  {'MET' if single.rps >= 3 * single_m.rps else 'NOT MET'}")
    print(f"  single-row p99 < 5 ms (c=1) : {p99_alone:.2f} ms  {'MET' if p99_alone < 5 else 'NOT MET'}")
    print(f"  (server-side, from /metrics: {100 * ours_r['server_side_under_5ms']:.1f} % of those requests took <= 5 ms)")
    print(f"  peak RSS below mlflow       : {ours_r['peak_rss'] / mlflow_r['peak_rss']:.2f}x  "
          f"{'MET' if ours_r['peak_rss'] < mlflow_r['peak_rss'] else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
