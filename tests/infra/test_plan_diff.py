"""The offline plan diff (``python -m infra.plan --stack S --diff REF``): the pure
comparison on captured resources, and the git plumbing between two commits.

The end-to-end run on the real stacks takes two whole captures (minutes on a shared
machine); here the two-commit test uses a stand-in program with the same entry points
(``infra.mocks.capture_stack``, ``infra.plan.warm_compiler``), so what is proved is that
each side runs its own commit's program and stack, and how the results are compared.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from infra.plan_diff import PlanDiff, capture_tree, diff, export_ref, flatten, render

DB = "aws:rds/instance:Instance"
BUCKET = "aws:s3/bucket:Bucket"


def _res(type_token: str, **inputs: object) -> dict:
    return {"type": type_token, "inputs": inputs}


def test_added_changed_removed_with_the_changed_keys() -> None:
    base = {"urn:a": _res("aws:sns/topic:Topic", name="t", tags={"stack": "dev"}),
            "urn:gone": _res("aws:sns/topic:Topic", name="g"),
            "urn:same": _res("aws:sns/topic:Topic", name="s",
                             policy='{"Statement": [{"Effect": "Allow"}], "Version": "2012-10-17"}')}
    head = {"urn:a": _res("aws:sns/topic:Topic", name="t", tags={"stack": "prod"}),
            "urn:new": _res("aws:sns/topic:Topic", name="n"),
            "urn:same": _res("aws:sns/topic:Topic", name="s",
                             policy='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]}')}
    result = diff(base, head)
    assert result.added == ["urn:new"] and result.removed == ["urn:gone"]
    # A JSON policy whose keys were only reordered is not a change.
    assert result.changed == {"urn:a": ["tags.stack"]}
    assert not result.replaced_stateful


def test_stateful_replacements_and_removals_are_flagged() -> None:
    base = {"urn:db": _res(DB, identifier="mlops-dev-db", instanceClass="db.t4g.small"),
            "urn:bucket-old": _res(BUCKET, bucket=None),
            "urn:db2": _res(DB, identifier="x", instanceClass="db.t4g.small")}
    head = {"urn:db": _res(DB, identifier="mlops-dev-database", instanceClass="db.t4g.small"),
            "urn:bucket-new": _res(BUCKET, bucket=None),
            "urn:db2": _res(DB, identifier="x", instanceClass="db.r6g.large")}
    result = diff(base, head)
    assert result.replaced_stateful["urn:db"] == "replaced: identifier changed"
    assert "urn:db2" not in result.replaced_stateful  # an instance class change is in place
    assert "a rename replaces it" in result.replaced_stateful["urn:bucket-old"]
    text = render(result, "dev", "main")
    assert text.index("!! stateful") < text.index("+ add") and "urn:db: replaced" in text


def test_flatten_names_nested_keys() -> None:
    assert flatten({"vpcConfig": {"subnetIds": ["a", "b"]}, "x": {}}) == {
        "vpcConfig.subnetIds[0]": "a", "vpcConfig.subnetIds[1]": "b", "x": {}}


_STAND_IN = '''
import json, sys, yaml
from dataclasses import dataclass

@dataclass
class R:
    urn: str
    type: str
    inputs: dict
    custom: bool = True

@dataclass
class C:
    resources: list

def capture_stack(stack):
    cfg = yaml.safe_load(open(f"Pulumi.{stack}.yaml"))["config"]
    return C([R(f"urn:{stack}:db", "aws:rds/instance:Instance",
                {"identifier": cfg["identifier"], "instanceClass": cfg["class"]})])
'''


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                   check=True, capture_output=True)


def test_each_side_runs_its_own_commits_program_and_stack(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "infra").mkdir(parents=True)
    (repo / "infra" / "__init__.py").write_text("")
    (repo / "infra" / "mocks.py").write_text(_STAND_IN)
    (repo / "infra" / "plan.py").write_text("def warm_compiler():\n    return 0.0\n")
    (repo / "Pulumi.dev.yaml").write_text("config:\n  identifier: db-a\n  class: db.t4g.small\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "base")
    (repo / "Pulumi.dev.yaml").write_text("config:\n  identifier: db-b\n  class: db.t4g.small\n")

    base = capture_tree(export_ref("HEAD", tmp_path / "base", repo), "dev")
    head = capture_tree(repo, "dev")
    result = diff(base, head)
    assert base["urn:dev:db"]["inputs"]["identifier"] == "db-a"
    assert result == PlanDiff(changed={"urn:dev:db": ["identifier"]},
                              replaced_stateful={"urn:dev:db": "replaced: identifier changed"})


def test_unknown_ref_is_refused_by_name(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    with pytest.raises(ValueError, match="git cannot export 'no-such-ref'"):
        export_ref("no-such-ref", tmp_path / "out", repo)


def test_an_eks_upgrade_of_two_minors_is_flagged() -> None:
    cluster = "aws:eks/cluster:Cluster"
    base = {"urn:c": _res(cluster, name="c", version="1.33"), "urn:d": _res(cluster, name="d", version="1.34")}
    head = {"urn:c": _res(cluster, name="c", version="1.35"), "urn:d": _res(cluster, name="d", version="1.35")}
    result = diff(base, head)
    assert list(result.refused_by_aws) == ["urn:c"] and "one minor at a time" in result.refused_by_aws["urn:c"]
    assert "!! changes AWS refuses" in render(result, "prod", "main")
