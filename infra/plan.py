"""Offline plan for reviewers: ``python -m infra.plan --stack dev|prod --out build/plan/<stack>``.

With ``--diff BASE_REF`` it prints, instead, what the working tree changes in the stack
since that git ref (``infra.plan_diff``).

Runs the program for one stack under Pulumi's mocks (no CLI, no AWS; see
``infra.mocks``) and writes three files that people and independent checkers read:

- ``inventory.md``: every resource by component, type and name, with its key settings
  and whether it is protected;
- ``kubernetes.yaml``: every Kubernetes object the program applies, as manifests
  (secret values redacted), for checkov and kubernetes-validate;
- ``plan.json``: the AWS resources as Terraform-plan-shaped JSON (``infra.tfplan``) for
  checkov's ``terraform_plan`` framework.

What a mock cannot show: values AWS computes (they are realistic placeholders here),
provider defaults the program does not set, and what the Helm charts render.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from infra.mocks import Capture, Recorded
from infra.tfplan import terraform_plan

KEY_SETTINGS: dict[str, tuple[str, ...]] = {
    "aws:eks/cluster:Cluster": ("version", "vpcConfig.endpointPublicAccess",
                                "vpcConfig.publicAccessCidrs", "enabledClusterLogTypes"),
    "aws:eks/nodeGroup:NodeGroup": ("amiType", "instanceTypes", "capacityType",
                                    "scalingConfig", "taints"),
    "aws:rds/instance:Instance": ("engine", "engineVersion", "instanceClass", "multiAz",
                                  "storageEncrypted", "deletionProtection",
                                  "backupRetentionPeriod", "publiclyAccessible"),
    "aws:ecr/repository:Repository": ("name", "imageTagMutability", "imageScanningConfiguration"),
    "docker:index/image:Image": ("imageName", "repoDigest"),
    "aws:s3/bucket:Bucket": ("bucket",),
    "aws:kms/key:Key": ("enableKeyRotation",),
    "aws:codebuild/project:Project": ("name", "source.buildspec", "environment.privilegedMode"),
    "aws:codepipeline/pipeline:Pipeline": ("name", "pipelineType", "stages[].name"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("namespace", "metricName", "statistic",
                                               "extendedStatistic", "threshold"),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "retentionInDays"),
    "aws:sagemaker/pipeline:Pipeline": ("pipelineName",),
    "aws:ec2/natGateway:NatGateway": ("subnetId",),
    "aws:ec2/subnet:Subnet": ("cidrBlock", "availabilityZone"),
    "aws:cloudwatch/eventRule:EventRule": ("description",),
    "kubernetes:helm.sh/v3:Release": ("chart", "version", "namespace"),
    "kubernetes:argoproj.io/v1alpha1:Rollout": ("spec.replicas", "spec.strategy.canary.steps"),
    "kubernetes:apps/v1:Deployment": ("metadata.namespace", "spec.replicas"),
}


def _dig(value: Any, path: str) -> Any:
    for part in path.split("."):
        if part.endswith("[]"):
            items = value.get(part[:-2]) if isinstance(value, dict) else None
            return [i for i in items] if isinstance(items, list) else None
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _settings(r: Recorded) -> str:
    merged = {**r.outputs, **r.inputs}
    parts = []
    for path in KEY_SETTINGS.get(r.type, ()):
        if path.endswith("[].name"):
            items = _dig(merged, path.removesuffix(".name"))
            value: Any = [i.get("name") for i in items] if items else None
        else:
            value = _dig(merged, path)
        if value not in (None, "", [], {}):
            parts.append(f"{path}={json.dumps(value, default=str, sort_keys=True)}")
    return "; ".join(parts).replace("|", "\\|")


def _component(r: Recorded, by_urn: dict[str, Recorded]) -> str:
    node, top = r, r
    while node.parent and node.parent in by_urn:
        node = by_urn[node.parent]
        if node.type.startswith("mlops:") and not node.type.startswith("mlops:bucket"):
            top = node
    return f"{top.type} {top.name}" if top is not r else "(stack)"


def inventory(capture: Capture) -> str:
    """Markdown inventory: one table per component, every resource with key settings."""
    by_urn = {r.urn: r for r in capture.resources}
    groups: dict[str, list[Recorded]] = defaultdict(list)
    for r in capture.resources:
        if r.custom:
            groups[_component(r, by_urn)].append(r)
    lines = [f"# Offline plan: stack `{capture.stack}`", "",
             f"{len(capture.custom)} resources in {len(groups)} components, built under mocks in "
             f"{capture.seconds:.1f} s. Values AWS computes (ARNs, endpoints, digests) are "
             "realistic placeholders; a mock shows what the program asks for, not what AWS accepts.",
             "", "## Outputs", ""]
    for key, value in sorted(capture.outputs.items()):
        shown = "[secret]" if key == "kubeconfig" else value
        lines.append(f"- `{key}`: `{shown}`")
    for group in sorted(groups):
        lines += ["", f"## {group}", "", "| type | name | protected | key settings |",
                  "|---|---|---|---|"]
        for r in sorted(groups[group], key=lambda x: (x.type, x.name)):
            protected = "yes" if r.protect or r.retain_on_delete else ""
            lines.append(f"| `{r.type}` | `{r.name}` | {protected} | {_settings(r)} |")
    return "\n".join(lines) + "\n"


def _api_version_kind(type_token: str) -> tuple[str, str]:
    _, middle, kind = type_token.split(":")
    group, version = middle.split("/")
    return (version if group == "core" else f"{group}/{version}"), kind


def kubernetes_manifests(capture: Capture) -> list[dict[str, Any]]:
    """Kubernetes objects as manifests (Helm releases and providers are not objects)."""
    docs = []
    for r in capture.resources:
        if not r.type.startswith("kubernetes:") or r.type.startswith("kubernetes:helm.sh"):
            continue
        api_version, kind = _api_version_kind(r.type)
        manifest: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
        for key, value in r.inputs.items():
            if key in ("apiVersion", "kind") or key.startswith("__"):
                continue
            manifest[key] = value
        meta = dict(manifest.get("metadata") or {})
        meta.setdefault("name", (r.outputs.get("metadata") or {}).get("name", r.name))
        manifest["metadata"] = meta
        if kind == "Secret":
            for field in ("stringData", "data"):
                if field in manifest:
                    manifest[field] = {k: "<redacted>" for k in manifest[field]}
        docs.append(manifest)
    return docs


def write_plan(capture: Capture, out: Path) -> dict[str, Path]:
    """Write inventory.md, kubernetes.yaml and plan.json for one captured stack."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"inventory": out / "inventory.md", "kubernetes": out / "kubernetes.yaml",
             "plan": out / "plan.json"}
    paths["inventory"].write_text(inventory(capture))
    paths["kubernetes"].write_text(yaml.safe_dump_all(kubernetes_manifests(capture), sort_keys=False))
    paths["plan"].write_text(json.dumps(terraform_plan(capture.resources), indent=1,
                                        sort_keys=True, default=str))
    return paths


SDK_MODULES: tuple[str, ...] = (
    "sagemaker.core.processing", "sagemaker.core.shapes", "sagemaker.core.training.configs",
    "sagemaker.core.workflow.conditions", "sagemaker.core.workflow.functions",
    "sagemaker.core.workflow.pipeline_context", "sagemaker.core.workflow.properties",
    "sagemaker.mlops.workflow", "sagemaker.train", "sagemaker.core.network")
"""What ``pipeline.sagemaker_compiler`` imports on its first call."""


def warm_compiler() -> float:
    """Import the SageMaker SDK modules the compiler uses; return the seconds it took.

    The SDK's import is a fixed cost per process (about as long as a whole graph), so
    it is paid and reported apart from the graph build it would otherwise hide in.
    """
    import importlib
    import time

    from pipeline.sagemaker_compiler import prepare_offline_sdk_environment

    started = time.perf_counter()
    prepare_offline_sdk_environment()
    for module in SDK_MODULES:
        importlib.import_module(module)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """CLI: capture one stack under mocks and write its offline plan."""
    parser = argparse.ArgumentParser(prog="python -m infra.plan", description=__doc__.split("\n")[0])
    parser.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default build/plan/<stack>)")
    parser.add_argument("--diff", metavar="BASE_REF", default=None,
                        help="print what changes from git ref BASE_REF to the working tree instead "
                             "(added, changed keys, removed; stateful replacements flagged); "
                             "exit 3 when a stateful resource would be replaced or removed, or AWS would "
                             "refuse a change in one update")
    args = parser.parse_args(argv)
    if args.diff:
        from infra.plan_diff import plan_diff, render

        try:
            result = plan_diff(args.stack, args.diff)
        except (ValueError, RuntimeError) as exc:
            print(f"infra.plan: {exc}", file=sys.stderr)
            return 2
        print(render(result, args.stack, args.diff), end="")
        return 3 if result.replaced_stateful or result.refused_by_aws else 0
    from infra.config import ConfigError
    from infra.mocks import capture_stack

    sdk_seconds = warm_compiler()
    try:
        capture = capture_stack(args.stack)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"infra.plan: {exc}", file=sys.stderr)
        return 2
    paths = write_plan(capture, args.out or Path("build/plan") / args.stack)
    print(f"{args.stack}: {len(capture.custom)} resources; graph built in {capture.seconds:.1f} s "
          f"(SageMaker SDK import before it: {sdk_seconds:.1f} s, once per process)")
    for label, path in paths.items():
        print(f"  {label}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
