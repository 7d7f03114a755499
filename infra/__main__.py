"""Pulumi entry point: read the stack's config, wire the components, export outputs.

All logic lives in ``infra.program.build`` (testable under mocks for every stack in one
process) and ``infra.config`` (validation before any resource exists).
"""

import pulumi

from infra.config import load_settings
from infra.program import build

for _name, _value in build(load_settings()).items():
    pulumi.export(_name, _value)
