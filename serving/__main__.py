"""``python -m serving``: see :func:`serving.server.main`."""

import sys

from pipeline.gc_tuning import skip_the_final_collection
from serving.registry import started_for

# Before the server's own imports: the registry helper's MLflow import is the longest
# part of the start (serving.registry.started_for).
resolver = started_for(sys.argv[1:])

from serving.server import main  # noqa: E402

try:
    sys.exit(main(resolver=resolver))
finally:  # the deploy step and a rollout wait for this exit
    skip_the_final_collection()
