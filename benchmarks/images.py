"""Benchmark: the three images' size, build time (cold and with cached layers) and the
serving container's time from start to its first 200 on ``/ping``.

Targets (2-core build machine): serving image under 700 MB (it serves on CPU, so it
carries neither XGBoost's CUDA kernels nor the tracking server), serving ready under 5 s
after the container starts, ``make images image-test`` under 15 minutes in all.

    sudo .venv/bin/python benchmarks/images.py            # cached rebuilds + readiness
    sudo .venv/bin/python benchmarks/images.py --cold     # also a cold build of each (minutes)

Images are built on the local stand-in for the official Python base (images/): it is
larger than ``python:3.11-slim-bookworm``, so each image's size is printed with and
without its base. Every container listens on 127.0.0.1 only.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.schema import REPO_ROOT  # noqa: E402
from serving.process import free_port  # noqa: E402
from tests.images.podman import IMAGES, image, podman, run_detached  # noqa: E402

SERVING_TARGET_MB = 700
READY_TARGET_S = 5.0
MB = 1_000_000


def build(name: str, cold: bool) -> float:
    """Seconds to build image ``name`` (``--no-cache`` when cold)."""
    env = {**os.environ, "MLOPS_BUILD_NO_CACHE": "1" if cold else ""}
    start = time.monotonic()
    subprocess.run(["bash", "images/build.sh", name], cwd=REPO_ROOT, check=True, capture_output=True,
                   timeout=1800, env=env)
    return time.monotonic() - start


def size_mb(tag: str) -> float:
    return int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip()) / MB


def serving_ready_seconds(model_dir: Path, runs: int) -> list[float]:
    """Container start (``podman run`` returning) to the first 200 on /ping, ``runs`` times."""
    import httpx

    from tests.images.test_serving_sagemaker import serve_env, serve_options

    times = []
    for _ in range(runs):
        port = free_port()
        start = time.monotonic()
        with run_detached("serving", ["serve"], options=serve_options(model_dir), env=serve_env(port)):
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() - start > 120:
                    raise RuntimeError("serving container not ready within 120 s")
                time.sleep(0.05)
            times.append(time.monotonic() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", action="store_true", help="also build each image with no cached layers")
    parser.add_argument("--ready-runs", type=int, default=3)
    args = parser.parse_args()

    standin = subprocess.run(["bash", "-c", "source images/env.sh && echo $MLOPS_BASE_STANDIN"], cwd=REPO_ROOT,
                             capture_output=True, text=True, check=True).stdout.strip()
    base_mb = size_mb(standin)
    print(f"base stand-in {standin}: {base_mb:.0f} MB")
    print(f"{'image':<10} {'size MB':>8} {'above base':>11} {'cold build s':>13} {'cached build s':>15}")
    serving_mb = 0.0
    for name in IMAGES:
        cold_s = f"{build(name, cold=True):.0f}" if args.cold else "-"
        cached_s = build(name, cold=False)
        total = size_mb(image(name))
        print(f"{name:<10} {total:>8.0f} {total - base_mb:>11.0f} {cold_s:>13} {cached_s:>15.1f}")
        if name == "serving":
            serving_mb = total
    verdict = "meets" if serving_mb < SERVING_TARGET_MB else "misses"
    print(f"serving image {serving_mb:.0f} MB {verdict} the < {SERVING_TARGET_MB} MB target")

    from tests.images.test_serving_sagemaker import sagemaker_model_dir

    with tempfile.TemporaryDirectory(prefix="images-bench-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        ready = serving_ready_seconds(sagemaker_model_dir(root), args.ready_runs)
    median = statistics.median(ready)
    print(f"serving ready (start -> first /ping 200): median {median:.2f} s over {len(ready)} runs "
          f"({', '.join(f'{t:.2f}' for t in ready)}); target < {READY_TARGET_S:.0f} s: "
          f"{'met' if median < READY_TARGET_S else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
