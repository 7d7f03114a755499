"""Run parliament over policy documents; executed by the parliament environment's Python.

parliament lives in its own virtual environment (``requirements-parliament.lock``: its
pins conflict with the platform's), so this file imports nothing from the project:
``infra.iam_check`` runs it as ``.venv-parliament/bin/python infra/parliament_runner.py``
with ``{"policy name": document}`` as JSON on stdin and reads back, as JSON on stdout,
one ``{"policy", "issue", "severity", "detail"}`` per finding.
"""

from __future__ import annotations

import json
import sys
import warnings


def main() -> int:
    """Analyse every document on stdin; print the findings."""
    with warnings.catch_warnings():
        # parliament 1.6.4 imports pkg_resources, which warns on import.
        warnings.simplefilter("ignore")
        from parliament import analyze_policy_string, config

    documents = json.load(sys.stdin)
    findings = []
    for name, document in sorted(documents.items()):
        policy = analyze_policy_string(json.dumps(document), include_community_auditors=False)
        for finding in policy.findings:
            findings.append({"policy": name, "issue": finding.issue,
                             "severity": (config.get(finding.issue) or {}).get("severity", "UNKNOWN"),
                             "detail": str(finding.detail)})
    json.dump(findings, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
