"""What the toolchain's command-line tools share: their log lines and how they fail (one line
``PROG: error: ...`` and exit status 1 for an error the user can act on, no traceback)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from ovserve.errors import ToolchainError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def run(parser: argparse.ArgumentParser, argv: list[str] | None,
        body: Callable[[argparse.Namespace], int | None],
        *errors: type[Exception]) -> int:
    """Parse ``argv``, log at INFO, run ``body``: its exit status (0 when it returns None), or
    1 with one line on standard error when it raises ToolchainError or one of ``errors``."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    caught: tuple[type[Exception], ...] = (ToolchainError, *errors)
    try:
        return body(args) or 0
    except caught as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
