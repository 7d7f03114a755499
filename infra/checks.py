"""Judge checkov's findings on the offline plan against the committed skip file.

``infra/checkov-skips.yaml`` lists each accepted finding (framework, check id, stacks,
resource patterns, one-line reason). A finding no entry covers is a defect to fix; an
entry no finding uses is stale and must go. Pure functions over checkov's JSON report.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SKIP_FILE = Path(__file__).resolve().parent / "checkov-skips.yaml"


@dataclass(frozen=True)
class Finding:
    """One failed checkov check on one resource."""

    check_id: str
    resource: str
    name: str


@dataclass(frozen=True)
class Skip:
    """One accepted finding pattern with its reason."""

    framework: str
    check_id: str
    stacks: tuple[str, ...]
    resources: tuple[str, ...]
    reason: str

    def covers(self, stack: str, finding: Finding) -> bool:
        return (finding.check_id == self.check_id and stack in self.stacks
                and any(fnmatch.fnmatchcase(finding.resource, p) for p in self.resources))


def load_skips(path: Path = SKIP_FILE) -> list[Skip]:
    """Read the skip file; raises ValueError for an entry without a reason or pattern."""
    data = yaml.safe_load(path.read_text()) or {}
    skips: list[Skip] = []
    for framework, checks in data.items():
        for check_id, entry in (checks or {}).items():
            reason = str(entry.get("reason", "")).strip()
            if not reason or not entry.get("stacks") or not entry.get("resources"):
                raise ValueError(f"{path.name}: {framework}/{check_id} needs stacks, resources and a reason")
            skips.append(Skip(framework, str(check_id), tuple(entry["stacks"]),
                              tuple(entry["resources"]), reason))
    return skips


def findings(report: Any) -> list[Finding]:
    """Failed checks from checkov's ``-o json`` report (one report or a list of them)."""
    reports = report if isinstance(report, list) else [report]
    out = []
    for rep in reports:
        if not isinstance(rep, dict):
            continue
        for failed in rep.get("results", {}).get("failed_checks", []):
            out.append(Finding(failed["check_id"], failed["resource"], failed.get("check_name", "")))
    return out


def parse_report(text: str) -> Any:
    """checkov prints ``{}``-ish JSON; an empty report (nothing scanned) is an error."""
    if not text.strip():
        raise ValueError("checkov printed nothing: no file was scanned")
    return json.loads(text)


def unexpected(stack: str, framework: str, found: list[Finding], skips: list[Skip]) -> list[Finding]:
    """Findings that no skip covers for this stack and framework."""
    mine = [s for s in skips if s.framework == framework]
    return [f for f in found if not any(s.covers(stack, f) for s in mine)]


def unused(skips: list[Skip], seen: dict[tuple[str, str], list[Finding]]) -> list[Skip]:
    """Skips that matched nothing in any (stack, framework) they name."""
    stale = []
    for skip in skips:
        used = any(skip.covers(stack, f)
                   for (stack, framework), found in seen.items() if framework == skip.framework
                   for f in found)
        if not used:
            stale.append(skip)
    return stale
