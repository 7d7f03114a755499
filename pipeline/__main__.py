"""``python -m pipeline``: see ``pipeline.cli``; the collector's settings: ``pipeline.gc_tuning``."""

import sys

from pipeline.gc_tuning import skip_the_final_collection, tune_for_a_command

tune_for_a_command()

from pipeline.cli import main  # noqa: E402 - after the tuning, so its imports benefit

try:
    sys.exit(main())
finally:  # also when argparse or a command exits by raising SystemExit
    skip_the_final_collection()
