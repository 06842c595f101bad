"""The ``ovserve`` command.

    ovserve check --config_path CONFIG     validate config and graphs, run initialize/finalize
    ovserve check --model_path DIR --model_name NAME
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ovserve import __version__
from ovserve.errors import GraphConfigError
from ovserve.serving.server_config import GraphEntry, load_server_config, single_graph_entry


def add_source_args(parser: argparse.ArgumentParser) -> None:
    """OVMS's flags for what to serve."""
    parser.add_argument("--config_path", type=Path, help="OVMS-style config.json")
    parser.add_argument("--model_path", type=Path,
                        help="a graph directory (graph.pbtxt) to serve without a config")
    parser.add_argument("--model_name", help="servable name for --model_path")
    parser.add_argument("--log_level", default="WARNING",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log verbosity")


def entries_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[
    list[GraphEntry], str
]:
    if args.config_path and args.model_path:
        parser.error("give either --config_path or --model_path, not both")
    if args.config_path:
        return load_server_config(args.config_path), str(args.config_path)
    if args.model_path:
        if not args.model_name:
            parser.error("--model_path needs --model_name")
        return [single_graph_entry(args.model_path, args.model_name)], str(args.model_path)
    parser.error("nothing to serve: give --config_path CONFIG or --model_path DIR")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ovserve",
        description="Serve LLMs on OpenVINO from OVMS-style config.json and .pbtxt graphs.",
    )
    parser.add_argument("--version", action="version", version=f"ovserve {__version__}")
    sub = parser.add_subparsers(dest="command")
    check = sub.add_parser("check", help="validate a config and its graphs, then exit")
    add_source_args(check)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "check":
        parser.print_help()
        return 2
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    from ovserve.check import run_check

    try:
        entries, source = entries_from_args(parser, args)
    except GraphConfigError as exc:
        print(f"ovserve: {exc}", file=sys.stderr)
        return 1
    return run_check(entries, source)
