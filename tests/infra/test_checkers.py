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


# --- IAM (parliament), network reachability, capacity: each judged against its own
# committed skip file, with the same staleness rule as checkov's.

@pytest.fixture(scope="module")
def parliament_findings(captured: dict) -> dict[str, list]:
    """parliament's failing findings per stack (one run over all of a stack's documents)."""
    from infra import iam_check

    return {stack: iam_check.findings(iam_check.run_parliament(iam_check.policy_documents(cap)))
            for stack, cap in captured.items()}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_parliament_finds_nothing_unlisted(captured: dict, parliament_findings: dict, stack: str) -> None:
    from infra import iam_check

    assert len(iam_check.policy_documents(captured[stack])) > 20
    new = unexpected(stack, "parliament", parliament_findings[stack], load_skips(iam_check.SKIP_FILE))
    assert not new, "fix these or list them in infra/parliament-skips.yaml:\n" + "\n".join(
        f"  {f.check_id} {f.resource}: {f.name}" for f in new)


def test_no_stale_parliament_skips(parliament_findings: dict) -> None:
    from infra import iam_check

    seen = {(stack, "parliament"): found for stack, found in parliament_findings.items()}
    stale = unused(load_skips(iam_check.SKIP_FILE), seen)
    assert not stale, f"skips that match no finding any more: {[s.check_id for s in stale]}"


def test_parliament_refuses_the_old_vpc_build_condition_and_unknown_actions() -> None:
    """The checker bites: issue 11's VPC-build condition (ec2:AuthorizedService on
    CreateNetworkInterface, where the key does not exist), a misspelled action, and an
    object action on a bucket ARN are all errors."""
    from infra import iam_check

    documents = {"RolePolicy.old-vpc-build": {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ec2:CreateNetworkInterface"],
         "Resource": "arn:aws:ec2:eu-west-1:123456789012:network-interface/*",
         "Condition": {"StringEquals": {"ec2:AuthorizedService": "codebuild.amazonaws.com"}}},
        {"Effect": "Allow", "Action": ["s3:GetObjct"], "Resource": "arn:aws:s3:::b/*"},
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::b"}]}}
    issues = {f.check_id for f in iam_check.findings(iam_check.run_parliament(documents))}
    assert {"UNKNOWN_CONDITION_FOR_ACTION", "UNKNOWN_ACTION", "RESOURCE_MISMATCH"} <= issues, issues


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_network_flows_are_as_the_platform_needs(captured: dict, stack: str) -> None:
    from infra import reachability

    found = reachability.network_findings(captured[stack])
    new = unexpected(stack, "network", found, load_skips(reachability.SKIP_FILE))
    assert not new, "fix these flows or list them in infra/network-skips.yaml:\n" + "\n".join(
        f"  {f.check_id}: {f.name}" for f in new)


def test_network_check_refuses_a_closed_needed_flow_and_an_open_forbidden_one(captured: dict) -> None:
    """Jobs whose group reaches S3 only at the VPC's CIDR (the old rule) cannot use the
    gateway endpoint; a database group open to the internet is refused."""
    import copy
    import dataclasses

    from infra import reachability

    prod = captured["prod"]
    cap = dataclasses.replace(prod, resources=[dataclasses.replace(r, inputs=copy.deepcopy(r.inputs))
                                               for r in prod.resources])
    jobs = cap.one("aws:ec2/securityGroup:SecurityGroup", "-jobs-sg")
    jobs.inputs["egress"] = [r for r in jobs.inputs["egress"] if not r.get("prefixListIds")]
    db = cap.one("aws:ec2/securityGroup:SecurityGroup", "-db-sg")
    db.inputs["ingress"].append({"protocol": "tcp", "fromPort": 5432, "toPort": 5432,
                                 "cidrBlocks": ["0.0.0.0/0"]})
    failed = {f.check_id for f in reachability.network_findings(cap)}
    assert failed == {"sagemaker-to-s3", "internet-to-database-closed"}, failed


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_capacity_leaves_nothing_pending(captured: dict, stack: str) -> None:
    from infra import capacity

    found = capacity.capacity_findings(captured[stack])
    new = unexpected(stack, "capacity", found, load_skips(capacity.SKIP_FILE))
    assert not new, "resize the pools or list these in infra/capacity-skips.yaml:\n" + "\n".join(
        f"  {f.name}" for f in new)


def test_no_stale_network_or_capacity_skips(captured: dict) -> None:
    from infra import capacity, reachability

    for module, framework, check in ((reachability, "network", reachability.network_findings),
                                     (capacity, "capacity", capacity.capacity_findings)):
        seen = {(stack, framework): check(cap) for stack, cap in captured.items()}
        stale = unused(load_skips(module.SKIP_FILE), seen)
        assert not stale, f"{module.SKIP_FILE.name}: stale {[s.check_id for s in stale]}"


def test_every_checker_skip_file_names_a_reason() -> None:
    from infra import capacity, iam_check, reachability

    for path in (iam_check.SKIP_FILE, reachability.SKIP_FILE, capacity.SKIP_FILE):
        for skip in load_skips(path):
            assert len(skip.reason) > 20, f"{path.name}: {skip.check_id} has no real reason"
