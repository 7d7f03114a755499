"""Errors the monitor raises for input it cannot use.

Each names what is wrong so the ``monitor`` command can print one clear line and exit
``INVALID_DATA`` (4) instead of a traceback; anything else is a bug or an outage (exit 1).
"""

from __future__ import annotations


class MonitorInputError(ValueError):
    """The monitor's input (capture, labels, baseline, model version) cannot be used."""


class CaptureError(MonitorInputError):
    """The capture source does not exist or cannot be read."""


class LabelsError(MonitorInputError):
    """The labels file does not exist or is not ``request_id,row,label`` CSV."""


class BaselineError(MonitorInputError):
    """The serving model version or its monitoring baseline is missing or unusable."""
