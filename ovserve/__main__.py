"""``python -m ovserve`` is the ``ovserve`` command."""

import sys

from ovserve.cli import main

sys.exit(main())
