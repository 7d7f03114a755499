"""Independent checkers on the offline plan: checkov (its own venv, ``--skip-download``)
on kubernetes.yaml and plan.json of both stacks, and kubernetes-validate on the
Kubernetes objects. Every checkov finding must be fixed or listed, with a reason, in
``infra/checkov-skips.yaml``; a listed skip that matches nothing fails too.

checkov runs once per stack and framework; the four runs go in parallel because each
is a single-threaded scan of one file.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.checks import findings, load_skips, parse_report, unexpected, unused

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"


@pytest.fixture(scope="module")
def checkov_reports(plans: dict[str, dict[str, Path]]) -> dict[tuple[str, str], object]:
    """checkov's JSON report for each (stack, framework)."""
    if not CHECKOV.is_file():
        pytest.fail(f"checkov is missing at {CHECKOV}: run `make .venv-checkov/.installed` "
                    "(requirements-checkov.lock)")
    runs = {}
    for stack, paths in plans.items():
        for framework, key in (("kubernetes", "kubernetes"), ("terraform_plan", "plan")):
            runs[(stack, framework)] = subprocess.Popen(
                [str(CHECKOV), "--skip-download", "--quiet", "--compact", "--output", "json",
                 "--framework", framework, "--file", str(paths[key])],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env={"PATH": "/usr/bin:/bin", "HOME": str(paths[key].parent),
                     "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"})
    reports = {}
    for key, proc in runs.items():
        out, err = proc.communicate(timeout=300)
        # checkov exits 1 when a check fails; anything else is a crash.
        assert proc.returncode in (0, 1), f"checkov {key} crashed: {err[-2000:]}"
        reports[key] = parse_report(out)
    return reports


@pytest.mark.parametrize("stack", ["dev", "prod"])
@pytest.mark.parametrize("framework", ["kubernetes", "terraform_plan"])
def test_checkov_finds_nothing_unlisted(checkov_reports: dict, stack: str, framework: str) -> None:
    report = checkov_reports[(stack, framework)]
    summaries = [r["summary"] for r in (report if isinstance(report, list) else [report])]
    assert sum(s["resource_count"] for s in summaries) > 10, f"checkov scanned too little: {summaries}"
    assert all(s["parsing_errors"] == 0 for s in summaries), summaries
    new = unexpected(stack, framework, findings(report), load_skips())
    assert not new, "fix these or list them in infra/checkov-skips.yaml:\n" + "\n".join(
        f"  {f.check_id} {f.resource}: {f.name}" for f in new)


def test_no_stale_checkov_skips(checkov_reports: dict) -> None:
    seen = {key: findings(report) for key, report in checkov_reports.items()}
    stale = unused(load_skips(), seen)
    assert not stale, f"skips that match no finding any more: {[(s.framework, s.check_id) for s in stale]}"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_kubernetes_objects_validate_against_the_schema(plans: dict[str, dict[str, Path]],
                                                       captured: dict, stack: str) -> None:
    """Against the schema of the stack's own cluster version."""
    import kubernetes_validate

    version = captured[stack].settings.cluster.version

    docs = list(yaml.safe_load_all(plans[stack]["kubernetes"].read_text()))
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "NetworkPolicy", "PodDisruptionBudget",
            "HorizontalPodAutoscaler", "Rollout", "AnalysisTemplate"} <= kinds
    for doc in docs:
        if doc["apiVersion"].startswith("argoproj.io/"):
            # Custom resources have no upstream schema; the Rollout's pod template (if
            # inline) would be checked as a PodTemplate. Ours references the Deployment.
            assert doc["kind"] in ("Rollout", "AnalysisTemplate"), doc["kind"]
            continue
        kubernetes_validate.validate(doc, version, strict=True)


def test_rollout_references_a_validated_deployment(plans: dict[str, dict[str, Path]]) -> None:
    docs = list(yaml.safe_load_all(plans["prod"]["kubernetes"].read_text()))
    rollout = next(d for d in docs if d["kind"] == "Rollout")
    ref = rollout["spec"]["workloadRef"]
    target = [d for d in docs if d["kind"] == ref["kind"] and d["metadata"]["name"] == ref["name"]
              and d["metadata"]["namespace"] == rollout["metadata"]["namespace"]]
    assert len(target) == 1, f"workloadRef {ref} matches {len(target)} objects"
    assert target[0]["spec"]["selector"] == rollout["spec"]["selector"]


def test_plan_json_has_no_secret_values(plans: dict[str, dict[str, Path]]) -> None:
    for stack, paths in plans.items():
        for key in ("plan", "kubernetes", "inventory"):
            text = paths[key].read_text()
            assert "offline-plan-password-0123" not in text, f"{stack} {key} leaks the admin password"
    plan = json.loads(plans["prod"]["plan"].read_text())
    assert plan["planned_values"]["root_module"]["resources"]
