"""Offline `pulumi preview --diff` for reviewers: what a change does to one stack.

``python -m infra.plan --stack STACK --diff BASE_REF`` captures the stack twice under
mocks, from the working tree and from ``BASE_REF`` (exported with ``git archive`` into a
temporary folder, its own program and stack file, run in a subprocess so the two
versions of ``infra`` never share a process), and prints the resources added, changed
(with each changed input key) and removed, keyed by URN. A change that makes the
provider replace a stateful resource (the database, a bucket, a KMS key, the cluster, a
registry), or a stateful resource that disappears, is flagged: on a real `up` that is
data loss unless the resource is protected.

What a mock cannot show: values AWS computes (placeholders here, equal on both sides),
and replacements the provider decides from live state. ``REPLACE_ON_CHANGE`` lists the
inputs the Terraform AWS provider marks ForceNew for the stateful types the stacks use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
STATEFUL: frozenset[str] = frozenset({
    "aws:rds/instance:Instance", "aws:s3/bucket:Bucket", "aws:kms/key:Key",
    "aws:eks/cluster:Cluster", "aws:ecr/repository:Repository",
})
REPLACE_ON_CHANGE: dict[str, tuple[str, ...]] = {
    "aws:rds/instance:Instance": ("identifier", "engine", "dbName", "username", "kmsKeyId",
                                  "storageEncrypted", "availabilityZone", "characterSetName",
                                  "timezone"),
    "aws:s3/bucket:Bucket": ("bucket", "bucketPrefix", "objectLockEnabled"),
    "aws:kms/key:Key": ("keyUsage", "customerMasterKeySpec", "multiRegion", "xksKeyId"),
    "aws:eks/cluster:Cluster": ("name", "roleArn", "encryptionConfig", "kubernetesNetworkConfig",
                                "vpcConfig.subnetIds", "bootstrapSelfManagedAddons",
                                "accessConfig.bootstrapClusterCreatorAdminPermissions"),
    "aws:ecr/repository:Repository": ("name", "encryptionConfigurations"),
}
"""Inputs whose change replaces the resource (ForceNew in the Terraform AWS provider)."""

_DUMP = """
import json, sys
from infra.mocks import capture_stack
from infra.plan import warm_compiler
warm_compiler()
cap = capture_stack(sys.argv[1])
json.dump({r.urn: {"type": r.type, "inputs": r.inputs} for r in cap.resources if r.custom},
          sys.stdout, default=str, sort_keys=True)
"""


@dataclass
class PlanDiff:
    """Resources added, changed (URN -> changed keys) and removed; stateful replacements."""

    added: list[str] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    replaced_stateful: dict[str, str] = field(default_factory=dict)
    refused_by_aws: dict[str, str] = field(default_factory=dict)
    """Changes AWS refuses as one update (an EKS control plane moves one minor per upgrade)."""


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested inputs as dotted keys (``vpcConfig.subnetIds[0]``); JSON strings (policies,
    definitions) compare as their parsed content, so a reordering is not a change."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not str(key).startswith("__"):
                out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out or {prefix: {}}
    if isinstance(value, list):
        out = {}
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{index}]"))
        return out or {prefix: []}
    return {prefix: value}


def _forces_replacement(type_token: str, key: str) -> bool:
    return any(key == p or key.startswith((f"{p}.", f"{p}[")) for p in REPLACE_ON_CHANGE.get(type_token, ()))


def diff(base: dict[str, dict[str, Any]], head: dict[str, dict[str, Any]]) -> PlanDiff:
    """Compare two captures (URN -> {"type", "inputs"}); pure."""
    result = PlanDiff(added=sorted(set(head) - set(base)), removed=sorted(set(base) - set(head)))
    for urn in sorted(set(base) & set(head)):
        old, new = flatten(base[urn]["inputs"]), flatten(head[urn]["inputs"])
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if keys:
            result.changed[urn] = keys
            forcing = [k for k in keys if _forces_replacement(head[urn]["type"], k)]
            if head[urn]["type"] in STATEFUL and forcing:
                result.replaced_stateful[urn] = f"replaced: {', '.join(forcing)} changed"
        if head[urn]["type"] == "aws:eks/cluster:Cluster" and "version" in keys:
            before, after = (tuple(int(x) for x in str(side[urn]["inputs"]["version"]).split("."))
                             for side in (base, head))
            if after[0] != before[0] or abs(after[1] - before[1]) > 1:
                result.refused_by_aws[urn] = (
                    f"version {'.'.join(map(str, before))} -> {'.'.join(map(str, after))}: EKS "
                    "upgrades one minor at a time; apply each minor in its own `up`")
    for urn in result.removed:
        if base[urn]["type"] in STATEFUL:
            renamed = [u for u in result.added if head[u]["type"] == base[urn]["type"]]
            result.replaced_stateful[urn] = (
                f"removed (a new {base[urn]['type']} {', '.join(renamed)} is added: a rename replaces it)"
                if renamed else "removed")
    return result


def capture_tree(root: Path, stack: str) -> dict[str, dict[str, Any]]:
    """Capture ``stack`` with the program and stack file under ``root``, in a subprocess.

    Raises RuntimeError with the subprocess's error output when the capture fails (for
    instance a stack config that version of the program refuses).
    """
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", _DUMP, stack], cwd=root, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"capturing {stack} at {root} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def export_ref(ref: str, into: Path, repo: Path = REPO_ROOT) -> Path:
    """``git archive`` of ``ref`` unpacked into ``into``; ValueError names an unknown ref."""
    proc = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", ref],
                          capture_output=True, check=False)
    if proc.returncode != 0:
        raise ValueError(f"git cannot export {ref!r}: {proc.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=BytesIO(proc.stdout)) as archive:
        archive.extractall(into, filter="data")
    return into


def plan_diff(stack: str, ref: str, repo: Path = REPO_ROOT) -> PlanDiff:
    """The stack's diff from ``ref`` to the working tree of ``repo``."""
    with tempfile.TemporaryDirectory(prefix="plan-diff-") as tmp:
        base = capture_tree(export_ref(ref, Path(tmp), repo), stack)
    return diff(base, capture_tree(repo, stack))


def render(result: PlanDiff, stack: str, ref: str) -> str:
    """The diff as reviewers read it, stateful replacements first."""
    lines = [f"Offline plan diff for stack {stack}: {ref} -> working tree",
             f"  {len(result.added)} to add, {len(result.changed)} to change, "
             f"{len(result.removed)} to remove"]
    if result.replaced_stateful:
        lines.append("")
        lines.append("!! stateful resources replaced or removed (data loss unless protected):")
        lines += [f"!!   {urn}: {why}" for urn, why in sorted(result.replaced_stateful.items())]
    if result.refused_by_aws:
        lines.append("")
        lines.append("!! changes AWS refuses in one update:")
        lines += [f"!!   {urn}: {why}" for urn, why in sorted(result.refused_by_aws.items())]
    for label, urns in (("+ add", result.added), ("- remove", result.removed)):
        if urns:
            lines.append("")
            lines += [f"{label} {urn}" for urn in urns]
    if result.changed:
        lines.append("")
        for urn, keys in result.changed.items():
            lines.append(f"~ change {urn}")
            lines += [f"      {key}" for key in keys]
    return "\n".join(lines) + "\n"
