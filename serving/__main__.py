"""``python -m serving``: see :func:`serving.server.main`."""

import sys

from serving.server import main

sys.exit(main())
