"""Settings of Python's cyclic garbage collector for our processes, which import large
libraries and then do a few seconds of work.

Why: a command imports pandas, scikit-learn, XGBoost, MLflow and matplotlib, about a
million long-lived objects. With the default thresholds (700, 10, 10) the collector
re-scans every one of them each time the heap has grown by a quarter: 8 full collections,
1.0 to 1.6 s of a cold ``python -m pipeline run`` on the 2-core reference machine
(measured with ``gc.callbacks``). Then the interpreter's own collection at exit scans them
once more: 1.1 to 1.3 s after the summary is printed, which a user waits for as much as
for any step. ``benchmarks/pipeline_e2e.py`` measures the difference.

The collector stays on. It only runs its full pass less often, so a long command (a
monitor, a big dataset) still reclaims reference cycles. Numbers, arrays and frames are
freed by reference counting, never by this collector, so its settings do not change when
they are freed.

The model server does something else (``serving.server``): it turns the collector off
while it loads, then freezes what it loaded right before forking its workers, as the
``gc.freeze`` documentation recommends for a process that forks.
"""

from __future__ import annotations

import gc
from typing import Final

COMMAND_THRESHOLDS: Final = (5000, 20, 100)
"""Young collections every 5,000 net allocations (default 700); a full collection after
100 middle-generation passes (default 10), that is once per ten million allocations
instead of once per hundred thousand. Measured on a cold run: no full collection instead
of 8, and 0.5 s of collection instead of 2.2 s, on a machine under load."""


def tune_for_a_command() -> None:
    """At the start of a command's process (``python -m pipeline``, not a library caller):
    collect less often while it imports libraries and runs its steps."""
    gc.set_threshold(*COMMAND_THRESHOLDS)


def skip_the_final_collection() -> None:
    """Right before a process exits: move everything alive into the permanent generation,
    so the interpreter's last collection has nothing left to scan. ``atexit`` handlers
    still run; the memory goes back to the system with the process."""
    gc.freeze()
