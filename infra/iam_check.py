"""IAM checker: every policy document in the offline plan through parliament.

Our own ``policies.policy_violations`` knows our least-privilege rules but not AWS's
service authorization reference: it cannot tell that a condition key does not exist
for an action (``ec2:AuthorizedService`` on ``CreateNetworkInterface`` silently never
matches), that an action is misspelled, or that a resource ARN has the wrong shape for
an action. parliament checks exactly that against its copy of the reference. It runs in
its own environment (``PARLIAMENT_PYTHON``, see ``infra/parliament_runner.py``).

Every finding is an error to fix or to list, with its reason, in
``infra/parliament-skips.yaml`` (same format and staleness rule as the checkov skips),
except ``RESOURCE_STAR``-like findings: ``policy_violations`` already judges ``*``
resources against ``policies.UNSCOPED_ACTIONS`` with the reason for each.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from infra.checks import Finding

REPO_ROOT = Path(__file__).resolve().parent.parent
PARLIAMENT_PYTHON = REPO_ROOT / ".venv-parliament" / "bin" / "python"
RUNNER = Path(__file__).resolve().parent / "parliament_runner.py"
SKIP_FILE = Path(__file__).resolve().parent / "parliament-skips.yaml"
JUDGED_ELSEWHERE: frozenset[str] = frozenset({"RESOURCE_STAR", "RESOURCE_EFFECTIVELY_STAR"})
"""Findings ``policies.policy_violations`` owns (with a reason per unscoped action)."""


def policy_documents(capture: Any) -> dict[str, dict[str, Any]]:
    """Every identity and resource policy the stack attaches, named ``<type>.<resource
    name>``: role inline policies, and KMS key, SNS topic and S3 bucket policies.

    Trust policies are left out: parliament reads every document as an identity or
    resource policy (a trust policy has no Resource, so each one would be MALFORMED) and
    does not know EKS OIDC issuers; ``test_iam_is_least_privilege`` judges them.
    """
    fields = {"aws:iam/rolePolicy:RolePolicy": "policy",
              "aws:kms/key:Key": "policy", "aws:sns/topicPolicy:TopicPolicy": "policy",
              "aws:s3/bucketPolicy:BucketPolicy": "policy"}
    documents: dict[str, dict[str, Any]] = {}
    for token, field in fields.items():
        kind = token.split(":")[-1]
        for resource in capture.of_type(token):
            text = resource.inputs.get(field)
            if text:
                documents[f"{kind}.{resource.name}"] = json.loads(text) if isinstance(text, str) else text
    return documents


def run_parliament(documents: dict[str, dict[str, Any]],
                   python: Path = PARLIAMENT_PYTHON) -> list[dict[str, str]]:
    """parliament's raw findings for ``documents``. Raises FileNotFoundError naming the
    environment when it is not installed, RuntimeError when parliament crashes."""
    if not python.is_file():
        raise FileNotFoundError(f"parliament's environment is missing at {python.parent.parent}: "
                                "run `make .venv-parliament/.installed`")
    proc = subprocess.run([str(python), str(RUNNER)], input=json.dumps(documents),
                          capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"parliament failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def findings(raw: list[dict[str, str]]) -> list[Finding]:
    """The findings that fail the check (in the checkov skip file's Finding shape)."""
    return [Finding(f["issue"], f["policy"], f"{f['severity']}: {f['detail']}")
            for f in raw if f["issue"] not in JUDGED_ELSEWHERE]
