"""Benchmark: the dev stack's SageMaker definition executed locally, step by step, beside
the same steps run in-process by ``python -m pipeline run``.

The difference per step is the container and orchestration overhead (a container start,
the interpreter and its imports, S3 staging in and out). Target: the whole local
execution under 5 minutes on a 2-core machine. Needs ``make images`` and root (podman):

    sudo .venv/bin/python benchmarks/local_execution.py

S3 and Secrets Manager are moto's server on 127.0.0.1; the tracking server is the MLflow
image (basic auth) on PostgreSQL, as in tests/images. The baseline is the in-process run
on a fresh local store (``--no-deploy``: the SageMaker pipeline has no deploy step).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.delivery import datasets, local_train  # noqa: E402
from pipeline.schema import DEFAULT_DATASET, REPO_ROOT  # noqa: E402
from tests.images.services import mlflow_stack  # noqa: E402

TARGET_S = 300.0
# SageMaker step -> the in-process runner's steps that do the same work.
SAME_WORK = {"Validate": ("ingest", "validate"), "Split": ("split",), "Train": ("train",),
             "EvaluateAndGate": ("evaluate", "gate"), "GateCheck": (), "Register": ("register",)}


def in_process_seconds(store: Path) -> dict[str, float]:
    result = subprocess.run([sys.executable, "-m", "pipeline", "run", "--json", "--no-deploy", "--store", str(store),
                             "--create-registry"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800, check=False)
    if result.returncode != 0:
        raise SystemExit(f"pipeline run exited {result.returncode}:\n{result.stderr[-3000:]}")
    return {step["name"]: float(step["seconds"]) for step in json.loads(result.stdout)["steps"]}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-local-execution-", dir="/var/tmp") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        baseline = in_process_seconds(root / "store")
        started = time.monotonic()
        definition = local_train.stack_definition("dev")
        compile_s = time.monotonic() - started
        with mlflow_stack(root / "platform") as (server, moto, _):
            local_train.seed_credentials_secret(moto.client("secretsmanager"), definition.credentials_secret_arn,
                                                server.admin_user, server.admin_password)
            s3 = moto.client("s3")
            datasets.ensure_bucket(s3, definition.parameter_default("InputDataUri"))  # `pulumi up` made it in AWS
            uri = datasets.push_dataset(s3, DEFAULT_DATASET, definition.parameter_default("InputDataUri"))
            execution = local_train.execute_locally(definition, s3=s3, tracking_uri=server.url, endpoint_url=moto.endpoint,
                                                    workdir=root / "work", input_data=uri, log=lambda _: None)
    if not execution.succeeded:
        print(f"local execution {execution.status} at {execution.failed_step}: {execution.failure_reason}")
        return 1
    total = sum(step.seconds for step in execution.steps if step.type != "Condition")
    print(f"compile the dev stack's definition under mocks: {compile_s:6.1f} s")
    print(f"{'step':<16} {'local container':>16} {'in-process run':>15} {'overhead':>9}")
    for step in execution.steps:
        same = sum(baseline.get(name, 0.0) for name in SAME_WORK.get(step.name, ()))
        print(f"{step.name:<16} {step.seconds:>14.1f} s {same:>13.1f} s {step.seconds - same:>7.1f} s")
    in_process_total = sum(baseline.get(name, 0.0) for names in SAME_WORK.values() for name in names)
    print(f"{'total':<16} {total:>14.1f} s {in_process_total:>13.1f} s {total - in_process_total:>7.1f} s")
    verdict = "meets" if total < TARGET_S else "MISSES"
    print(f"local execution {total:.0f} s {verdict} the {TARGET_S:.0f} s target (the in-process run is the baseline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
