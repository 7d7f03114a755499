"""The one error a delivery stage raises when it must stop the release.

A stage that fails names itself, says why, and carries the exit code the CLI returns,
so CodeBuild logs and the rehearsal print the same sentence and scripts branch on
``pipeline.exit_codes`` alone.
"""

from __future__ import annotations

from pipeline.exit_codes import ExitCode


class StageFailed(Exception):
    """A delivery stage refused to continue; nothing after it may run."""

    def __init__(self, stage: str, reason: str, exit_code: ExitCode = ExitCode.ERROR, details: str = "") -> None:
        super().__init__(f"stage {stage!r} failed: {reason}")
        self.stage = stage
        self.reason = reason
        self.exit_code = exit_code
        self.details = details
