"""The platform as a Pulumi program: one ComponentResource per part (docs/infra.md), the
validated stack settings, pure policy/naming logic, and the offline plan."""
