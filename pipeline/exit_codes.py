"""Process exit codes of the ``python -m pipeline`` commands.

Scripts and CodeBuild stages branch on these, so each outcome has its own code and
the codes never change meaning. The README lists them.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a pipeline command's exit status means."""

    OK = 0
    """The run completed: a model was promoted, or there was nothing to do."""
    ERROR = 1
    """An unexpected error (a bug, an unreachable tracking server, a full disk)."""
    USAGE = 2
    """Bad command-line arguments or configuration (argparse's own code)."""
    GATE_REFUSED = 3
    """The gate refused the challenger; the champion is unchanged."""
    INVALID_DATA = 4
    """The data failed validation; nothing was trained or registered."""
    DEPLOY_FAILED = 5
    """Deploy, canary or smoke test failed; what serves and ``champion`` are as before."""
    DRIFT_DETECTED = 6
    """The monitor found drift or a performance drop (an alarm, not a crash)."""
    RELEASE_CONFLICT = 7
    """Another release holds the release lease, or ``champion`` moved since this candidate
    was gated; nothing was changed (re-run the pipeline to gate against the new champion)."""
