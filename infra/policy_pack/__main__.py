"""The CrossGuard policy pack: ``pulumi preview --policy-pack infra/policy_pack``.

Registers every validator of ``infra.guard`` (the platform's safety rules) as a
mandatory resource policy; the logic and its tests live there.
"""

import sys
from pathlib import Path

from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy

# The pack runs from its own folder; the validators live in the repository's infra/.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from infra.guard import RULES  # noqa: E402

PolicyPack(
    name="mlops-safety",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[ResourceValidationPolicy(name=rule.name, description=rule.description,
                                       validate=rule.validate) for rule in RULES],
)
