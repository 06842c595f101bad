"""The ``ovserve`` command."""

from __future__ import annotations

import argparse

from ovserve import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ovserve",
        description="Serve LLMs on OpenVINO from OVMS-style config.json and .pbtxt graphs. "
        "Prepare a model first with scripts/download_model.py.",
    )
    parser.add_argument("--version", action="version", version=f"ovserve {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    build_parser().print_help()
    return 0
