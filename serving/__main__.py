"""``python -m serving``: see :func:`serving.server.main`."""

import sys

from pipeline.gc_tuning import skip_the_final_collection
from serving.server import main

try:
    sys.exit(main())
finally:  # the deploy step and a rollout wait for this exit
    skip_the_final_collection()
