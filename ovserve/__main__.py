"""``python -m ovserve`` is the ``ovserve`` command."""

import sys

from ovserve.cli import main

if __name__ == "__main__":  # not when multiprocessing re-imports it
    sys.exit(main())
